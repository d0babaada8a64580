"""The command line: listings, summaries, help, and one-line errors with exit status 2."""

from __future__ import annotations

import pytest

from torchlab.cli.main import main


def test_models_lists_digit_mlp_with_its_parameter_count(capsys):
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] == ["digit-mlp"])
    assert "DigitMLP" in line and "2,410" in line


def test_summary_prints_the_torchsummary_table(capsys):
    assert main(["summary", "digit-mlp"]) == 0
    out = capsys.readouterr().out
    assert "Linear-1" in out and "[-1, 32]" in out and "Total params: 2,410" in out


def test_help_mentions_every_common_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "digit-mlp", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--epochs",
        "--lr",
        "--batch-size",
        "--device",
        "--seed",
        "--patience",
        "--out",
        "--resume",
        "--recipe",
    ):
        assert flag in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "digit-mlp", "--epochs", "-3"], "--epochs must be a whole number >= 1"),
        (["train", "digit-mlp", "--batch-size", "0"], "--batch-size must be a whole number >= 1"),
        (["train", "digit-mlp", "--lr", "0"], "--lr must be a finite number > 0"),
        (["train", "digit-mlp", "--lr", "nan"], "--lr must be a finite number > 0"),
        (["train", "digit-mlp", "--device", "tpu"], "unknown device"),
        (["train", "digit-mlp", "--resume"], "--resume was given but"),
        (["evaluate", "nowhere.pt"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_with_status_2(tmp_path, capsys, argv, message):
    argv = [a if a != "nowhere.pt" else str(tmp_path / a) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_usage_errors_from_argparse_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "no-such-task"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice" in err


def test_malformed_checkpoint_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["predict", str(bad), "--index", "0"]) == 2  # an exception escaping main would fail here
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().startswith("torchlab predict: error:") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--version"], None),
        (["--help"], None),
        (["train", "--help"], None),
        (["train", "keypoint-net", "--help"], None),
        (["no-such-command"], "invalid choice"),
        (["ring", "--a", "x"], "invalid float value"),
        (["ring", "--a", "3", "--b", "1"], "a ring needs 0 <= a < b"),
        (["evaluate"], "required: checkpoint"),
        (["train", "digit-mlp", "--epochs", "-3"], "--epochs must be a whole number >= 1"),
        (["train", "mnist", "--digits", "3", "3"], "--digits takes two different digits"),
        (["train", "ring-mlp", "--a", "3", "--b", "2"], "a ring needs 0 <= a < b"),
        (["train", "patch-linear", "--ramp", "--image", "x.png"], "--ramp and --image exclude each other"),
        (["train", "keypoint-net", "--missing", "keep"], "invalid choice"),
        (["train", "digit-mlp", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "digit-mlp", "--resume", "--out", "no-such-run-folder"], "--resume was given but"),
    ],
)
def test_help_version_and_usage_errors_do_not_import_torch(argv, error):
    """Start-up: these answer in a fraction of a second because torch (2-5 s to import) is never loaded;
    the settings, flags and usage errors of `train TASK` come from torchlab.recipes, which has no torch."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom torchlab.cli.main import main\ntry:\n    status = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    status = exc.code\nprint(status, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    status, loads_torch = proc.stdout.strip().splitlines()[-1].split()
    assert loads_torch == "False", proc.stderr
    if error is None:
        assert status in ("0", "None") and not proc.stderr
    else:
        assert status == "2" and error in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize(
    "argv, where",
    [(["train", "digit-mlp", "--bogus"], "torchlab train digit-mlp"), (["models", "--x"], "torchlab models")],
)
def test_an_unknown_flag_points_to_the_sub_commands_help(capsys, argv, where):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err == f"{where}: error: unrecognized arguments: {argv[-1]} (see {where} --help)"


def test_a_training_error_is_printed_with_flags_and_other_errors_as_they_are(capsys, monkeypatch):
    import torchlab.api
    from torchlab.cli.main import in_flags
    from torchlab.errors import DataError, FieldName, NonFiniteLoss, UsageError

    def diverge(*args, **kwargs):
        raise NonFiniteLoss("train_loss", float("nan"), 2, 0.5, ("try a lower learning rate (", FieldName("lr"), ")"))

    monkeypatch.setattr(torchlab.api, "train", diverge)
    assert main(["train", "digit-mlp", "--epochs", "1", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        "torchlab train: error: train_loss became nan in epoch 2 (lr 0.5); try a lower learning rate (--lr)\n"
    )
    assert in_flags(UsageError("lr must be positive")) == "lr must be positive"  # only a TrainingError's settings
    assert in_flags(DataError("no file")) == "no file"
