"""The figures of the site's task pages, drawn by real small runs of today's code.

Each task page shows the figures its run writes. This script trains each task briefly on the CPU (the
command it runs is printed on the page), copies the run's `figures/*.png` into OUT/<page>/ and writes
OUT/manifest.json: per page the command, the metrics and the figure files, or why a page has none (MNIST
needs the four IDX files: MNIST_DIR, ../shared/data/mnist or data/mnist). `make docs` runs it into the
git-ignored build/docs-figures/; the figures are redrawn when the code's commit or these runs change.

    python tools/docs_figures.py build/docs-figures [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# page -> (task, recipe, overrides): small enough to run in seconds on a CPU, real enough to show what a run draws
RUNS: dict[str, tuple[str, str, dict]] = {
    "digits": ("digit-mlp", "default", {"epochs": 10}),
    "patch": ("patch-linear", "default", {}),
    "ring": ("ring-mlp", "default", {}),
    "mnist": ("mnist", "fast", {"limit": 5000}),
    "keypoints": ("keypoint-net", "cpu", {"synthetic": 200, "epochs": 2}),
}


def mnist_dir() -> Path | None:
    """The folder of the four MNIST IDX files, if one is here."""
    for candidate in (os.environ.get("MNIST_DIR"), ROOT.parent / "shared" / "data" / "mnist", ROOT / "data" / "mnist"):
        if candidate and list(Path(candidate).glob("train-images-idx3-ubyte*")):
            return Path(candidate)
    return None


def command_of(task: str, recipe: str, overrides: dict) -> str:
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.items())
    return f"torchlab train {task} --recipe {recipe} {flags} --device cpu --seed 0".replace("  ", " ")


def code_version() -> str:
    """The commit and this file's text: the figures are redrawn when either changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return commit + ":" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def draw(page: str, out: Path, scratch: Path) -> dict:
    """Train one page's run and copy its figures into out/page/; the page's manifest entry."""
    import torchlab

    task, recipe, overrides = RUNS[page]
    overrides = dict(overrides)
    entry: dict = {"task": task, "command": command_of(task, recipe, overrides), "figures": []}
    if task == "mnist":
        folder = mnist_dir()
        if folder is None:
            entry["skipped"] = "no MNIST IDX files on the machine that built this site (MNIST_DIR)"
            return entry
        overrides["data_dir"] = str(folder)
        entry["command"] += " --data-dir DIR"
    result = torchlab.train(
        task, recipe, out=scratch / page, overwrite=True, progress=False, device="cpu", seed=0, **overrides
    )
    (out / page).mkdir(parents=True, exist_ok=True)
    for figure in result.figures:
        shutil.copyfile(figure, out / page / Path(figure).name)
        entry["figures"].append(Path(figure).name)
    entry["metrics"] = {k: round(float(v), 4) for k, v in result.metrics.items() if isinstance(v, int | float)}
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for <page>/*.png and manifest.json")
    parser.add_argument("--force", action="store_true", help="redraw even when the code has not changed")
    parser.add_argument("--pages", nargs="+", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args(argv)
    manifest_path = args.out / "manifest.json"
    version = code_version()
    if not args.force and manifest_path.exists():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old.get("version") == version and set(args.pages) <= set(old["pages"]):
            print(f"{manifest_path}: figures of this code already drawn")
            return 0
    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"version": version, "pages": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for page in args.pages:
            manifest["pages"][page] = draw(page, args.out, Path(scratch))
            print(f"{page}: {manifest['pages'][page].get('skipped') or manifest['pages'][page]['figures']}")
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    tmp.replace(manifest_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
