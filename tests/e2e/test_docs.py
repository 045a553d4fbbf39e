"""The user guide (docs/) cannot go stale.

- docs/algorithms.md is what the algorithms' own help says (scripts/gen_docs.py regenerates it).
- The guide's ```sh blocks run as written, in order, one script per page, against
  qgis_process.bin with a throw-away profile. A block marked ```sh requires=dlstudio:a,... runs
  only when this build has those algorithms (the rest of the page still runs); the separate
  test_every_guide_block_ran says which were left out, and why.
- Every relative link and image inside docs/ (and README.md's links into docs/) resolves,
  anchors included.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
QGIS_PROCESS = shutil.which("qgis_process.bin")
#: the guide's placeholders for where you cloned the plugin and where you work
CLONE, WORKDIR = "~/dlstudio-qgis", "~/dls-tutorial"
SH_BLOCK = re.compile(r"^```sh(?P<info>[^\n]*)\n(?P<body>.*?)^```", re.S | re.M)

assert QGIS_PROCESS, "qgis_process.bin is missing: run `make setup`"


# --- the algorithm reference ---------------------------------------------------------------


def test_algorithm_reference_is_up_to_date(tmp_path):
    out = tmp_path / "algorithms.md"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    fresh, committed = out.read_text(), (DOCS / "algorithms.md").read_text()
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True),
                             "docs/algorithms.md", "generated", n=1)
    )  # fmt: skip
    assert fresh == committed, f"docs/algorithms.md is out of date: run make docs\n{diff[:3000]}"
    # it documents every algorithm the provider loads, each parameter with its help
    names = re.findall(r'^<a id="(\w+)"></a>$', fresh, flags=re.M)
    assert "createproject" in names and "traindeeplearningmodel" in names
    assert "| `CLASSES` | Classes | text |" in fresh
    assert "### Advanced parameters" in fresh


# --- the guide's commands ------------------------------------------------------------------


def sh_blocks(path: Path) -> list[tuple[frozenset[str], str]]:
    """[(algorithms the block requires, its text)] of every ```sh block of a page."""
    out = []
    for m in SH_BLOCK.finditer(path.read_text()):
        info = m.group("info").strip()
        needs = re.fullmatch(r"(?:requires=(?P<ids>[\w:,]+))?", info)
        assert needs, f"{path.name}: unknown ```sh block marker '{info}' (use requires=id,id)"
        ids = needs.group("ids")
        out.append((frozenset(ids.split(",")) if ids else frozenset(), m.group("body")))
    return out


RUNNABLE = sorted(p for p in DOCS.glob("*.md") if sh_blocks(p))


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory):
    """An environment whose QGIS profile has the plugin (worker: this Python)."""
    config = tmp_path_factory.mktemp("qgis-config")
    subprocess.run(
        ["/usr/bin/python3", str(REPO / "scripts" / "install_plugin.py"), "--profiles-path",
         str(config / "profiles"), "--worker-python", sys.executable],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "DLSTUDIO_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(config),
        QT_QPA_PLATFORM="offscreen",
        XDG_RUNTIME_DIR=str(tmp_path_factory.mktemp("xdg")),
        OMP_NUM_THREADS="1",  # the worker's torch: one thread per process on a shared machine
    )
    return env


@pytest.fixture(scope="module")
def available(qgis_env) -> set[str]:
    """The algorithm ids this build's qgis_process lists."""
    out = subprocess.run([QGIS_PROCESS, "list"], env=qgis_env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"^\s*(\w+:\w+)\s", out.stdout, flags=re.M))


