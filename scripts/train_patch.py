"""Fit brightness = w0 + w1*x + w2*y to a 32x32 gray patch of a photo, two ways, and check both.

First the seed's loop written out by hand (error, gradient (2/N) X^T err, step), then the same
model as an nn.Module trained through the Trainer, as `torchlab train patch` does. Both
must land on the least-squares answer. Read it top to bottom: the recipe's config, device,
data, the two loops, the comparison, a figure, and the checkpoint loaded back for a prediction.
Flags override the recipe's fields; the checkpoint is one `torchlab evaluate`, `predict` and
`train --resume` read.

    python scripts/train_patch.py                      # the accelerator if there is one, else the CPU
    python scripts/train_patch.py --device cpu --epochs 500
    python scripts/train_patch.py --recipe seed        # the seed's raw pixels and lr 1e-4: far from least squares
    python scripts/train_patch.py --device cuda        # one GPU
    torchrun --nproc_per_node=2 scripts/train_patch.py --device cpu   # two processes (DDP, Gloo)
"""

import argparse

import torch
from torch import nn

import torchlab
from torchlab.cli.flags import add_script_flags, overrides_from
from torchlab.config import as_dict
from torchlab.data.batcher import TensorBatcher
from torchlab.data.patch import PatchScaling, design_matrix
from torchlab.engine.full_batch import fit_and_save
from torchlab.engine.inference import predict_outputs
from torchlab.engine.optim import make_optimizer
from torchlab.runtime import distributed
from torchlab.runtime.device import one_cpu_thread
from torchlab.tasks import get_task
from torchlab.tasks.patch.plots import plot_patch_panels
from torchlab.tasks.patch.train import least_squares, load_patch, manual_descent, patch_meta

TASK = "patch"


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

    # 2. Data: a patch of matplotlib's grace_hopper.jpg (or the seed's ramp); one design row [1, x, y] per pixel.
    #    Scaling x, y and brightness to [0, 1] (cfg.scale) makes one learning rate suit all three weights.
    patch, source = load_patch(cfg, args.seed)
    rows64, targets64 = design_matrix(patch)
    scaling = PatchScaling.unit(patch.shape[0]) if cfg.scale else PatchScaling()
    rows, targets = (t.to(device, torch.float32) for t in scaling.apply(rows64, targets64))

    with one_cpu_thread(device):  # three weights: a second CPU thread only adds hand-offs
        # 3. The seed's loop by hand: w <- w - lr * (2/N) X^T (X w - I).
        w_manual, _ = manual_descent(rows, targets, cfg.lr, cfg.epochs)

        # 4. The same model through autograd, the optimizer the config names (default: SGD) and the Trainer;
        #    its last weights go into best.pt and last.pt once, after the last epoch (fit_and_save).
        model = torchlab.build_model(cfg.model).to(device)
        train = TensorBatcher(
            (rows, targets), cfg.batch_size, shuffle=cfg.batch_size is not None, device=device, seed=args.seed
        )  # batch_size None: every pixel in one batch
        optimizer, scheduler, interval = make_optimizer(model, cfg, len(train))
        trainer = torchlab.Trainer.from_config(
            cfg,
            model,
            nn.MSELoss(),
            optimizer,
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
                **patch_meta(cfg, source, scaling),
            },
        )
        fit_and_save(trainer, train, trainer.checkpoint_dir)

    if world.is_main:
        # 5. Both against least squares, in gray levels and pixels.
        exact = least_squares(rows64, targets64)
        for name, w in (("manual", w_manual), ("autograd", model.weight.detach())):
            original = scaling.to_original(w.to("cpu", torch.float64))
            gap = float(torch.linalg.norm(original - exact) / torch.linalg.norm(exact))
            print(f"{name:8s} w = {[round(v, 4) for v in original.tolist()]}  (relative difference {gap:.1e})")
        print(f"lstsq    w = {[round(v, 4) for v in exact.tolist()]}")

        # 6. The patch, the fitted plane and what is left over.
        if not args.no_figures:
            plane = (rows64 @ exact).numpy().reshape(patch.shape)
            print("figure:", plot_patch_panels(patch, plane, trainer.checkpoint_dir / "figures" / "panels.png"))

        # 7. The checkpoint alone predicts (scaled units in, scaled units out).
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "last.pt", device="cpu")
        x, y = 3.0, 17.0
        scaled_row, _ = scaling.apply(torch.tensor([[1.0, x, y]], dtype=torch.float64), torch.zeros(1))
        value = float(predict_outputs(loaded, scaled_row.float())) * scaling.brightness
        print(
            f"last.pt (epoch {meta['epoch']}): brightness at x={x:g}, y={y:g} is {value:.1f} "
            f"(the patch: {patch[int(y), int(x)]:.1f})"
        )
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
