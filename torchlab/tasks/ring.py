"""`torchlab train ring-mlp`: a 2->16->1 ReLU net learns "inside the ring or not".

The trained counterpart of the hand-set ring net (`torchlab ring`): binary cross-entropy
on one logit, weight decay, full-batch steps through the Trainer. Two data sets:
  ring     points uniform in [-2.5, 2.5]^2, labelled by the circular ring 1 <= |x| <= 2
  circles  the assignment's two circles: radius 1.1 (label 1) and radius 3 (label 0)
70% of the points train, 30% test. The summary puts the trained net's test accuracy next
to the hand-set L1-ring net's accuracy on the same test points.
Recipes: default = AdamW lr 0.02, 1000 full-batch steps; seed = the assignment's plain
SGD, lr 0.1, weight decay 1e-4, 5000 full-batch steps.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.rings import check_radii, sample_ring_points, split, two_circles
from torchlab.device import one_cpu_thread
from torchlab.errors import UsageError
from torchlab.metrics import BinaryAccuracy
from torchlab.models import build_model
from torchlab.tasks import register_task
from torchlab.tasks.base import Task
from torchlab.tasks.full_batch import fit_and_save

DEFAULT_POINTS = {"ring": 2000, "circles": 100}


def make_points(data: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) from a plain description (kept in the checkpoint)."""
    if data["dataset"] == "ring":
        x, y = sample_ring_points(data["points"], data["a"], data["b"], data["box"], seed=data["seed"])
    else:
        x, y = two_circles(data["points"])
    return split(x, y, data["train_fraction"], seed=data["seed"])


