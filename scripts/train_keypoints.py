"""Train a facial-keypoint net (15 keypoints from 96x96 gray faces), step by step.

Everything `torchlab train keypoint-net` does, in one file you can read top to bottom:
device, data, model, masked loss and optimizer, the Trainer with early stopping and
checkpoints, the validation RMSE, the figures, and loading the checkpoint back.

    python scripts/train_keypoints.py                                  # synthetic faces; accelerator if any
    python scripts/train_keypoints.py --data data/training.csv.gz      # Kaggle's faces (.csv or .csv.gz)
    python scripts/train_keypoints.py --device cpu --epochs 2 --synthetic 400 --width 16
    python scripts/train_keypoints.py --device cuda --model keypoint-cnn   # one GPU, the practical's CNN
    torchrun --nproc_per_node=2 scripts/train_keypoints.py --device cpu    # two processes (DDP, Gloo on the CPU)
"""

import argparse
from pathlib import Path

import torch

import torchlab
from torchlab.runtime import distributed
from torchlab.data.batcher import TensorBatcher
from torchlab.data.keypoints import KEYPOINT_NAMES, split_rows
from torchlab.data.keypoints_augment import KeypointAugment
from torchlab.engine.inference import predict_outputs
from torchlab.data.keypoints import PIXEL_SCALE, to_tensors
from torchlab.data.synthetic_faces import load_table
from torchlab.engine.metrics import masked_mse
from torchlab.tasks.keypoints.kaggle import mean_keypoint_baseline, mean_keypoints, per_keypoint_rmse
from torchlab.engine.metrics import RMSE, masked_rmse
from torchlab.tasks.keypoints.plots import write_keypoint_figures as write_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu (default: auto)")
    parser.add_argument("--data", help="Kaggle's training.csv or training.csv.gz (default: synthetic faces)")
    parser.add_argument("--synthetic", type=int, default=2000, help="synthetic faces without --data (default: 2000)")
    parser.add_argument("--model", default="keypoint-net", choices=("keypoint-net", "keypoint-cnn", "keypoint-fcn"))
    parser.add_argument("--width", type=int, default=32, help="keypoint-net: channels of the first stage (default: 32)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--batch-size", type=int, default=64, help="faces per batch (default: 64)")
    parser.add_argument("--patience", type=int, default=10, help="early stopping patience in epochs (default: 10)")
    parser.add_argument("--no-augment", action="store_true", help="train without flips, rotations and shifts")
    parser.add_argument("--out", default="checkpoints/train_keypoints", help="folder for checkpoints and figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # 1. Device and seeds. Under torchrun every process joins the group and takes its own GPU.
    device = torchlab.pick_device(args.device)
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)

    # 2. Data: validation = the seed's 10% of the faces with all 15 keypoints; training = every other face
    #    with at least one keypoint. Each set is (images in [0, 1], keypoints in pixels, 0/1 mask of labels).
    table = load_table(args.data, args.synthetic)
    split = split_rows(table, "mask")
    train_t, val_t = to_tensors(table, split.train), to_tensors(table, split.val)
    augment = None if args.no_augment else KeypointAugment()  # random flip, rotation, scale, shift, on the device
    train = TensorBatcher(train_t, args.batch_size, shuffle=True, device=device, transform=augment, seed=args.seed)
    val = TensorBatcher(val_t, 256, device=device)

    # 3. Model (started at the training set's mean face), masked MSE loss, AdamW with a one-cycle LR.
    mean = mean_keypoints(train_t[1], train_t[2])
    kwargs = {"width": args.width, "mean_keypoints": mean} if args.model == "keypoint-net" else {}
    model = torchlab.build_model(args.model, **kwargs)
    if hasattr(model, "fc3"):  # the practical's nets: their last layer's bias starts at the mean face
        with torch.no_grad():
            model.fc3.bias.copy_(torch.tensor(mean))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * len(train),
                                                    pct_start=0.2)

    # 4. The Trainer: masked_mse(output, keypoints, mask) per batch; best.pt/last.pt each epoch; stop when the
    #    validation RMSE has not improved for `patience` epochs. The meta lets `torchlab evaluate` find the data.
    data = {"csv": str(Path(args.data).resolve()) if args.data else None,
            "synthetic": None if args.data else args.synthetic, "synthetic_seed": 0, "missing": "mask"}
    trainer = torchlab.Trainer(
        model, masked_mse, optimizer, metrics={"rmse": RMSE()}, epochs=args.epochs,
        scheduler=scheduler, scheduler_interval="batch",
        early_stopping=torchlab.EarlyStopping("val_rmse", "min", patience=args.patience),
        checkpoint_dir=args.out, device=device,
        checkpoint_meta={"task": args.model, "model_name": args.model, "model_kwargs": kwargs,
                         "normalization": {"divide_by": PIXEL_SCALE}, "keypoint_names": list(KEYPOINT_NAMES),
                         "data": data},
    )
    fit = trainer.fit(train, val)

    if world.is_main:
        # 5. Validation RMSE of the best weights (the Trainer restored them), the mean-face baseline, figures.
        pred = predict_outputs(model, val_t[0]).numpy()
        baseline = mean_keypoint_baseline(train_t[1], train_t[2], val_t[1], val_t[2])
        print(f"{fit.epochs_run} epochs in {fit.fit_seconds:.2f} s on {len(split.train)} faces; validation RMSE "
              f"{masked_rmse(pred, val_t[1], val_t[2]):.3f} px (mean face: {baseline:.3f} px)")
        per_kp = per_keypoint_rmse(pred, val_t[1].numpy(), val_t[2].numpy())
        figures = write_figures(fit.history, table, split, pred, per_kp, trainer.checkpoint_dir / "figures", args.model)
        print("figures:", ", ".join(str(p) for p in figures))

        # 6. Inference from the checkpoint alone: torchlab.load rebuilds the model from best.pt.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "best.pt", device="cpu")
        nose = KEYPOINT_NAMES.index("nose_tip")
        x, y = predict_outputs(loaded, val_t[0][:1])[0, 2 * nose : 2 * nose + 2].tolist()
        tx, ty = val_t[1][0, 2 * nose : 2 * nose + 2].tolist()
        print(f"best.pt (epoch {meta['epoch']}) puts validation face 0's nose tip at ({x:.1f}, {y:.1f}); "
              f"truth ({tx:.1f}, {ty:.1f})")
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
