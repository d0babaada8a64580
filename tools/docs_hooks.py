"""MkDocs hooks (mkdocs.yml `hooks:`): the parts of the site generated from the code at build time.

- `<!-- cli-reference -->` in a page becomes the CLI reference (tools/cli_reference.py, from the parsers);
- `<!-- results-table: TASK -->` becomes the task's results table (tools/results_table.py, from docs/results.json);
- `<!-- figures: PAGE -->` becomes the figures a short real run drew (tools/docs_figures.py wrote them and their
  manifest into DOCS_FIGURES, default build/docs-figures/); the PNGs are added to the site under figures/PAGE/.

A placeholder the hooks cannot fill fails the build, as strict mode does for a warning.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import cli_reference  # noqa: E402
import results_table  # noqa: E402

PLACEHOLDER = re.compile(r"<!-- (cli-reference|results-table: (\w+)|figures: (\w+)) -->")


def figures_dir() -> Path:
    return Path(os.environ.get("DOCS_FIGURES", ROOT / "build" / "docs-figures"))


def manifest() -> dict:
    path = figures_dir() / "manifest.json"
    if not path.exists():
        raise PluginError(
            f"{path} is missing: run `python tools/docs_figures.py {figures_dir()}` first (make docs does)"
        )
    return json.loads(path.read_text(encoding="utf-8"))["pages"]


def on_files(files: Files, config) -> Files:
    """Add the drawn figures to the site as figures/PAGE/NAME.png."""
    for page, entry in manifest().items():
        for name in entry["figures"]:
            source = figures_dir() / page / name
            files.append(File.generated(config, f"figures/{page}/{name}", abs_src_path=str(source)))
    return files


def figures_markdown(page_name: str, page_path: str) -> str:
    entry = manifest().get(page_name)
    if entry is None:
        raise PluginError(f"{page_path}: no figures drawn for {page_name!r} (tools/docs_figures.py RUNS)")
    if entry.get("skipped"):
        return f"*Not drawn for this build: {entry['skipped']}.*"
    up = "../" * page_path.count("/")
    metrics = ", ".join(f"{k} {v}" for k, v in entry.get("metrics", {}).items())
    lines = [f"Drawn by `{entry['command']}` (a short run, so its numbers are not the results below: {metrics})."]
    for name in entry["figures"]:
        lines += ["", f"**`{name}`**", "", f"![{page_name}: {name}]({up}figures/{page_name}/{name})"]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    rows = None

    def fill(match: re.Match) -> str:
        nonlocal rows
        if match.group(1) == "cli-reference":
            return cli_reference.cli_markdown()
        if match.group(2):
            rows = rows or results_table.load_rows()
            if not any(r["task"] == match.group(2) for r in rows):
                raise PluginError(f"{page.file.src_uri}: no rows for task {match.group(2)!r} in docs/results.json")
            return results_table.task_table(rows, match.group(2))
        return figures_markdown(match.group(3), page.file.src_uri)

    return PLACEHOLDER.sub(fill, markdown)
