#!/usr/bin/env bash
# The Deep Learning Studio demo (what `make demo` runs after `make setup`).
#
# A team labels buildings on a synthetic aerial scene, then trains, runs and judges models,
# entirely through headless qgis_process runs of the plugin's Processing algorithms:
#   olivia (owner) creates the project, adds the team and divides the scene into work units;
#   carla and colin (collectors) import their building boxes and mark their units complete;
#   adam (analyst) reviews: approves the good boxes, rejects colin's wrong ones, which sends
#   that work unit back; colin fixes it, adam reviews again;
#   adam exports the approved samples of the top 3/4 of the scene (the training area) as
#   PASCAL VOC chips, and the scene's land cover (buildings, roads, ground) as classified
#   tiles; trains a building detector (SSD) and a land cover classifier (UNET) on the CPU;
#   detects buildings and classifies pixels in the held-out bottom 1/4, and measures both
#   against the scene's own ground truth there. A report (report.html) and a QGIS project
#   (demo.qgz, every layer styled) are written with PyQGIS, and a summary printed.
#
# Everything goes to demo/out/ (cleaned first): scene.tif, buildings/roads.geojson, the
# project (project.gpkg), reference/ (the split, the land cover polygons, the held-out area),
# training_data/ and training_pixels/ (chips, labels, map.txt, the .emd), models/ (.dlpk),
# results/ (detections.gpkg, land_cover.tif, accuracy tables and reports), status.html/.json,
# report.html with figures/, demo.qgz, samples/, logs/ (one JSON per qgis_process run, and
# manifest.tsv naming the ones the report reads) and profile/ (a throw-away QGIS profile with
# the plugin, so the user's own is untouched).
#
# Environment: DEMO_SIZE (scene width/height in pixels, default 2048), DEMO_SEED (0),
# DEMO_OUT (output folder, default demo/out), DEMO_TRAIN_FRACTION (0.75: the rows training
# sees), DEMO_EPOCHS (detector epochs, 15), DEMO_PIXEL_EPOCHS (classifier epochs, 8),
# DEMO_CHIP (training chip size, 128), DEMO_LR (0.003), DEMO_THRESHOLD (detection confidence,
# 0.3), PYTHON (the venv's python), SYS_PYTHON (the Python QGIS runs on).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SYS_PY="${SYS_PYTHON:-/usr/bin/python3}"
SIZE="${DEMO_SIZE:-2048}"
SEED="${DEMO_SEED:-0}"
OUT="${DEMO_OUT:-$REPO/demo/out}"
TRAIN_FRACTION="${DEMO_TRAIN_FRACTION:-0.75}"
EPOCHS="${DEMO_EPOCHS:-15}"              # detector epochs
PIXEL_EPOCHS="${DEMO_PIXEL_EPOCHS:-8}"   # pixel classifier epochs
CHIP="${DEMO_CHIP:-128}"                 # training chip size (random crops of the 256 px chips)
LR="${DEMO_LR:-0.003}"
THRESHOLD="${DEMO_THRESHOLD:-0.3}"       # detection confidence threshold
QGIS_PROCESS="$REPO/scripts/qgis_process"
MARKER=".dlstudio-demo-output"
STARTED=$SECONDS

die() { echo "demo: $*" >&2; exit 1; }

[[ "$SIZE" =~ ^[0-9]+$ ]] && ((SIZE >= 256)) || die "DEMO_SIZE must be a number >= 256."
[[ -x "$PY" ]] || die "$PY not found; run 'make setup' first."
"$PY" -c "import rasterio, shapely" 2>/dev/null || die "$PY lacks rasterio/shapely; run 'make setup'."
command -v qgis_process.bin >/dev/null || die "qgis_process.bin not found; run 'make setup'."
"$SYS_PY" -c "import qgis.core" 2>/dev/null || die "$SYS_PY cannot import qgis; run 'make setup'."

# Work units: a 4x4 grid, cells of at most 512 pixels.
CELL=$((SIZE / 4 < 512 ? SIZE / 4 : 512))

