"""Train an MNIST classifier (mnist-cnn by default), step by step.

What `torchlab train mnist` trains, in one file you can read top to bottom: the recipe's config,
device, data, model, loss and optimizer, the Trainer with early stopping and checkpoints, the
test set, the figures, and loading the checkpoint back for a prediction. Flags override the
recipe's fields; the checkpoint is one `torchlab evaluate`, `predict` and `train --resume` read.
It needs the four MNIST IDX files (raw or .gz) in --data-dir.

    python scripts/train_mnist.py --data-dir ../shared/data/mnist                 # the accelerator if any
    python scripts/train_mnist.py --data-dir ../shared/data/mnist --device cuda   # one GPU
    python scripts/train_mnist.py --data-dir ../shared/data/mnist --device cpu --limit 10000 --epochs 1
    python scripts/train_mnist.py --data-dir ../shared/data/mnist --recipe long   # wider, augmented, 12 epochs
    torchrun --nproc_per_node=2 scripts/train_mnist.py --data-dir ../shared/data/mnist --device cpu   # DDP, 2 processes
"""

import argparse

import torch

import torchlab
from torchlab.cli.flags import add_script_flags, overrides_from
from torchlab.config import as_dict
from torchlab.data.batcher import TensorBatcher
from torchlab.data.mnist import load_mnist, normalization_stats
from torchlab.data.splits import hold_out, normalize
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.metrics import Accuracy, BinaryAccuracy, accuracy
from torchlab.runtime import distributed
from torchlab.tasks import get_task
from torchlab.tasks.mnist.infer import EVAL_BATCH, probabilities
from torchlab.tasks.mnist.plots import write_mnist_figures
from torchlab.tasks.mnist.train import VAL_SHARE, augment_batch, make_loss, make_mnist_optimizer, make_model

TASK = "mnist"


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
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    # 2. Data: images (n, 1, 28, 28) in [0, 1] (with --digits A B only those two, targets 0/1), some held out
    #    for validation, then normalized with the training pixels' mean and std. The tensors live on the
    #    device; a TensorBatcher slices them, moving each training batch at random when cfg.augment.
    data = load_mnist(cfg.data_dir, cfg.digits, cfg.limit, download=cfg.download and world.is_main)
    val_size = cfg.val_size if cfg.val_size is not None else round(len(data.x_train) / VAL_SHARE)
    x_train, y_train, x_val, y_val = hold_out(data.x_train, data.y_train, val_size, seed=args.seed)
    mean, std = normalization_stats(x_train) if cfg.normalize else (0.0, 1.0)
    norm = {"mean": mean, "std": std, "input": "pixels / 255"}
    train = TensorBatcher(
        (normalize(x_train, norm), y_train),
        cfg.batch_size,
        shuffle=True,
        device=device,
        seed=args.seed,
        transform=augment_batch if cfg.augment else None,
    )
    val = None if x_val is None else TensorBatcher((normalize(x_val, norm), y_val), EVAL_BATCH, device=device)

    # 3. Model (N(0, init^2) weights when the recipe says so), loss (cross-entropy with cfg.label_smoothing;
    #    one logit and binary cross-entropy, or the post's loss, for two digits), optimizer and schedule.
    model, model_kwargs = make_model(cfg, data.classes)
    model.to(device)
    loss_fn = make_loss(data.classes, cfg.loss, cfg.label_smoothing)
    optimizer, scheduler, interval = make_mnist_optimizer(model, cfg, len(train))  # Adam's beta2 when set

    # 4. The Trainer: one epoch = train on every batch, then validate; best.pt and last.pt are written
    #    atomically each epoch, and training stops when `monitor` has not improved for cfg.patience epochs.
    #    Channels-last convolutions are faster on CPUs and GPUs; bf16 autocast acts on CUDA only.
    monitor = "val_loss" if val is not None else "train_loss"
    #    Trainer.from_config hands it every training field of the config (epochs, early stopping, clipping, ...).
    trainer = torchlab.Trainer.from_config(
        cfg,
        model,
        loss_fn,
        optimizer,
        metrics={"accuracy": Accuracy() if data.classes > 1 else BinaryAccuracy()},
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
            "normalization": norm,
            "digits": list(data.digits) if data.digits else None,
            "classes": data.class_names(),
            "train_samples": len(x_train),
        },
    )
    fit = trainer.fit(train, val)

    if world.is_main:
        # 5. Test accuracy of the best weights (the Trainer restored them), kept in best.pt, and the figures.
        probs = probabilities(model, normalize(data.x_test, norm))
        test_accuracy = accuracy(probs, data.y_test)
        add_metrics(trainer.checkpoint_dir / "best.pt", {"test_accuracy": test_accuracy})
        print(
            f"{fit.epochs_run} epochs in {fit.fit_seconds:.2f} s; best {monitor} {fit.best_value:.4f} "
            f"(epoch {fit.best_epoch}); test accuracy {test_accuracy:.4f}"
        )
        if not args.no_figures:
            figures = write_mnist_figures(
                fit.history, model, data, probs, norm, trainer.checkpoint_dir / "figures", cfg.model
            )
            print("figures:", ", ".join(str(p) for p in figures))

        # 6. Inference from the checkpoint alone: torchlab.load rebuilds the model from best.pt, and its
        #    metadata holds the normalization to apply to new images and the class names.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "best.pt", device="cpu")
        p = probabilities(loaded, normalize(data.x_test[:1], meta["normalization"]))[0]
        print(
            f"best.pt (epoch {meta['epoch']}) says test[0] is a {meta['classes'][int(p.argmax())]} "
            f"(probability {float(p.max()):.3f}); the label is {int(data.labels_test[0])}"
        )
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
