"""`torchlab gradcheck`: the table, exit status 0 / 1 / 2, fresh draws unless --seed."""

from __future__ import annotations

from torchlab.cli import main as cli
from torchlab.gradients import runner
from torchlab.gradients.result import CheckResult


def test_gradcheck_one_model_prints_passing_table(capsys):
    status = cli.main(["gradcheck", "ring-net", "--seed", "5"])
    out = capsys.readouterr().out
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("seed: 5 ")
    assert lines[1].split()[:6] == ["model", "parameter", "method", "max", "abs", "err"]
    rows = [line.split() for line in lines[2:-1]]
    assert {r[2] for r in rows} == {"gradcheck", "finite-difference", "hand", "symbolic"}
    assert all(r[5] == "pass" for r in rows)
    assert all(float(r[4]) <= 1e-10 for r in rows if r[2] in ("hand", "symbolic"))
    assert lines[-1] == f"{len(rows)} passed, 0 failed, 0 skipped"


def test_each_run_draws_fresh_points(capsys):
    seeds = set()
    for _ in range(2):
        assert cli.main(["gradcheck", "f"]) == 0
        seeds.add(capsys.readouterr().out.splitlines()[0])
    assert len(seeds) == 2


def test_a_failing_row_exits_1(monkeypatch, capsys):
    bad = CheckResult("f", "x", "hand", 1.0, 0.5, False, "deliberately wrong")
    monkeypatch.setattr(runner, "run_checks", lambda name, seed, budget: [bad])
    assert cli.main(["gradcheck", "f", "--seed", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "deliberately wrong" in out and out.rstrip().endswith("0 passed, 1 failed, 0 skipped")


def test_unknown_model_and_bad_budget_are_usage_errors(capsys):
    assert cli.main(["gradcheck", "no-such-model"]) == 2
    captured = capsys.readouterr()
    assert "unknown model or example 'no-such-model'" in captured.err and "ring-net" in captured.err
    assert captured.out == ""
    assert cli.main(["gradcheck", "f", "--budget", "0"]) == 2
    assert "--budget" in capsys.readouterr().err
