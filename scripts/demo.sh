#!/usr/bin/env bash
# The Deep Learning Studio demo (what `make demo` runs after `make setup`).
#
# A team labels buildings on a synthetic aerial scene, entirely through headless qgis_process
# runs of the plugin's Processing algorithms:
#   olivia (owner) creates the project, adds the team and divides the scene into work units;
#   carla and colin (collectors) import their building boxes and mark their units complete;
#   adam (analyst) reviews: approves the good boxes, rejects colin's wrong ones, which sends
#   that work unit back; colin fixes it, adam reviews again;
#   adam exports the approved samples as training data (PASCAL VOC chips, run by the engine
#   worker); a status report closes the run.
#
# Everything goes to demo/out/ (cleaned first): scene.tif, buildings/roads.geojson, the
# project (project.gpkg), training_data/ (images/, labels/, map.txt, the .emd),
# status.html/.json, samples/, logs/ (one JSON per qgis_process run)
# and profile/ (a throw-away QGIS profile with the plugin, so the user's own is untouched).
#
# Environment: DEMO_SIZE (scene width/height in pixels, default 2048), DEMO_SEED (0),
# DEMO_OUT (output folder, default demo/out), PYTHON (the venv's python), SYS_PYTHON.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SYS_PY="${SYS_PYTHON:-/usr/bin/python3}"
SIZE="${DEMO_SIZE:-2048}"
SEED="${DEMO_SEED:-0}"
OUT="${DEMO_OUT:-$REPO/demo/out}"
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
    if ! "$QGIS_PROCESS" --json run "dlstudio:$alg" -- "$@" "USER=$user" >"$LAST" 2>"$LAST.err"; then
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
qp exporttrainingdata adam "PROJECT=$PROJECT" "INPUT_RASTER=$OUT/scene.tif" \
    "OUTPUT_FOLDER=$OUT/training_data" METADATA_FORMAT=PASCAL_VOC_rectangles \
    TILE_SIZE_X=256 TILE_SIZE_Y=256 STRIDE_X=128 STRIDE_Y=128
EXPORT_LOG="$LAST"

# --- 8. status ------------------------------------------------------------------------------
echo "== 8. The project's status"
qp projectstatus olivia "PROJECT=$PROJECT" "OUTPUT_JSON=$OUT/status.json" \
    "OUTPUT_HTML=$OUT/status.html"

"$SYS_PY" - "$OUT/status.json" "$UNITS" "$RUNS" "$((SECONDS - STARTED))" "$OUT" "$EXPORT_LOG" <<'EOF'
import json
import sys

s = json.load(open(sys.argv[1]))
units, runs, secs, out = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
x = json.load(open(sys.argv[6]))["results"]
by_unit = s["work_units"]["by_status"]
by_sample = s["samples"]["by_status"]
print(f"""
Summary of '{s['project']}' ({s['inference_tool']}):
  work units      {s['work_units']['total']}: {by_unit['reviewed']} reviewed ({s['percent_reviewed']}%), {by_unit['queued']} queued, {by_unit['in_progress'] + by_unit['pending_review'] + by_unit['in_review']} in between
  samples         {s['samples']['total']}: {by_sample['approved']} approved, {by_sample['rejected']} rejected, {by_sample['pending']} pending
  exportable      {s['exportable_samples']} samples (approved, in reviewed work units)
  training data   {x['CHIPS']} chips of 256x256 px (stride 128) with {x['OBJECTS']} objects ({x['OBJECTS_DROPPED']} dropped at chip edges) from {x['SAMPLES']} samples, PASCAL_VOC_rectangles""")
for user, c in sorted(s["per_collector"].items()):
    print(f"  {user:<15} {c['total']} collected: {c['approved']} approved, {c['rejected']} rejected")
print(f"""
{runs} qgis_process runs in {secs} s. Outputs in {out}:
  scene.tif, buildings.geojson, roads.geojson   the synthetic scene and its ground truth
  project.gpkg                                  the project (open it in QGIS as layers)
  training_data/                                chips, labels, map.txt and the .emd
  status.html, status.json                      the status report
  samples/, logs/                               the collectors' files, one log per run""")
EOF