# --- a clean output folder --------------------------------------------------------------------
OUT="$(mkdir -p "$OUT" && cd "$OUT" && pwd)"
if [[ -n "$(ls -A "$OUT")" ]]; then
    [[ "$OUT" == "$REPO/demo/out" || -f "$OUT/$MARKER" ]] ||
        die "$OUT is not empty and not a demo output folder; refusing to clean it."
    find "$OUT" -mindepth 1 -delete
fi
touch "$OUT/$MARKER"
mkdir -p "$OUT/logs"

# qgis_process reads its settings and plugins from the profile named "default" under
# $QGIS_CUSTOM_CONFIG_PATH/profiles (checked on QGIS 3.22).
export QT_QPA_PLATFORM=offscreen
export QGIS_CUSTOM_CONFIG_PATH="$OUT/profile"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$OUT/profile/runtime}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset DLSTUDIO_USER  # every run names its user

jget() {  # jget FILE EXPR: a value from a JSON file (d is the document)
    "$SYS_PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# What a run said, in short: its messages without the boilerplate, finished reviews grouped.
read -r -d '' SAY <<'EOF' || true
import json, re, sys
d = json.load(open(sys.argv[1]))
log = d.get("log") or {}
lines, finished = [], {}
for line in log.get("info", []):
    m = re.match(r"Work unit (\d+): review finished, now (.+?)(?: \(.*\))?\.$", line)
    if m:
        finished.setdefault(m.group(2), []).append(m.group(1))
    elif not line.startswith(("Project '", "Opened the review")):
        lines.append(line)
lines += [f"Work units {', '.join(ids)}: review finished, now {st}." for st, ids in finished.items()]
lines += [f"(warning) {w}" for w in log.get("warning", [])]
print("\n".join(lines) or d.get("results"))
EOF

RUNS=0
qp() {  # qp ALGORITHM USER PARAM=VALUE...: one qgis_process run, logged to logs/NN_alg_user.json
    local alg=$1 user=$2
    shift 2
    RUNS=$((RUNS + 1))
    LAST="$OUT/logs/$(printf %02d "$RUNS")_${alg}_${user}.json"
    local as=("USER=$user")
    [[ $alg == computeaccuracy* ]] && as=()  # judging outputs is not a project action
    if ! "$QGIS_PROCESS" --json run "dlstudio:$alg" -- "$@" "${as[@]}" >"$LAST" 2>"$LAST.err"; then
        echo "demo: dlstudio:$alg as $user failed:" >&2
        grep -v -e "XDG_RUNTIME_DIR" -e "setapi" "$LAST.err" | tail -20 >&2 || true
        exit 1
    fi
    rm -f "$LAST.err"
    "$SYS_PY" -c "$SAY" "$LAST" | {
        IFS= read -r first
        printf '  %-7s %-22s %s\n' "$user" "$alg" "$first"
        while IFS= read -r more; do printf '  %-30s %s\n' "" "$more"; done
    }
}
result() { jget "$LAST" "d['results']['$1']"; }
mark() { printf '%s\t%s\n' "$1" "${LAST#"$OUT"/}" >>"$OUT/logs/manifest.tsv"; }  # for the report

# --- 1. the scene -----------------------------------------------------------------------------
echo "== 1. A synthetic scene (${SIZE}x${SIZE} px, seed $SEED), drawn by the engine worker"
"$PY" -m dlstudio_qgis.engine synth-scene -o "$OUT/scene.tif" --size "$SIZE" --seed "$SEED" \
    >"$OUT/logs/00_synth-scene.jsonl" || {
    tail -3 "$OUT/logs/00_synth-scene.jsonl" >&2
    die "synth-scene failed"
}
SCENE="$(tail -1 "$OUT/logs/00_synth-scene.jsonl")"
echo "  $("$SYS_PY" -c 'import json, sys; print(
    "{width}x{height} px, {pixel_size} m pixels, {crs}: {n_buildings} buildings, "
    "{n_roads} roads, in {seconds} s".format(**json.loads(sys.argv[1])))' "$SCENE")"
