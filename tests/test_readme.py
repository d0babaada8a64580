"""The README: short, its quickstart as `make` runs it, its results table generated from docs/results.json,
every task listed, every link into the site pointing at a page that exists.

The README's Python examples moved into the site (docs/getting-started.md, docs/trainer.md), where
tests/test_docs.py runs them; "How a run flows" stays here and tests/test_layout.py checks it against a run.
"""

from __future__ import annotations

import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import results_table  # noqa: E402

README = ROOT / "README.md"
MAX_LINES = 200


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_the_readme_is_at_most_200_lines():
    assert len(readme().splitlines()) <= MAX_LINES


def test_the_quickstart_commands_are_the_makefile_targets():
    text = readme()
    assert "make demo   # creates .venv, installs torchlab, trains the digit MLP" in text
    assert "make test   # creates .venv if needed, installs torchlab[dev], runs the test suite" in text
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+) ", text, flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def test_the_results_table_is_the_one_generated_from_the_record():
    """Edit docs/results.json, then run `python tools/results_table.py`: a table edited by hand fails here."""
    text = readme()
    assert results_table.with_table(text, results_table.glance_table(results_table.load_rows())) == text
    table = text.split(results_table.START, 1)[1].split(results_table.END, 1)[0]
    assert table.count("\n| ") >= 6  # the header's separator and the rows marked glance
    assert "older code" in table  # the GPU rows of 2026-11-27 say so


def test_the_results_check_fails_on_a_changed_figure(monkeypatch, tmp_path):
    changed = tmp_path / "README.md"
    changed.write_text(readme().replace("**0.980**", "**0.990**", 1), encoding="utf-8")
    monkeypatch.setattr(results_table, "README", changed)
    assert results_table.main(["--check"]) == 1
    monkeypatch.setattr(results_table, "README", README)
    assert results_table.main(["--check"]) == 0


def test_every_task_is_listed():
    from torchlab.tasks import task_names

    listed = set(re.findall(r"`([\w-]+)`", readme().split("## The tasks", 1)[1].split("\n## ", 1)[0]))
    assert set(task_names()) <= listed, set(task_names()) - listed


def test_every_link_of_the_readme_points_at_a_file():
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", readme()) if not t.startswith(("http://", "https://"))]
    assert any(t.startswith("docs/tasks/") for t in links) and "docs/reference/cli.md" in links
    missing = [t for t in links if not (ROOT / t).exists()]
    assert missing == []
