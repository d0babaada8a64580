"""How `ring` trains its ring-mlp: ring points, the 2->16->1 net, BCE and the Trainer, scored beside the hand-set
ring net. Config: tasks/ring/config.py; evaluate/predict: infer.py; figures: plots.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.ring import sample_ring_points, split, two_circles
from torchlab.engine.full_batch import fit_and_save
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import BinaryAccuracy, binary_accuracy
from torchlab.engine.optim import make_optimizer
from torchlab.errors import UsageError
from torchlab.models import build_model
from torchlab.runtime.device import one_cpu_thread
from torchlab.runtime.guards import check_memory
from torchlab.tasks.ring.config import RingConfig
from torchlab.tasks.run import Run, RunResult

DEFAULT_POINTS = {"ring": 2000, "circles": 100}
NORMALIZATION = {"input": "points (x1, x2) as they are; output: logit of 'in the ring'"}  # kept in the checkpoint


def make_points(data: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) from a plain description (kept in the checkpoint)."""
    if data["dataset"] == "ring":
        x, y = sample_ring_points(data["points"], data["a"], data["b"], data["box"], seed=data["seed"])
    else:
        x, y = two_circles(data["points"])
    return split(x, y, data["train_fraction"], seed=data["seed"])


def hand_set_accuracy(x: torch.Tensor, y: torch.Tensor, a: float, b: float) -> float:
    """Accuracy of the hand-set L1-ring net RingNet(a, b) on the same points."""
    net = build_model("ring-net", a=a, b=b)
    with torch.no_grad():
        return binary_accuracy(net(x.cpu()), y.cpu())


def data_spec(cfg: RingConfig, seed: int) -> dict[str, Any]:
    """The plain description of the points (kept in the checkpoint, so evaluate can rebuild them)."""
    points = DEFAULT_POINTS[cfg.dataset] if cfg.points is None else cfg.points
    return {
        "dataset": cfg.dataset,
        "points": points,
        "a": cfg.a,
        "b": cfg.b,
        "box": cfg.box,
        "train_fraction": cfg.train_fraction,
        "seed": seed,
    }


def train(cfg: RingConfig, run: Run) -> RunResult:
    """Train the 2->h->1 net on ring points; one checkpoint at the end (see torchlab.engine.full_batch)."""
    data = data_spec(cfg, run.seed)
    n = data["points"] * (2 if data["dataset"] == "circles" else 1)
    # per point: coordinates, label and about four float32 activations (and gradients) per hidden unit
    check_memory(
        n * (16 + 16 * cfg.hidden),
        f"--points {data['points']:,} with --hidden {cfg.hidden}",
        "lower --points or --hidden",
        run.device,
    )
    x_train, y_train, x_test, y_test = make_points(data)
    if len(x_test) == 0:
        raise UsageError("no test points left; lower --train-fraction or raise --points")
    model_kwargs = {"hidden": cfg.hidden}
    model = build_model(cfg.model, **model_kwargs)
    batches = TensorBatcher(
        (x_train, y_train), cfg.batch_size, shuffle=cfg.batch_size is not None, device=run.device, seed=run.seed
    )
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    trainer = run.trainer(
        model,
        nn.BCEWithLogitsLoss(),
        optimizer,
        metrics={"accuracy": BinaryAccuracy()},
        monitor="train_loss",
        restore_best=False,
        scheduler=scheduler,
        scheduler_interval=interval,
        meta={"model_name": cfg.model, "model_kwargs": model_kwargs, "data": data, "normalization": NORMALIZATION},
    )

    def test_metrics() -> dict[str, float]:
        return {"test_accuracy": binary_accuracy(predict_outputs(model, x_test), y_test)}

    with one_cpu_thread(run.device):
        fit = fit_and_save(trainer, batches, run.out, resume=run.resume, evaluate=test_metrics)
    summary: dict[str, Any] = {
        "task": run.task,
        "model": cfg.model,
        "recipe": run.recipe,
        "dataset": data["dataset"],
        "device": str(run.device),
        "train_points": len(x_train),
        "test_points": len(x_test),
        "epochs": fit.epochs_run,
        "fit_seconds": round(fit.fit_seconds, 3),
        "train_loss": fit.last["train_loss"],
        "test_accuracy": test_metrics()["test_accuracy"],
        "hand_set_net": f"ring-net a={data['a']:g}, b={data['b']:g} (L1 ring, not trained)",
        "hand_set_accuracy": hand_set_accuracy(x_test, y_test, data["a"], data["b"]),
        "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main and run.figures:
        from torchlab.tasks.ring.plots import write_ring_figures

        figures = write_ring_figures(model, fit.history, data, x_test, y_test, run.out / "figures")
        summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)