def run_page(page: Path, env: dict, workdir: Path, available: set[str]):
    """Run a page's blocks as one bash script in `workdir`; (completed process, skipped)."""
    parts, skipped = [], []
    for needs, body in sh_blocks(page):
        missing = sorted(needs - available)
        if missing:
            skipped.append((missing, body.strip().splitlines()[0]))
            continue
        parts.append(body)
    script = "set -euo pipefail\n" + "\n".join(parts)
    script = script.replace(CLONE, str(REPO)).replace(WORKDIR, str(workdir))
    run = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    return run, skipped


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_guide_commands_run(page, qgis_env, available, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    run, _ = run_page(page, qgis_env, workdir, available)
    assert run.returncode == 0, f"{page.name}:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    if page.name == "workflow.md":
        check_workflow(page.read_text(), workdir, run.stdout, available)


def check_workflow(text: str, work: Path, log: str, available: set[str]) -> None:
    """What the tutorial says happens does happen."""
    # the lines the page quotes from the log
    for quoted in re.findall(r"`((?:Work unit \d+: review finished|\d+ work units, )[^`]+)`",
                             " ".join(text.split())):  # fmt: skip
        assert quoted in " ".join(log.split()), f"the guide quotes '{quoted}'; the run said:\n{log}"
    status = json.loads((work / "status.json").read_text())
    units = status["work_units"]
    assert units["by_status"]["reviewed"] == units["total"] == 4
    assert status["samples"]["by_status"]["rejected"] == 1
    assert status["exportable_samples"] == status["samples"]["by_status"]["approved"] > 0
    assert (work / "status.html").is_file()
    lines = (work / "chips" / "map.txt").read_text().splitlines()
    assert lines and all(line.startswith("images/") for line in lines)
    for package, cls in (("buildings.dlpk", "building"), ("roads.dlpk", "class_2")):
        with zipfile.ZipFile(work / package) as zf:
            stem = package.removesuffix(".dlpk")
            emd = json.loads(zf.read(f"{stem}.emd"))
            assert {f"{stem}.pth", "model_metrics.html"} <= set(zf.namelist())
        assert [c["Name"] for c in emd["Classes"]] == [cls]
    outputs = {
        "detectobjects": "detections.gpkg",
        "computeaccuracyforobjectdetection": "accuracy.html",
        "classifypixels": "roads_classified.tif",
        "computeaccuracyforpixelclassification": "roads_accuracy.html",
        "classifyobjects": "objects_classified.gpkg",
        "computeaccuracyforobjectclassification": "objects_accuracy.html",
    }
    for name, output in outputs.items():
        if f"dlstudio:{name}" in available:
            assert (work / output).is_file(), f"dlstudio:{name} ran but wrote no {output}"


def test_every_guide_block_ran(available):
    """Blocks for algorithms this build lacks are skipped, and said so here."""
    left_out = {
        f"{page.name}: {', '.join(sorted(needs - available))}"
        for page in RUNNABLE
        for needs, _ in sh_blocks(page)
        if needs - available
    }
    if left_out:
        pytest.skip(
            "guide blocks not run, their algorithms are not in this build: "
            + "; ".join(sorted(left_out))
        )


def test_the_guide_has_runnable_blocks():
    pages = {p.name for p in RUNNABLE}
    assert "workflow.md" in pages
    blocks = sh_blocks(DOCS / "workflow.md")
    assert sum(1 for needs, _ in blocks if not needs) >= 10
    assert any("dlstudio:detectobjects" in needs for needs, _ in blocks)


# --- links ---------------------------------------------------------------------------------

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_REF = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    found: set[str] = set(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", text))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M):
        s = slug(heading)
        n = seen.get(s, 0)
        found.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return found


def links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))
    return LINK.findall(text) + HTML_REF.findall(text)


def test_relative_links_resolve():
    pages = sorted(DOCS.rglob("*.md"))
    assert pages
    broken, checked = [], 0
    for page in [*pages, REPO / "README.md"]:
        for target in links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if page.name == "README.md" and page.parent == REPO and DOCS not in dest.parents:
                continue  # the README's own links are not the guide's business
            checked += 1
            where = f"{page.relative_to(REPO)} -> {target}"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where}: no such anchor")
    assert not broken, "broken links:\n" + "\n".join(broken)
    assert checked >= 20