def accuracy(logits_or_scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of points whose output is >= 0 exactly when the label is 1."""
    return float(((logits_or_scores >= 0).float() == labels).float().mean())


def hand_set_accuracy(x: torch.Tensor, y: torch.Tensor, a: float, b: float) -> float:
    """Accuracy of the hand-set L1-ring net RingNet(a, b) on the same points."""
    net = build_model("ring-net", a=a, b=b)
    with torch.no_grad():
        return accuracy(net(x.cpu()), y.cpu())


class RingMLPTask(Task):
    name = "ring-mlp"
    help = "2->16->1 ReLU net trained with BCE + weight decay to find ring points (ring or two-circles data)"
    recipes = {
        "default": {"epochs": 1000, "lr": 0.02, "batch_size": None, "weight_decay": 1e-4, "patience": None,
                    "optimizer": "adamw"},
        "seed": {"epochs": 5000, "lr": 0.1, "batch_size": None, "weight_decay": 1e-4, "patience": None,
                 "optimizer": "sgd"},
    }

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dataset", choices=("ring", "circles"), default="ring",
                            help="ring: uniform points labelled by the circular ring (default); "
                                 "circles: the assignment's two circles of radius 1.1 and 3")
        parser.add_argument("--points", type=int, default=None,
                            help="ring: points in the box (default 2000); circles: points per circle (default 100)")
        parser.add_argument("--a", type=float, default=1.0, help="inner radius of the ring (default: 1)")
        parser.add_argument("--b", type=float, default=2.0, help="outer radius of the ring (default: 2)")
        parser.add_argument("--box", type=float, default=2.5, help="ring points lie in [-box, box]^2 (default: 2.5)")
        parser.add_argument("--train-fraction", type=float, default=0.7, help="share of points to train on (default: 0.7)")
        parser.add_argument("--hidden", type=int, default=16, help="hidden units (default: 16)")

    def _data_spec(self, args: argparse.Namespace) -> dict[str, Any]:
        check_radii(args.a, args.b)
        if args.hidden < 1:
            raise UsageError(f"--hidden must be >= 1, got {args.hidden}")
        if args.box <= 0:
            raise UsageError(f"--box must be > 0, got {args.box}")
        points = DEFAULT_POINTS[args.dataset] if args.points is None else args.points
        return {"dataset": args.dataset, "points": points, "a": args.a, "b": args.b, "box": args.box,
                "train_fraction": args.train_fraction, "seed": args.seed}

    def train(self, args: argparse.Namespace) -> dict[str, Any]:
        data = self._data_spec(args)
        x_train, y_train, x_test, y_test = make_points(data)  # bad sizes fail here, before anything is written
        if len(x_test) == 0:
            raise UsageError("no test points left; lower --train-fraction or raise --points")
        ctx = self.context(args)
        hp = ctx.hparams
        model_kwargs = {"hidden": args.hidden}
        model = build_model("ring-mlp", **model_kwargs)
        optimizer_cls = torch.optim.AdamW if hp["optimizer"] == "adamw" else torch.optim.SGD
        optimizer = optimizer_cls(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        batches = TensorBatcher((x_train, y_train), hp["batch_size"], shuffle=hp["batch_size"] is not None,
                                device=ctx.device, seed=ctx.seed)
        trainer = self.make_trainer(
            ctx, args, model, nn.BCEWithLogitsLoss(), optimizer, metrics={"accuracy": BinaryAccuracy()},
            monitor="train_loss", restore_best=False,
            meta={"model_name": "ring-mlp", "model_kwargs": model_kwargs, "data": data,
                  "normalization": {"input": "points (x1, x2) as they are; output: logit of 'in the ring'"}},
        )
        def test_metrics() -> dict[str, float]:
            model.eval()
            with torch.no_grad():
                return {"test_accuracy": accuracy(model(x_test.to(ctx.device)).cpu(), y_test)}

        with one_cpu_thread(ctx.device):
            result = fit_and_save(trainer, batches, ctx.out, resume=ctx.resume, evaluate=test_metrics)
        test_acc = test_metrics()["test_accuracy"]
        summary: dict[str, Any] = {
            "task": self.name, "recipe": ctx.recipe, "dataset": data["dataset"], "device": str(ctx.device),
            "train_points": len(x_train), "test_points": len(x_test), "epochs": result.epochs_run,
            "fit_seconds": round(result.fit_seconds, 3), "train_loss": result.last["train_loss"],
            "test_accuracy": test_acc,
            "hand_set_net": f"ring-net a={data['a']:g}, b={data['b']:g} (L1 ring, not trained)",
            "hand_set_accuracy": hand_set_accuracy(x_test, y_test, data["a"], data["b"]),
            "checkpoint": str(ctx.out / "best.pt"),
        }
        if ctx.is_main and ctx.figures:
            summary["figures"] = str(self.write_figures(model, result.history, data, x_test, y_test, ctx.out / "figures"))
        return summary

    def write_figures(self, model: nn.Module, history, data: dict[str, Any], x_test, y_test, folder) -> Any:
        from torchlab.plots.common import plot_history
        from torchlab.plots.small import plot_trained_ring_maps

        plot_history(history, folder / "loss.png", title=f"ring-mlp on {data['dataset']}")
        trained = lambda pts: model(pts.to(next(model.parameters()).device)).cpu()  # noqa: E731
        hand = build_model("ring-net", a=data["a"], b=data["b"])
        if data["dataset"] == "ring":
            plot_trained_ring_maps(trained, hand, x_test, y_test, data["box"], folder / "decision_map.png",
                                   rings=(data["a"], data["b"]))
        else:
            plot_trained_ring_maps(trained, hand, x_test, y_test, 3.6, folder / "decision_map.png",
                                   names=("label 1 (radius 1.1)", "label 0 (radius 3)"))
        return folder

    # ---------------------------------------------------------------- inference
    def evaluate(self, model, meta, args) -> dict[str, float]:
        data = meta["data"]
        _, _, x_test, y_test = make_points(data)
        device = next(model.parameters()).device
        with torch.no_grad():
            logits = model(x_test.to(device)).cpu()
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y_test).item()
        return {"accuracy": accuracy(logits, y_test), "loss": loss,
                "hand_set_accuracy": hand_set_accuracy(x_test, y_test, data["a"], data["b"]), "points": len(y_test)}

    def predict(self, model, meta, inputs, args) -> str:
        rows: list[tuple[str, list[float]]] = []
        for text in inputs:
            try:
                x1, x2 = (float(v) for v in text.split(","))
            except ValueError:
                raise UsageError(f"give points as x1,x2 (e.g. 1.5,0.2); got {text!r}") from None
            rows.append((f"({x1:g}, {x2:g})", [x1, x2]))
        if args.index:
            _, _, x_test, y_test = make_points(meta["data"])
            for index in args.index:
                if not 0 <= index < len(x_test):
                    raise UsageError(f"--index must be in 0..{len(x_test) - 1} (the test points), got {index}")
                x1, x2 = x_test[index].tolist()
                rows.append((f"test[{index}] ({x1:.3f}, {x2:.3f}), label {int(y_test[index])}", [x1, x2]))
        if not rows:
            raise UsageError("give points x1,x2 (e.g. 1.5,0.2) or --index N")
        device = next(model.parameters()).device
        with torch.no_grad():
            probs = torch.sigmoid(model(torch.tensor([p for _, p in rows], device=device))).cpu().tolist()
        return "\n".join(f"{label}: in ring {p >= 0.5} (probability {p:.3f})" for (label, _), p in zip(rows, probs))


register_task(RingMLPTask())
