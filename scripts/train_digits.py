"""Train the 64->32->10 digit MLP on scikit-learn's 8x8 digits, step by step.

What `torchlab train digits` trains, in one file you can read top to bottom: the recipe's
config, device, data, model, loss and optimizer, the Trainer with early stopping and checkpoints,
the test set, the figures, and loading the checkpoint back for a prediction. Flags override the
recipe's fields; the checkpoint is one `torchlab evaluate`, `predict` and `train --resume` read.

    python scripts/train_digits.py                       # the accelerator if there is one, else the CPU
    python scripts/train_digits.py --device cpu --epochs 5
    python scripts/train_digits.py --recipe seed         # the notebook's full-batch gradient descent
    python scripts/train_digits.py --device cuda         # one GPU
    torchrun --nproc_per_node=2 scripts/train_digits.py --device cpu   # two processes (DDP, Gloo on the CPU)
"""

import argparse

from torch import nn

import torchlab
from torchlab.cli.flags import add_script_flags, overrides_from
from torchlab.config import as_dict
from torchlab.data.batcher import TensorBatcher
from torchlab.data.digits import load_digits_split
from torchlab.data.splits import split_indices
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import Accuracy, accuracy
from torchlab.engine.optim import make_optimizer
from torchlab.runtime import distributed
from torchlab.runtime.device import one_cpu_thread
from torchlab.tasks import get_task
from torchlab.tasks.digits.plots import write_digit_figures
from torchlab.tasks.digits.train import NORMALIZATION, make_model

TASK = "digits"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_script_flags(parser, get_task(TASK))  # a flag per config field, as `torchlab train TASK --help` lists
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    # 0. The config: the recipe's fields, with the ones given on the command line in their place.
    overrides = overrides_from(args, get_task(TASK))  # the fields given on the command line
    cfg = torchlab.get_recipe(TASK, args.recipe, **overrides)

    # 1. Device and seeds. Under torchrun every process joins the group and takes its own GPU.
    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)

    # 2. Data: 1,437 training digits (cfg.val_fraction of them held out for validation) and 360 test digits,
    #    as tensors that live on the device; a TensorBatcher slices them with a fresh permutation each epoch.
    data = load_digits_split()
    x_train, y_train, val = data.x_train, data.y_train, None
    if cfg.val_fraction > 0:
        keep, hold = split_indices(len(x_train), cfg.val_fraction, seed=args.seed)
        val = TensorBatcher((x_train[hold], y_train[hold]), 4096, device=device)
        x_train, y_train = x_train[keep], y_train[keep]
    train = TensorBatcher(
        (x_train, y_train), cfg.batch_size, shuffle=cfg.batch_size is not None, device=device, seed=args.seed
    )  # batch_size None: every digit in one batch

    # 3. Model (standardized pixels or the seed's N(0, 0.1^2) start when the recipe says so), loss, and the
    #    optimizer and learning-rate schedule the config names (default: AdamW, one-cycle stepped per batch).
    model, model_kwargs = make_model(cfg, x_train)
    model.to(device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(train))

    # 4. The Trainer: one epoch = train on every batch, then validate; best.pt and last.pt are written
    #    atomically each epoch, and training stops when `monitor` has not improved for cfg.patience epochs.
    monitor = "val_loss" if val is not None else "train_loss"
    #    Trainer.from_config hands it every training field of the config (epochs, early stopping, clipping, ...).
    trainer = torchlab.Trainer.from_config(
        cfg,
        model,
        loss_fn,
        optimizer,
        metrics={"accuracy": Accuracy()},
        monitor=monitor,
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
            "normalization": NORMALIZATION,
            "classes": list(range(10)),
        },
    )
    with one_cpu_thread(device):  # a 2,410-parameter net: a second CPU thread only adds hand-offs
        fit = trainer.fit(train, val)

    if world.is_main:
        # 5. Test accuracy of the best weights (the Trainer restored them), kept in best.pt, and the figures.
        probs = predict_outputs(model, data.x_test).softmax(dim=1)
        test_accuracy = accuracy(probs, data.y_test)
        add_metrics(trainer.checkpoint_dir / "best.pt", {"test_accuracy": test_accuracy})
        print(
            f"{fit.epochs_run} epochs in {fit.fit_seconds:.2f} s; best {monitor} {fit.best_value:.4f} "
            f"(epoch {fit.best_epoch}); test accuracy {test_accuracy:.4f}"
        )
        if not args.no_figures:
            figures = write_digit_figures(fit.history, data, probs.numpy(), trainer.checkpoint_dir / "figures")
            print("figures:", ", ".join(str(p) for p in figures))

        # 6. Inference from the checkpoint alone: torchlab.load rebuilds the model from best.pt.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "best.pt", device="cpu")
        logits = predict_outputs(loaded, data.x_test[:1])
        print(
            f"best.pt (epoch {meta['epoch']}) says test[0] is a {int(logits.argmax())}; "
            f"the label is {int(data.y_test[0])}"
        )
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
