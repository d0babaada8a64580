"""Train a 10-class MNIST classifier (mnist-cnn by default), step by step.

Everything `torchlab train mnist` does, in one file you can read top to bottom: device, data,
model, loss and optimizer, the Trainer with early stopping and checkpoints, the test set, the
figures, and loading the checkpoint back for a prediction. It needs the four MNIST IDX files
(raw or .gz) in --data-dir.

    python scripts/train_mnist.py --data-dir ../shared/data/mnist                 # the accelerator if any
    python scripts/train_mnist.py --data-dir ../shared/data/mnist --device cuda   # one GPU
    python scripts/train_mnist.py --data-dir ../shared/data/mnist --device cpu --limit 10000 --epochs 1
    torchrun --nproc_per_node=2 scripts/train_mnist.py --data-dir ../shared/data/mnist --device cpu   # DDP, 2 processes
"""

import argparse

import torch
from torch import nn

import torchlab
from torchlab.runtime import distributed
from torchlab.data.batcher import TensorBatcher
from torchlab.data.mnist import load_mnist, normalization_stats
from torchlab.engine.inference import class_probabilities, predict_outputs
from torchlab.engine.metrics import Accuracy, accuracy
from torchlab.data.splits import hold_out
from torchlab.data.splits import normalize as normalize
from torchlab.tasks.mnist.plots import write_mnist_figures as write_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu (default: auto)")
    parser.add_argument("--data-dir", default="data", help="folder with the four MNIST IDX files (default: data/)")
    parser.add_argument("--model", default="mnist-cnn", help="mnist-cnn | mnist-simple-cnn | mnist-mlp | mnist-linear")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    parser.add_argument("--lr", type=float, default=2e-2, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch and process (default: 128)")
    parser.add_argument("--limit", type=int, help="train on the first N training images only (default: all 60,000)")
    parser.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    parser.add_argument("--patience", type=int, default=2, help="early stopping patience in epochs (default: 2)")
    parser.add_argument("--out", default="checkpoints/train_mnist", help="folder for checkpoints and figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.val_size < 1:
        parser.error("--val-size must be >= 1: early stopping watches the validation loss")

    # 1. Device and seeds. Under torchrun every process joins the group and takes its own GPU.
    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)

    # 2. Data: images (n, 1, 28, 28) in [0, 1], some held out for validation, then normalized with the
    #    training pixels' mean and std. The tensors live on the device; a TensorBatcher slices them.
    data = load_mnist(args.data_dir, limit=args.limit)
    x_train, y_train, x_val, y_val = hold_out(data.x_train, data.y_train, args.val_size, seed=args.seed)
    mean, std = normalization_stats(x_train)
    norm = {"mean": mean, "std": std, "input": "pixels / 255"}
    train = TensorBatcher((normalize(x_train, norm), y_train), args.batch_size, shuffle=True, device=device,
                          seed=args.seed)
    val = TensorBatcher((normalize(x_val, norm), y_val), 2000, device=device)

    # 3. Model, loss, optimizer and a learning rate that rises for a quarter of the run, then falls.
    model_kwargs = {"classes": 10}
    model = torchlab.build_model(args.model, **model_kwargs)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * len(train),
                                                    pct_start=0.25)

    # 4. The Trainer: one epoch = train on every batch, then validate; best.pt and last.pt are written
    #    atomically each epoch, and training stops when val_loss has not improved for `patience` epochs.
    #    Channels-last convolutions are faster on CPUs and GPUs; bf16 autocast acts on CUDA only.
    trainer = torchlab.Trainer(
        model, loss_fn, optimizer, metrics={"accuracy": Accuracy()}, epochs=args.epochs,
        scheduler=scheduler, scheduler_interval="batch",
        early_stopping=torchlab.EarlyStopping("val_loss", "min", patience=args.patience),
        checkpoint_dir=args.out, device=device, channels_last=True, amp=True,
        checkpoint_meta={"task": "mnist", "model_name": args.model, "model_kwargs": model_kwargs,
                         "normalization": norm, "digits": None, "classes": data.class_names()},
    )
    fit = trainer.fit(train, val)

    if world.is_main:
        # 5. Test accuracy of the best weights (the Trainer restored them) and the figures.
        x_test = normalize(data.x_test, norm)
        probs = class_probabilities(predict_outputs(model, x_test, 2000))
        print(f"{fit.epochs_run} epochs in {fit.fit_seconds:.2f} s; best val_loss {fit.best_value:.4f} "
              f"(epoch {fit.best_epoch}); test accuracy {accuracy(probs, data.y_test):.4f}")
        figures = write_figures(fit.history, model, data, probs, norm, trainer.checkpoint_dir / "figures", args.model)
        print("figures:", ", ".join(str(p) for p in figures))

        # 6. Inference from the checkpoint alone: torchlab.load rebuilds the model from best.pt, and its
        #    metadata holds the normalization to apply to new images.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "best.pt", device="cpu")
        p = class_probabilities(predict_outputs(loaded, normalize(data.x_test[:1], meta["normalization"])))[0]
        print(f"best.pt (epoch {meta['epoch']}) says test[0] is a {int(p.argmax())} "
              f"(probability {float(p.max()):.3f}); the label is {int(data.y_test[0])}")
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