# training sees the left part only; inference and accuracy run on the held-out right part
"$PY" scripts/demo_split.py "$OUT/logs/00_synth-scene.jsonl" "$OUT/reference" \
    --train-fraction "$TRAIN_FRACTION" | sed 's/^/  /'
TRAIN_EXTENT="$(jget "$OUT/reference/split.json" "d['training_text']")"
TEST_EXTENT="$(jget "$OUT/reference/split.json" "d['held_out_text']")"

# --- 2. a QGIS profile with the plugin --------------------------------------------------------
echo "== 2. The plugin, installed in a throw-away QGIS profile ($OUT/profile)"
"$SYS_PY" scripts/install_plugin.py --profiles-path "$OUT/profile/profiles" --profile default \
    --worker-python "$PY" >"$OUT/logs/00_install.txt"
"$QGIS_PROCESS" plugins 2>/dev/null | grep -q '^\* dlstudio_qgis' ||
    die "qgis_process does not load the plugin from $OUT/profile (see logs/00_install.txt)."
echo "  qgis_process loads dlstudio_qgis from $OUT/profile/profiles/default"

# --- 3. the project ---------------------------------------------------------------------------
PROJECT="$OUT/project.gpkg"
echo "== 3. olivia creates the project and her team"
qp createproject olivia "NAME=Buildings (demo)" "INPUT_RASTER=$OUT/scene.tif" \
    INFERENCE_TOOL=DETECT_OBJECTS "CLASSES=1:building:#e41a1c" "OUTPUT=$PROJECT"
qp addmember olivia "PROJECT=$PROJECT" MEMBER=adam ROLE=analyst
qp addmember olivia "PROJECT=$PROJECT" MEMBER=carla ROLE=collector
qp addmember olivia "PROJECT=$PROJECT" MEMBER=colin ROLE=collector
qp createworkunits olivia "PROJECT=$PROJECT" "CELL_SIZE=$CELL" CELL_UNITS=PIXELS
UNITS="$(result COUNT)"

# --- 4. collection ----------------------------------------------------------------------------
echo "== 4. carla (left half) and colin (right half) collect building boxes"
"$PY" scripts/make_demo_samples.py "$OUT/scene.tif" "$OUT/samples" --cell "$CELL" |
    sed 's/^/  /'
MID_X="$(jget "$OUT/samples/samples.json" "d['mid_x']")"
N_WRONG="$(jget "$OUT/samples/samples.json" "len(d['colin_wrong'])")"
qp importsamples carla "PROJECT=$PROJECT" "INPUT=$OUT/samples/carla.geojson" CLASS_FIELD=class
qp importsamples colin "PROJECT=$PROJECT" "INPUT=$OUT/samples/colin.geojson" CLASS_FIELD=class
LEFT="\"status\" IN ('queued', 'in_progress') AND x(centroid(\$geometry)) < $MID_X"
RIGHT="\"status\" IN ('queued', 'in_progress') AND x(centroid(\$geometry)) >= $MID_X"
qp updateworkunitstatus carla "PROJECT=$PROJECT" "WORK_UNITS=$LEFT" STATUS=PENDING_REVIEW \
    MODE=WORKFLOW "COMMENT=Left half done"
qp updateworkunitstatus colin "PROJECT=$PROJECT" "WORK_UNITS=$RIGHT" STATUS=PENDING_REVIEW \
    MODE=WORKFLOW "COMMENT=Right half done"

