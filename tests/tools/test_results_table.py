"""tools/results_table.py: the record's rows become the README's and the task pages' tables."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import results_table  # noqa: E402

ROW = {
    "task": "digits",
    "model": "`digit-mlp`",
    "data": "digits",
    "figure": "0.98",
    "seed_figure": "0.85",
    "command": "torchlab train digit-mlp",
    "date": "2026-11-27",
    "machine": "cpu2",
    "load": "0.8",
    "commit": "5274c9e",
    "glance": True,
}


def write(tmp_path, rows):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": rows}), encoding="utf-8")
    return path


def test_a_row_without_its_date_or_commit_is_refused(tmp_path):
    for field in ("date", "commit", "machine", "command"):
        row = {k: v for k, v in ROW.items() if k != field}
        with pytest.raises(ValueError, match=field):
            results_table.load_rows(write(tmp_path, [row]))
    with pytest.raises(ValueError, match="task"):
        results_table.load_rows(write(tmp_path, [{**ROW, "task": "digit-mlp"}]))


def test_a_row_from_older_code_says_so_in_both_tables(tmp_path):
    rows = results_table.load_rows(
        write(tmp_path, [{**ROW, "older_code": "before the split"}, {**ROW, "figure": "0.99", "glance": False}])
    )
    glance, page = results_table.glance_table(rows), results_table.task_table(rows, "digits")
    assert glance.count("\n| ") == 2 and "0.99" not in glance  # only the glance row
    assert "**older code**: before the split" in glance and "**older code**: before the split" in page
    assert page.count("\n| ") == 3 and "`torchlab train digit-mlp`" in page
    assert results_table.task_table(rows, "mnist").count("\n| ") == 1  # the header alone


def test_the_table_goes_between_the_markers_and_nowhere_else():
    text = f"intro\n{results_table.START}\nold | table\n{results_table.END}\nafter"
    assert (
        results_table.with_table(text, "| new |")
        == f"intro\n{results_table.START}\n| new |\n{results_table.END}\nafter"
    )
    with pytest.raises(ValueError, match="markers"):
        results_table.with_table("no markers", "| new |")


def test_every_row_of_the_record_names_its_commit_and_a_known_machine():
    rows = results_table.load_rows()
    assert {r["task"] for r in rows} == set(results_table.TASKS)
    assert all(len(r["commit"]) >= 7 and int(r["commit"], 16) >= 0 for r in rows)
    assert all(r["machine"] in results_table.MACHINE_SHORT for r in rows)
    assert any(r.get("older_code") for r in rows if r["machine"] == "h200")
