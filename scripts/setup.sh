#!/usr/bin/env bash
# Idempotent project setup (`make setup`) for Debian 12:
#   1. the Debian packages (QGIS 3.22, its Python bindings, Xvfb, venv),
#   2. .venv made with --system-site-packages (Debian's QGIS and numpy 1.24),
#   3. pip install -r requirements.txt, only when requirements.txt changed.
# A second run only checks and takes a few seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(qgis python3-qgis qgis-providers xvfb xauth python3-venv)
SYS_PYTHON=/usr/bin/python3
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
STAMP="$VENV/.requirements.sha256"

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# 1. Debian packages ---------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    SUDO=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} by hand"
        SUDO=(sudo)
    fi
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
else
    say "Debian packages present"
fi

# 2. venv -------------------------------------------------------------------
if [[ -x "$VPY" ]] && ! grep -qi '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg"; then
    say ".venv lacks --system-site-packages (needs Debian's QGIS and numpy): recreating it"
    rm -rf "$VENV"
fi
if [[ ! -x "$VPY" ]]; then
    say "creating .venv (--system-site-packages)"
    rm -rf "$VENV"
    "$SYS_PYTHON" -m venv --system-site-packages "$VENV"
else
    say ".venv present"
fi

# 3. pip requirements, keyed on the sha256 of requirements.txt ------------------
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    # torch's CUDA build and its nvidia-* libraries take about 5.5 GB in .venv; a
    # disk that fills half-way leaves pip's OSError and a half-installed .venv.
    # What an earlier, interrupted install left in .venv counts towards it.
    need_gb="${DLSTUDIO_SETUP_FREE_GB:-7}"
    free_kb="$(df --output=avail -k "$VENV" | tail -1 | tr -d ' ')"
    held_kb="$(du -sk "$VENV" | cut -f1)"
    if ((free_kb + held_kb < need_gb * 1024 * 1024)); then
        die "not enough disk space for .venv: $((free_kb / 1024)) MB free on the disk of $VENV,
about $need_gb GB needed in all (torch with its CUDA libraries is about 5.5 GB).
Free some space there (or clone the project onto a larger disk) and run make setup again."
    fi
    say "installing requirements.txt into .venv (first run downloads torch: several GB)"
    rm -f "$STAMP"
    # --no-cache-dir: a copy of the downloaded wheels in ~/.cache/pip would double the space.
    "$VPY" -m pip install --disable-pip-version-check --no-cache-dir -r requirements.txt
    numpy_check=1
else
    say "requirements unchanged"
    numpy_check=0
fi

# numpy must stay Debian's 1.24 (numpy 2 breaks Debian's GDAL bindings).
np_version="$("$VPY" -c 'import numpy; print(numpy.__version__)')" \
    || die "numpy does not import in .venv"
np_file="$("$VPY" -c 'import numpy; print(numpy.__file__)')"
if [[ "$np_version" != 1.24.* ]]; then
    die "numpy $np_version ($np_file) in .venv, expected Debian's 1.24.x.
Something upgraded numpy; remove .venv and check requirements.txt."
fi

if ((numpy_check)); then
    "$VPY" -c 'import torch, torchvision, rasterio, shapely' \
        || die "engine packages do not import in .venv"
    echo "$want" >"$STAMP"
fi
say "ok: numpy $np_version, $("$VPY" --version)"