# --- 5. review --------------------------------------------------------------------------------
review() {  # review ROUND FINISH: adam approves the right boxes, rejects the wrong ones
    local approve reject
    approve="$("$SYS_PY" scripts/demo_review.py "$PROJECT" "$OUT/buildings.geojson" approve)"
    reject="$("$SYS_PY" scripts/demo_review.py "$PROJECT" "$OUT/buildings.geojson" reject)"
    if [[ -n "$approve" ]]; then
        qp reviewsamples adam "PROJECT=$PROJECT" "SAMPLES=$approve" STATUS=APPROVED \
            "FINISH=$2" "COMMENT=Looks right ($1)"
    fi
    if [[ -n "$reject" ]]; then
        echo "  adam rejects samples $reject"
        qp reviewsamples adam "PROJECT=$PROJECT" "SAMPLES=$reject" STATUS=REJECTED \
            "FINISH=$2" "COMMENT=No building here: the box is on empty ground"
    fi
    # units with nothing to review (no building in them): open and finish them by hand
    empty="$("$SYS_PY" scripts/demo_review.py "$PROJECT" "$OUT/buildings.geojson" empty-units)"
    if [[ -n "$empty" ]]; then
        qp updateworkunitstatus adam "PROJECT=$PROJECT" "WORK_UNITS=$empty" STATUS=IN_REVIEW \
            MODE=WORKFLOW
        qp updateworkunitstatus adam "PROJECT=$PROJECT" "WORK_UNITS=$empty" STATUS=REVIEWED \
            MODE=WORKFLOW "COMMENT=Nothing to collect here"
    fi
}
echo "== 5. adam reviews (FINISH=AUTO: a unit with rejected boxes goes back to Queued)"
review "first review" AUTO

# --- 6. the rejected unit comes back ------------------------------------------------------------
if ((N_WRONG > 0)); then
    echo "== 6. colin fixes the boxes adam rejected, and adam reviews them"
    qp importsamples colin "PROJECT=$PROJECT" "INPUT=$OUT/samples/colin_fixed.geojson" \
        CLASS_FIELD=class
    qp updateworkunitstatus colin "PROJECT=$PROJECT" "WORK_UNITS=\"status\" = 'in_progress'" \
        STATUS=PENDING_REVIEW MODE=WORKFLOW "COMMENT=Fixed the rejected boxes"
    # the rejected boxes stay Rejected (never exported); no new rejection: AUTO finishes as Reviewed
    review "second review" AUTO
fi

# --- 7. training data -----------------------------------------------------------------------
echo "== 7. adam exports the approved samples of the reviewed work units as training data"
echo "   (the training area only: the held-out area stays unseen for the accuracy assessment)"
qp exporttrainingdata adam "PROJECT=$PROJECT" "INPUT_RASTER=$OUT/scene.tif" \
    "OUTPUT_FOLDER=$OUT/training_data" METADATA_FORMAT=PASCAL_VOC_rectangles \
    TILE_SIZE_X=256 TILE_SIZE_Y=256 STRIDE_X=128 STRIDE_Y=128 "EXTENT=$TRAIN_EXTENT"
mark export_detector
echo "   and, for a pixel classifier, the scene's buildings and roads as classified tiles"
qp exporttrainingdata adam "INPUT_RASTER=$OUT/scene.tif" \
    "INPUT_SAMPLES=$OUT/reference/land_cover.geojson" CLASS_VALUE_FIELD=class \
    "OUTPUT_FOLDER=$OUT/training_pixels" METADATA_FORMAT=Classified_Tiles \
    TILE_SIZE_X=256 TILE_SIZE_Y=256 STRIDE_X=256 STRIDE_Y=256 "EXTENT=$TRAIN_EXTENT"
mark export_pixels

# --- 8. status ------------------------------------------------------------------------------
echo "== 8. The project's status"
qp projectstatus olivia "PROJECT=$PROJECT" "OUTPUT_JSON=$OUT/status.json" \
    "OUTPUT_HTML=$OUT/status.html"
mark status

