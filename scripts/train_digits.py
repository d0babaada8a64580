"""Train the 64->32->10 digit MLP on scikit-learn's 8x8 digits, step by step.

Everything `torchlab train digit-mlp` does, in one file you can read top to bottom:
device, data, model, loss and optimizer, the Trainer with early stopping and checkpoints,
the test set, the figures, and loading the checkpoint back for a prediction.

    python scripts/train_digits.py                       # the accelerator if there is one, else the CPU
    python scripts/train_digits.py --device cpu --epochs 5
    python scripts/train_digits.py --device cuda         # one GPU
    torchrun --nproc_per_node=2 scripts/train_digits.py --device cpu   # two processes (DDP, Gloo on the CPU)
"""

import argparse

import torch
from torch import nn

import torchlab
from torchlab.runtime import distributed
from torchlab.data.batcher import TensorBatcher
from torchlab.data.splits import split_indices
from torchlab.data.digits import PIXEL_SCALE, load_digits_split
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import Accuracy, accuracy
from torchlab.tasks.digits.plots import write_digit_figures as write_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu (default: auto)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs (default: 20)")
    parser.add_argument("--lr", type=float, default=3e-2, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per batch (default: 64)")
    parser.add_argument("--patience", type=int, default=5, help="early stopping patience in epochs (default: 5)")
    parser.add_argument("--out", default="checkpoints/train_digits", help="folder for checkpoints and figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # 1. Device and seeds. Under torchrun every process joins the group and takes its own GPU.
    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)

    # 2. Data: 1,437 training digits (10% held out for validation) and 360 test digits, as tensors
    #    that live on the device; a TensorBatcher slices them with a fresh permutation each epoch.
    data = load_digits_split()
    keep, hold = split_indices(len(data.x_train), 0.1, seed=args.seed)
    train = TensorBatcher((data.x_train[keep], data.y_train[keep]), args.batch_size, shuffle=True,
                          device=device, seed=args.seed)
    val = TensorBatcher((data.x_train[hold], data.y_train[hold]), 4096, device=device)

    # 3. Model, loss, optimizer and a learning rate that rises then falls over the run (one-cycle).
    model_kwargs = {"hidden": 32}
    model = torchlab.build_model("digit-mlp", **model_kwargs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * len(train))

    # 4. The Trainer: one epoch = train on every batch, then validate; best.pt and last.pt are written
    #    atomically each epoch, and training stops when val_loss has not improved for `patience` epochs.
    trainer = torchlab.Trainer(
        model, loss_fn, optimizer, metrics={"accuracy": Accuracy()}, epochs=args.epochs,
        scheduler=scheduler, scheduler_interval="batch",
        early_stopping=torchlab.EarlyStopping("val_loss", "min", patience=args.patience),
        checkpoint_dir=args.out, device=device,
        checkpoint_meta={"task": "digit-mlp", "model_name": "digit-mlp", "model_kwargs": model_kwargs,
                         "normalization": {"divide_by": PIXEL_SCALE}, "classes": list(range(10))},
    )
    fit = trainer.fit(train, val)

    if world.is_main:
        # 5. Test accuracy of the best weights (the Trainer restored them) and the figures.
        probs = predict_outputs(model, data.x_test).softmax(dim=1)
        print(f"{fit.epochs_run} epochs in {fit.fit_seconds:.2f} s; best val_loss {fit.best_value:.4f} "
              f"(epoch {fit.best_epoch}); test accuracy {accuracy(probs, data.y_test):.4f}")
        figures = write_figures(fit.history, data, probs.numpy(), trainer.checkpoint_dir / "figures")
        print("figures:", ", ".join(str(p) for p in figures))

        # 6. Inference from the checkpoint alone: torchlab.load rebuilds the model from best.pt.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "best.pt", device="cpu")
        logits = predict_outputs(loaded, data.x_test[:1])
        print(f"best.pt (epoch {meta['epoch']}) says test[0] is a {int(logits.argmax())}; "
              f"the label is {int(data.y_test[0])}")
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
