"""The Trainer's dry run: one training step and one validation batch of the real data and model, a
report of what they showed (shapes, parameter count, losses, memory), and nothing written."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.dry_run import DryRunComplete
from torchlab.engine.metrics import Accuracy


def blobs(n: int):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    return torch.randn(n, 2, generator=g) + y.unsqueeze(1).float(), y


def trainer(out, **kwargs) -> Trainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    settings = {
        "metrics": {"accuracy": Accuracy()},
        "epochs": 5,
        "checkpoint_dir": out,
        "progress": False,
        "early_stopping": EarlyStopping("val_accuracy", "max", patience=2),
        **kwargs,
    }
    return Trainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.5), **settings)


def dry_run(tr: Trainer, train, val=None, **fit):
    with pytest.raises(DryRunComplete) as done:
        tr.fit(train, val, **fit)
    return done.value.report


def test_one_step_and_one_validation_batch_reported_and_nothing_written(tmp_path):
    x, y = blobs(40)
    xv, yv = blobs(20)
    tr = trainer(tmp_path / "run", dry_run=True, accumulate=2)
    tr.model[0].bias.requires_grad_(False)
    model = tr.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first_loss = nn.functional.cross_entropy(model(x[:16]), y[:16])
    first_loss.backward()
    step = {k: before[k] - 0.5 * p.grad for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    report = dry_run(tr, TensorBatcher((x, y), 16), TensorBatcher((xv, yv), 8))
    assert not (tmp_path / "run").exists() and tr.history == []
    # the step: one plain SGD step on the first batch (accumulate 2 does not hold it back)
    for key, want in step.items():
        assert torch.allclose(model.state_dict()[key], want, atol=1e-6), key
    assert torch.equal(model.state_dict()["0.bias"], before["0.bias"])  # frozen
    assert (report.parameters, report.trainable) == (2 * 16 + 16 + 16 * 3 + 3, 2 * 16 + 16 * 3 + 3)
    assert report.inputs == [([16, 2], "float32"), ([16], "int64")] and report.output == [16, 3]
    assert report.val_inputs == [([8, 2], "float32"), ([8], "int64")]
    assert (report.train_batches, report.val_batches, report.accumulate, report.device) == (3, 3, 2, "cpu")
    assert report.train["train_loss"] == pytest.approx(first_loss.item(), rel=1e-6)
    assert set(report.train) == {"train_loss", "train_accuracy"} and set(report.val) == {"val_loss", "val_accuracy"}
    with torch.no_grad():  # validated after the step
        assert report.val["val_loss"] == pytest.approx(
            nn.functional.cross_entropy(model(xv[:8]), yv[:8]).item(), rel=1e-6
        )
    assert report.memory_bytes > 2**20 and report.memory_kind == "peak resident memory of this process"
    assert report.notes == [] and report.step_seconds > 0
    lines = report.lines()
    assert lines[0] == "dry run on cpu: one training step and one validation batch, nothing written"
    assert lines[1] == "parameters: 99 (83 trainable)"
    assert lines[2] == "training batch: inputs (16, 2) float32, targets (16,) int64 -> output (16, 3)"
    assert lines[3] == "batches per epoch: 3 training, 3 validation; one optimizer step per 2 batches"
    assert lines[4].startswith(f"train_loss={first_loss.item():.4g} train_accuracy=")
    assert lines[5] == "validation batch: inputs (8, 2) float32, targets (8,) int64"
    assert lines[6].startswith("val_loss=") and lines[7].startswith("memory: ")


def test_without_validation_data_and_what_the_real_run_would_trip_over(tmp_path):
    x, y = blobs(12)
    tr = trainer(tmp_path / "run", dry_run=True)
    tr.early_stopping = EarlyStopping("train_rmse")
    tr.loss_fn = lambda output, target: nn.functional.cross_entropy(output, target) * float("nan")
    report = dry_run(tr, iter(list(TensorBatcher((x, y), 5))))
    assert report.val is None and report.val_inputs is None and report.train_batches is None
    missing = "early stopping monitors 'train_rmse', which is not among ['train_accuracy', 'train_loss']"
    assert report.notes == ["train_loss is not finite: the run would stop there with an error", missing]
    assert not any(line.startswith("validation batch") for line in report.lines())
    assert report.lines()[3] == "batches per epoch: ? training, ? validation"


def test_a_dry_run_of_a_resume_reads_last_pt_and_changes_nothing(tmp_path):
    x, y = blobs(40)
    train, val = TensorBatcher((x, y), 16), TensorBatcher((x, y), 20)
    trainer(tmp_path, epochs=2).fit(train, val)
    leftover = tmp_path / ".last.pt.abc.tmp"
    leftover.write_bytes(b"torn")
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    tr = trainer(tmp_path, dry_run=True)
    saved = read_checkpoint(tmp_path / "last.pt")["state_dict"]
    report = dry_run(tr, train, val, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files  # the stale file too: nothing tidied
    assert tr.start_epoch == 2
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    model.load_state_dict(saved)
    with torch.no_grad():
        want = nn.functional.cross_entropy(model(x[:16]), y[:16]).item()
    assert report.train["train_loss"] == pytest.approx(want, rel=1e-6)  # the step started from last.pt's weights