# --- 9. training ------------------------------------------------------------------------------
# SSD learns buildings fastest on a CPU from random weights: on this data (2 cores, 128 px
# crops) RETINANET took about 2x and FASTERRCNN about 8x SSD's time per epoch, and after 5
# and 3 epochs had learnt next to nothing (validation mAP 0.007 and 0), where SSD reaches
# 0.7-0.8 in 10-15 epochs of 4-5 s. Random 128 px crops of the 256 px chips keep steps cheap.
mkdir -p "$OUT/models"
echo "== 9. adam trains a building detector (SSD) and a land cover classifier (UNET) on the CPU"
qp traindeeplearningmodel adam "IN_FOLDER=$OUT/training_data" \
    "OUTPUT=$OUT/models/buildings_ssd.dlpk" MODEL_TYPE=SSD BACKBONE_MODEL=RESNET18 \
    "ARGUMENTS=chip_size=$CHIP" BATCH_SIZE=8 "MAX_EPOCHS=$EPOCHS" "LEARNING_RATE=$LR" \
    VALIDATION_PERCENT=10 STOP_TRAINING=false PROCESSOR_TYPE=CPU "PROJECT=$PROJECT"
mark train_detector
qp traindeeplearningmodel adam "IN_FOLDER=$OUT/training_pixels" \
    "OUTPUT=$OUT/models/land_cover_unet.dlpk" MODEL_TYPE=UNET BACKBONE_MODEL=RESNET18 \
    "ARGUMENTS=chip_size=$CHIP" BATCH_SIZE=8 "MAX_EPOCHS=$PIXEL_EPOCHS" "LEARNING_RATE=$LR" \
    VALIDATION_PERCENT=10 STOP_TRAINING=false PROCESSOR_TYPE=CPU
mark train_pixels

# --- 10. inference on the held-out area --------------------------------------------------------
mkdir -p "$OUT/results"
echo "== 10. adam detects buildings and classifies pixels in the held-out area"
qp detectobjects adam "INPUT_RASTER=$OUT/scene.tif" "MODEL=$OUT/models/buildings_ssd.dlpk" \
    "EXTENT=$TEST_EXTENT" PROCESSOR_TYPE=CPU "ARGUMENTS=threshold=$THRESHOLD" \
    "PROJECT=$PROJECT" "OUTPUT=$OUT/results/detections.gpkg"
mark detect
qp classifypixels adam "INPUT_RASTER=$OUT/scene.tif" "MODEL=$OUT/models/land_cover_unet.dlpk" \
    "EXTENT=$TEST_EXTENT" PROCESSOR_TYPE=CPU "OUTPUT=$OUT/results/land_cover.tif"
mark classify

# --- 11. accuracy ---------------------------------------------------------------------------
echo "== 11. The results against the scene's own ground truth (held-out area only)"
qp computeaccuracyforobjectdetection adam "DETECTED_FEATURES=$OUT/results/detections.gpkg" \
    "GROUND_TRUTH_FEATURES=$OUT/buildings.geojson" GROUND_TRUTH_CLASS_VALUE_FIELD=class \
    "MASK_FEATURES=$OUT/reference/held_out.geojson" MIN_IOU=0.5 \
    "OUTPUT_ACCURACY_TABLE=$OUT/results/detection_accuracy.csv" \
    "OUTPUT_ACCURACY_REPORT=$OUT/results/detection_accuracy.html"
mark accuracy_detector
qp computeaccuracyforpixelclassification adam "CLASSIFIED_RASTER=$OUT/results/land_cover.tif" \
    "REFERENCE_FEATURES=$OUT/reference/land_cover.geojson" REFERENCE_CLASS_FIELD=class_value \
    "EXTENT=$TEST_EXTENT" "OUTPUT_ACCURACY_TABLE=$OUT/results/pixel_accuracy.csv" \
    "OUTPUT_ACCURACY_REPORT=$OUT/results/pixel_accuracy.html"
mark accuracy_pixels

# --- 12. report and QGIS project --------------------------------------------------------------
echo "== 12. The report (report.html) and the QGIS project (demo.qgz), written with PyQGIS"
"$SYS_PY" scripts/demo_qgis.py "$OUT" | sed 's/^/  /'
"$SYS_PY" scripts/demo_report.py "$OUT" --runs "$RUNS" --seconds "$((SECONDS - STARTED))"
