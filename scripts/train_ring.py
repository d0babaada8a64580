"""Train a 2->16->1 ReLU net to tell points inside the ring 1 <= |x| <= 2 from points outside.

The hand-set ring net (`torchlab ring`) draws the ring with 31 parameters chosen by hand;
here a small MLP learns it from 1,400 labeled points with binary cross-entropy. Read it
top to bottom: device, data, model, loss, optimizer, Trainer, test accuracy, figure, and
the checkpoint loaded back for a prediction.

    python scripts/train_ring.py                        # the accelerator if there is one, else the CPU
    python scripts/train_ring.py --device cpu --epochs 300
    python scripts/train_ring.py --device cuda          # one GPU
    torchrun --nproc_per_node=2 scripts/train_ring.py --device cpu   # two processes (DDP, Gloo)
"""

import argparse

import torch
from torch import nn

import torchlab
from torchlab.runtime import distributed
from torchlab.data.batcher import TensorBatcher
from torchlab.data.ring import sample_ring_points, split
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import BinaryAccuracy, binary_accuracy
from torchlab.tasks.ring.plots import write_ring_figures as write_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu (default: auto)")
    parser.add_argument("--epochs", type=int, default=1000, help="full-batch steps (default: 1000)")
    parser.add_argument("--lr", type=float, default=0.02, help="AdamW learning rate (default: 0.02)")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units (default: 16)")
    parser.add_argument("--out", default="checkpoints/train_ring", help="folder for checkpoints and figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # 1. Device and seeds (under torchrun: one process per device, joined into a group).
    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)

    # 2. Data: 2,000 points uniform in [-2.5, 2.5]^2, label 1 inside the circular ring; 70% train.
    x, y = sample_ring_points(2000, a=1.0, b=2.0, box=2.5, seed=args.seed)
    x_train, y_train, x_test, y_test = split(x, y, 0.7, seed=args.seed)
    batches = TensorBatcher((x_train, y_train), None, device=device)  # None: every point in one batch

    # 3. Model (one logit per point), loss and optimizer.
    model = torchlab.build_model("ring-mlp", hidden=args.hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)

    # 4. The Trainer: a thousand tiny epochs, so write the checkpoint every 100 epochs and after the last.
    trainer = torchlab.Trainer(
        model, nn.BCEWithLogitsLoss(), optimizer, metrics={"accuracy": BinaryAccuracy()}, epochs=args.epochs,
        early_stopping=torchlab.EarlyStopping("train_loss", "min", patience=None, restore_best_weights=False),
        checkpoint_dir=args.out, checkpoint_every=100, device=device,
        checkpoint_meta={"task": "ring-mlp", "model_name": "ring-mlp", "model_kwargs": {"hidden": args.hidden},
                         "data": {"dataset": "ring", "points": 2000, "a": 1.0, "b": 2.0, "box": 2.5,
                                  "train_fraction": 0.7, "seed": args.seed}},
    )
    fit = trainer.fit(batches)

    if world.is_main:
        # 5. Test accuracy and the decision map next to the hand-set net's.
        accuracy = binary_accuracy(predict_outputs(model, x_test), y_test)
        print(f"{fit.epochs_run} steps in {fit.fit_seconds:.2f} s; train loss {fit.last['train_loss']:.4f}; "
              f"test accuracy {accuracy:.4f}")
        data = {"dataset": "ring", "a": 1.0, "b": 2.0, "box": 2.5}
        figures = write_figures(model, fit.history, data, x_test, y_test, trainer.checkpoint_dir / "figures")
        print("figures:", ", ".join(str(p) for p in figures))

        # 6. The checkpoint alone is enough to predict.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "last.pt", device="cpu")
        point = torch.tensor([[1.5, 0.0]])
        p = float(predict_outputs(loaded, point).sigmoid())
        print(f"last.pt (epoch {meta['epoch']}): (1.5, 0) is in the ring with probability {p:.3f}")
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
