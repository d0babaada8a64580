"""Fit brightness = w0 + w1*x + w2*y to a 32x32 gray patch of a photo, two ways, and check both.

First the seed's loop written out by hand (error, gradient (2/N) X^T err, step), then the same
model as an nn.Module trained by torch.optim.SGD through the Trainer. Both must land on the
least-squares answer. Read it top to bottom: device, data, the two loops, the comparison, a
figure, and the checkpoint loaded back for a prediction.

    python scripts/train_patch.py                      # the accelerator if there is one, else the CPU
    python scripts/train_patch.py --device cpu --epochs 500
    python scripts/train_patch.py --device cuda        # one GPU
    torchrun --nproc_per_node=2 scripts/train_patch.py --device cpu   # two processes (DDP, Gloo)
"""

import argparse

import torch
from torch import nn

import torchlab
from torchlab.runtime import distributed
from torchlab.data.batcher import TensorBatcher
from torchlab.data.patch import PatchScaling, design_matrix, photo_patch
from torchlab.engine.inference import predict_outputs
from torchlab.tasks.patch.plots import plot_patch_panels
from torchlab.tasks.patch.train import least_squares, manual_descent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu (default: auto)")
    parser.add_argument("--epochs", type=int, default=300, help="full-batch steps (default: 300)")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate on the scaled data (default: 0.5)")
    parser.add_argument("--out", default="checkpoints/train_patch", help="folder for checkpoints and figures")
    args = parser.parse_args()

    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(world.rank)

    # 1. Data: a patch of matplotlib's grace_hopper.jpg; one design row [1, x, y] per pixel.
    #    Scaling x, y and brightness to [0, 1] makes one learning rate suit all three weights.
    patch = photo_patch()
    rows64, targets64 = design_matrix(patch)
    scaling = PatchScaling.unit(patch.shape[0])
    rows, targets = (t.to(device, torch.float32) for t in scaling.apply(rows64, targets64))

    # 2. The seed's loop by hand: w <- w - lr * (2/N) X^T (X w - I).
    w_manual, _ = manual_descent(rows, targets, args.lr, args.epochs)

    # 3. The same model through autograd, torch.optim and the Trainer (one checkpoint, at the end).
    model = torchlab.build_model("patch-linear")
    trainer = torchlab.Trainer(
        model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=args.lr), epochs=args.epochs,
        early_stopping=torchlab.EarlyStopping("train_loss", "min", patience=None, restore_best_weights=False),
        checkpoint_dir=args.out, checkpoint_every=args.epochs, device=device,
        checkpoint_meta={"task": "patch-linear", "model_name": "patch-linear", "model_kwargs": {}},
    )
    trainer.fit(TensorBatcher((rows, targets), None, device=device))

    if world.is_main:
        # 4. Both against least squares, in gray levels and pixels.
        exact = least_squares(rows64, targets64)
        for name, w in (("manual", w_manual), ("autograd", model.weight.detach())):
            original = scaling.to_original(w.to("cpu", torch.float64))
            gap = float(torch.linalg.norm(original - exact) / torch.linalg.norm(exact))
            print(f"{name:8s} w = {[round(v, 4) for v in original.tolist()]}  (relative difference {gap:.1e})")
        print(f"lstsq    w = {[round(v, 4) for v in exact.tolist()]}")

        # 5. The patch, the fitted plane and what is left over.
        plane = (rows64 @ exact).numpy().reshape(patch.shape)
        print("figure:", plot_patch_panels(patch, plane, trainer.checkpoint_dir / "figures" / "panels.png"))

        # 6. The checkpoint alone predicts (scaled units in, scaled units out).
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "last.pt", device="cpu")
        x, y = 3.0, 17.0
        scaled_row, _ = scaling.apply(torch.tensor([[1.0, x, y]], dtype=torch.float64), torch.zeros(1))
        value = float(predict_outputs(loaded, scaled_row.float())) * scaling.brightness
        print(f"last.pt (epoch {meta['epoch']}): brightness at x={x:g}, y={y:g} is {value:.1f} "
              f"(the photo: {patch[int(y), int(x)]:.1f})")
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
