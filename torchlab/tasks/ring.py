"""How `ring-mlp` trains, evaluates and predicts; its settings and recipes are in torchlab/recipes/ring.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.rings import sample_ring_points, split, two_circles
from torchlab.device import one_cpu_thread
from torchlab.errors import UsageError
from torchlab.guards import check_memory, finite_pair, refuse_unused
from torchlab.full_batch import fit_and_save
from torchlab.inference import predict_outputs
from torchlab.metrics import BinaryAccuracy, binary_accuracy
from torchlab.models import build_model
from torchlab.recipes.ring import CARD, RECIPES, RingConfig
from torchlab.tasks import register_task
from torchlab.tasks.base import InferenceOptions, Run, RunResult, TaskSpec, make_optimizer

__all__ = ["RingConfig", "RECIPES", "train", "evaluate", "predict"]

DEFAULT_POINTS = {"ring": 2000, "circles": 100}


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
    return {"dataset": cfg.dataset, "points": points, "a": cfg.a, "b": cfg.b, "box": cfg.box,
            "train_fraction": cfg.train_fraction, "seed": seed}


def train(cfg: RingConfig, run: Run) -> RunResult:
    """Train the 2->h->1 net on ring points; one checkpoint at the end (see torchlab.full_batch)."""
    data = data_spec(cfg, run.seed)
    n = data["points"] * (2 if data["dataset"] == "circles" else 1)
    # per point: coordinates, label and about four float32 activations (and gradients) per hidden unit
    check_memory(n * (16 + 16 * cfg.hidden), f"--points {data['points']:,} with --hidden {cfg.hidden}",
                 "lower --points or --hidden", run.device)
    x_train, y_train, x_test, y_test = make_points(data)
    if len(x_test) == 0:
        raise UsageError("no test points left; lower --train-fraction or raise --points")
    model_kwargs = {"hidden": cfg.hidden}
    model = build_model("ring-mlp", **model_kwargs)
    batches = TensorBatcher((x_train, y_train), cfg.batch_size, shuffle=cfg.batch_size is not None,
                            device=run.device, seed=run.seed)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    trainer = run.trainer(
        model, nn.BCEWithLogitsLoss(), optimizer, metrics={"accuracy": BinaryAccuracy()},
        monitor="train_loss", restore_best=False, scheduler=scheduler, scheduler_interval=interval,
        meta={"model_name": "ring-mlp", "model_kwargs": model_kwargs, "data": data,
              "normalization": {"input": "points (x1, x2) as they are; output: logit of 'in the ring'"}},
    )

    def test_metrics() -> dict[str, float]:
        return {"test_accuracy": binary_accuracy(predict_outputs(model, x_test), y_test)}

    with one_cpu_thread(run.device):
        fit = fit_and_save(trainer, batches, run.out, resume=run.resume, evaluate=test_metrics)
    summary: dict[str, Any] = {
        "task": run.task, "recipe": run.recipe, "dataset": data["dataset"], "device": str(run.device),
        "train_points": len(x_train), "test_points": len(x_test), "epochs": fit.epochs_run,
        "fit_seconds": round(fit.fit_seconds, 3), "train_loss": fit.last["train_loss"],
        "test_accuracy": test_metrics()["test_accuracy"],
        "hand_set_net": f"ring-net a={data['a']:g}, b={data['b']:g} (L1 ring, not trained)",
        "hand_set_accuracy": hand_set_accuracy(x_test, y_test, data["a"], data["b"]),
        "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main and run.figures:
        figures = write_figures(model, fit.history, data, x_test, y_test, run.out / "figures")
        summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)


def write_figures(model: nn.Module, history: list[dict[str, float]], data: dict[str, Any], x_test: torch.Tensor,
                  y_test: torch.Tensor, folder: Path) -> list[Path]:
    """Loss curve and the decision map of the trained net next to the hand-set one."""
    from torchlab.plots.common import plot_history
    from torchlab.plots.small import plot_trained_ring_maps

    paths = [folder / "loss.png", folder / "decision_map.png"]
    plot_history(history, paths[0], title=f"ring-mlp on {data['dataset']}")
    trained = lambda pts: predict_outputs(model, pts)  # noqa: E731
    hand = build_model("ring-net", a=data["a"], b=data["b"])
    if data["dataset"] == "ring":
        plot_trained_ring_maps(trained, hand, x_test, y_test, data["box"], paths[1], rings=(data["a"], data["b"]))
    else:
        plot_trained_ring_maps(trained, hand, x_test, y_test, 3.6, paths[1],
                               names=("label 1 (radius 1.1)", "label 0 (radius 3)"))
    return paths


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """Accuracy and loss on the checkpoint's test points, next to the hand-set net's accuracy."""
    refuse_unused(options, "ring-mlp evaluate (its points are rebuilt from the checkpoint)", "data")
    data = meta["data"]
    _, _, x_test, y_test = make_points(data)
    logits = predict_outputs(model, x_test, options.batch_size)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y_test).item()
    return {"accuracy": binary_accuracy(logits, y_test), "loss": loss,
            "hand_set_accuracy": hand_set_accuracy(x_test, y_test, data["a"], data["b"]), "points": len(y_test)}


def predict(model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions) -> list[dict[str, Any]]:
    """One record per point x1,x2 given or test point --index: in the ring or not, and the probability."""
    refuse_unused(options, "ring-mlp predict", "data", "submission", "boxes", "detect")
    rows: list[tuple[str, list[float], int | None]] = []
    for text in inputs:
        x1, x2 = finite_pair(text, "a point x1,x2", "1.5,0.2")
        rows.append((f"({x1:g}, {x2:g})", [x1, x2], None))
    if options.index:
        _, _, x_test, y_test = make_points(meta["data"])
        for index in options.index:
            if not 0 <= index < len(x_test):
                raise UsageError(f"--index must be in 0..{len(x_test) - 1} (the test points), got {index}")
            x1, x2 = x_test[index].tolist()
            rows.append((f"test[{index}] ({x1:.3f}, {x2:.3f}), label {int(y_test[index])}", [x1, x2],
                         int(y_test[index])))
    if not rows:
        raise UsageError("give points x1,x2 (e.g. 1.5,0.2) or --index N")
    probs = predict_outputs(model, torch.tensor([p for _, p, _ in rows])).sigmoid().reshape(-1).tolist()
    return [{"input": label, "x1": point[0], "x2": point[1], "in_ring": p >= 0.5, "probability": p, "true": true}
            for (label, point, true), p in zip(rows, probs)]


def format_prediction(record: dict[str, Any]) -> str:
    return f"{record['input']}: in ring {record['in_ring']} (probability {record['probability']:.3f})"


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` test points, rebuilt from the checkpoint."""
    return make_points(meta["data"])[2][:count]


register_task(TaskSpec.from_card(CARD, train=train, evaluate=evaluate, predict=predict,
                                 format_prediction=format_prediction, example_inputs=example_inputs))
