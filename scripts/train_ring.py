"""Train a 2->16->1 ReLU net to tell points inside the ring 1 <= |x| <= 2 from points outside.

The hand-set ring net (`torchlab ring`) draws the ring with 31 parameters chosen by hand; here
a small MLP learns it from 1,400 labeled points with binary cross-entropy, as
`torchlab train ring` does. Read it top to bottom: the recipe's config, device, data, model,
loss, optimizer, Trainer, test accuracy, figure, and the checkpoint loaded back for a
prediction. Flags override the recipe's fields; the checkpoint is one `torchlab evaluate`,
`predict` and `train --resume` read.

    python scripts/train_ring.py                        # the accelerator if there is one, else the CPU
    python scripts/train_ring.py --device cpu --epochs 300
    python scripts/train_ring.py --recipe seed --dataset circles   # the assignment's SGD on two circles
    python scripts/train_ring.py --device cuda          # one GPU
    torchrun --nproc_per_node=2 scripts/train_ring.py --device cpu   # two processes (DDP, Gloo)
"""

import argparse

import torch
from torch import nn

import torchlab
from torchlab.cli.flags import add_script_flags, overrides_from
from torchlab.config import as_dict
from torchlab.data.batcher import TensorBatcher
from torchlab.engine.full_batch import fit_and_save
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import BinaryAccuracy, binary_accuracy
from torchlab.engine.optim import make_optimizer
from torchlab.runtime import distributed
from torchlab.runtime.device import one_cpu_thread
from torchlab.tasks import get_task
from torchlab.tasks.ring.plots import write_ring_figures
from torchlab.tasks.ring.train import NORMALIZATION, data_spec, hand_set_accuracy, make_points

TASK = "ring"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_script_flags(parser, get_task(TASK))  # a flag per config field, as `torchlab train TASK --help` lists
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    # 0. The config: the recipe's fields, with the ones given on the command line in their place.
    overrides = overrides_from(args, get_task(TASK))  # the fields given on the command line
    cfg = torchlab.get_recipe(TASK, args.recipe, **overrides)

    # 1. Device and seeds (under torchrun: one process per device, joined into a group).
    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)

    # 2. Data: 2,000 points uniform in [-2.5, 2.5]^2, label 1 inside the circular ring; 70% train. The plain
    #    description goes into the checkpoint, so `torchlab evaluate` draws the same test points again.
    data = data_spec(cfg, args.seed)
    x_train, y_train, x_test, y_test = make_points(data)
    train = TensorBatcher(
        (x_train, y_train), cfg.batch_size, shuffle=cfg.batch_size is not None, device=device, seed=args.seed
    )  # batch_size None: every point in one batch

    # 3. Model (one logit per point), loss, and the optimizer the config names (default: AdamW).
    model_kwargs = {"hidden": cfg.hidden}
    model = torchlab.build_model(cfg.model, **model_kwargs).to(device)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(train))

    # 4. The Trainer: a thousand tiny epochs that keep their last weights, so fit_and_save writes best.pt and
    #    last.pt (the same weights, with the test accuracy) once, after the last epoch.
    trainer = torchlab.Trainer.from_config(
        cfg,
        model,
        loss_fn,
        optimizer,
        metrics={"accuracy": BinaryAccuracy()},
        monitor="train_loss",
        restore_best=False,
        scheduler=scheduler,
        scheduler_interval=interval,
        checkpoint_dir=args.out,
        device=device,
        checkpoint_meta={
            "task": TASK,
            "recipe": args.recipe,
            "seed": args.seed,
            "config": as_dict(cfg),
            "model_name": cfg.model,
            "model_kwargs": model_kwargs,
            "data": data,
            "normalization": NORMALIZATION,
        },
    )

    def test_metrics() -> dict[str, float]:
        return {"test_accuracy": binary_accuracy(predict_outputs(model, x_test), y_test)}

    with one_cpu_thread(device):  # a 65-parameter net: a second CPU thread only adds hand-offs
        fit = fit_and_save(trainer, train, trainer.checkpoint_dir, evaluate=test_metrics)

    if world.is_main:
        # 5. Test accuracy next to the hand-set net's on the same points, and the two decision maps.
        hand = hand_set_accuracy(x_test, y_test, data["a"], data["b"])
        print(
            f"{fit.epochs_run} steps in {fit.fit_seconds:.2f} s; train loss {fit.last['train_loss']:.4f}; "
            f"test accuracy {test_metrics()['test_accuracy']:.4f} (hand-set ring net: {hand:.4f})"
        )
        if not args.no_figures:
            figures = write_ring_figures(model, fit.history, data, x_test, y_test, trainer.checkpoint_dir / "figures")
            print("figures:", ", ".join(str(p) for p in figures))

        # 6. The checkpoint alone is enough to predict.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "last.pt", device="cpu")
        point = torch.tensor([[1.5, 0.0]])
        p = float(predict_outputs(loaded, point).sigmoid())
        print(f"last.pt (epoch {meta['epoch']}): (1.5, 0) is in the ring with probability {p:.3f}")
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
