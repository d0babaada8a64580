"""Gradient accumulation (`accumulate=N`, `--accumulate N`): batch 16 x accumulate 4 trains exactly like
batch 64 (float64, a net without batch norm), with the epoch's short last window weighted by its
samples, the schedule and gradient clipping applied per optimizer step, and under DDP one gradient
all-reduce per optimizer step (no_sync on the other batches), on one process (two Gloo ranks:
tests/runtime/test_ddp_control.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from accumulate_worker import EPOCHS, train
from torchlab import Trainer
from torchlab.config import TrainConfig, with_overrides
from torchlab.data import TensorBatcher
from torchlab.engine.optim import make_optimizer
from torchlab.errors import TrainingError, UsageError


def assert_close(a, b):
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-12), f"{key}: {(a[key] - b[key]).abs().max():.3g} apart"


@pytest.mark.parametrize("n, grad_clip", [(192, None), (200, None), (200, 0.05)])
def test_batch_16_accumulated_4_times_trains_like_batch_64(n, grad_clip):
    """n=200: the epoch ends on a window of one batch of 8 samples (batch 64's last batch holds the same 8)."""
    accumulated, acc_result, _ = train(16, 4, n, grad_clip)
    plain, plain_result, _ = train(64, 1, n, grad_clip)
    assert_close(accumulated, plain)
    for a, b in zip(acc_result.history, plain_result.history):  # the mean loss over the same samples
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)
    # and not like batch 16 stepping every batch
    alone, _, _ = train(16, 1, n, grad_clip)
    assert not torch.allclose(alone["0.weight"], plain["0.weight"], atol=1e-6)


def test_the_short_last_window_is_a_mean_over_its_samples_and_an_unknown_length_still_steps():
    # 200 samples in 13 batches of 16 (the last of 8), windows of 5: 80, 80 and 40 samples
    accumulated, _, _ = train(16, 5, 200)
    plain, _, _ = train(80, 1, 200)
    assert_close(accumulated, plain)
    # batches without a length: the last, short window steps after the loop
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 2, generator=g, dtype=torch.float64)
    models = []
    for batches, accumulate in (
        (lambda: iter(list(TensorBatcher((x, x.sum(1, keepdim=True)), 4))), 4),
        (lambda: TensorBatcher((x, x.sum(1, keepdim=True)), 16), 1),
    ):
        torch.manual_seed(0)
        model = nn.Linear(2, 1).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        steps = []
        opt.register_step_post_hook(lambda *args, steps=steps: steps.append(1))
        Trainer(model, nn.MSELoss(), opt, epochs=1, accumulate=accumulate, progress=False).fit(batches())
        models.append((model.state_dict(), len(steps)))
    assert_close(models[0][0], models[1][0]) and [m[1] for m in models] == [2, 2]  # 16 + 8 samples


def test_under_ddp_gradients_are_all_reduced_only_on_the_stepping_batch(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        weights, _, allreduces = train(16, 4, 200)
        plain, _, plain_allreduces = train(64, 1, 200)
    finally:
        dist.destroy_process_group()
    assert (allreduces, plain_allreduces) == (EPOCHS * 4, EPOCHS * 4)  # 13 batches: 4 steps an epoch
    alone, _, _ = train(64, 1, 200, ddp_hook=False)
    assert_close(weights, plain) and assert_close(weights, alone)


def test_accumulate_settings_and_the_schedule_length():
    with pytest.raises(ValueError, match="accumulate must be a whole number >= 1, got 0"):
        Trainer(nn.Linear(1, 1), nn.MSELoss(), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), accumulate=0)
    with pytest.raises(UsageError, match="^--accumulate must be a whole number >= 1, got 0$"):
        with_overrides(TrainConfig(), accumulate=0)
    # the one-cycle schedule spans the run's optimizer steps: 10 batches, 4 a step -> 3 steps an epoch
    cfg = with_overrides(TrainConfig(), epochs=2, schedule="onecycle", accumulate=4)
    _, scheduler, interval = make_optimizer(nn.Linear(1, 1), cfg, 10)
    assert interval == "batch" and scheduler.total_steps == 6
    assert make_optimizer(nn.Linear(1, 1), with_overrides(cfg, accumulate=1), 10)[1].total_steps == 20


def test_torchrun_needs_batches_with_a_length_to_accumulate():
    class TwoRanks:
        rank, world_size, local_rank, distributed, is_main = 0, 2, 0, True, True

    x = torch.ones(8, 1)
    trainer = Trainer(
        nn.Linear(1, 1),
        nn.MSELoss(),
        torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
        epochs=1,
        accumulate=2,
        progress=False,
    )
    trainer.world = TwoRanks()
    with pytest.raises(
        TrainingError, match="^gradient accumulation under torchrun needs training batches with a length"
    ):
        trainer.fit(iter(list(TensorBatcher((x, x), 2))))
