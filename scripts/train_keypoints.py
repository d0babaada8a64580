"""Train a facial-keypoint net (15 keypoints from 96x96 gray faces), step by step.

What `torchlab train keypoints` (--model keypoint-net, keypoint-cnn or keypoint-fcn) trains, in one file you can
read top to bottom: the recipe's config, device, data, model, masked loss and optimizer, the
Trainer with early stopping and checkpoints, the validation RMSE, the figures, and loading the
checkpoint back. Flags override the recipe's fields; the checkpoint is one `torchlab evaluate`,
`predict` and `train --resume` read. Each model has its own recipes; on a CPU keypoint-net starts
from its "cpu" recipe (18 epochs instead of 100) unless --recipe says otherwise, as `torchlab train` does.

    python scripts/train_keypoints.py                                  # synthetic faces; accelerator if any
    python scripts/train_keypoints.py --data data/training.csv.gz      # Kaggle's faces (.csv or .csv.gz)
    python scripts/train_keypoints.py --device cpu --epochs 2 --synthetic 400 --width 16
    python scripts/train_keypoints.py --device cuda --model keypoint-cnn   # one GPU, the practical's CNN
    python scripts/train_keypoints.py --model keypoint-cnn --recipe seed   # the practical as it was
    torchrun --nproc_per_node=2 scripts/train_keypoints.py --device cpu    # two processes (DDP, Gloo on the CPU)
"""

import argparse
import dataclasses

import torchlab
from torchlab.cli.flags import add_script_flags, overrides_from
from torchlab.config import as_dict
from torchlab.data.batcher import TensorBatcher
from torchlab.data.keypoints import KEYPOINT_NAMES, split_rows, to_tensors
from torchlab.data.synthetic_faces import load_table
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import RMSE, masked_mse, masked_rmse
from torchlab.engine.optim import make_optimizer
from torchlab.runtime import distributed
from torchlab.tasks import get_task
from torchlab.tasks.keypoints.kaggle import mean_keypoint_baseline, mean_keypoints, per_keypoint_rmse
from torchlab.tasks.keypoints.plots import write_keypoint_figures
from torchlab.tasks.keypoints.train import (
    NORMALIZATION,
    data_meta,
    find_mirror,
    make_augment,
    make_model,
)

TASK = "keypoints"  # --model (a config field) picks keypoint-net, keypoint-cnn or keypoint-fcn, and its recipes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_script_flags(parser, get_task(TASK))  # a flag per config field, as `torchlab train TASK --help` lists
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    # 0. Device, then the config: the recipe of the model's recipes (the default model's when --model is not
    #    given), with the fields given on the command line in their place.
    device = torchlab.pick_device(args.device)
    overrides = overrides_from(args, get_task(TASK))  # the fields given on the command line
    cpu = device.type == "cpu" and "cpu" in torchlab.recipe_names(TASK, overrides.get("model"))
    recipe = args.recipe or ("cpu" if cpu else "default")
    cfg = torchlab.get_recipe(TASK, recipe, **overrides)

    # 1. Seeds. Under torchrun every process joins the group and takes its own GPU.
    world = distributed.setup(device)
    torchlab.seed_everything(args.seed + world.rank)
    if world.is_main:
        print(f"{TASK} --model {cfg.model}, recipe {recipe}, on {device}")

    # 2. Data: validation = the seed's 10% of the faces with all 15 keypoints; training = every other face
    #    (with cfg.missing "mask": every face with at least one keypoint). Each set is (images in [0, 1],
    #    keypoints in pixels, 0/1 mask of labels); cfg.augment moves each training batch at random, on the device.
    table = load_table(cfg.data, cfg.synthetic)
    split = split_rows(table, cfg.missing)
    train_t, val_t = to_tensors(table, split.train), to_tensors(table, split.val)
    mean = mean_keypoints(train_t[1], train_t[2])
    # The flip's mirror x -> c - x is a property of the labels: --flip-sum, 95 for synthetic faces, else measured
    # on these training faces by a copy of the net trained 3 epochs without flips (tasks/keypoints/mirror.py).
    mirror = find_mirror(cfg.model, cfg, train_t, mean, device, args.seed)
    mirrored = dataclasses.replace(cfg, flip_sum=mirror.flip_sum)  # cfg with that mirror: the flip and the net use it
    augment = make_augment(mirrored)  # flips, rotations, scales, shifts, brightness, contrast as cfg says
    train = TensorBatcher(train_t, cfg.batch_size, shuffle=True, device=device, transform=augment, seed=args.seed)
    val = TensorBatcher(val_t, 256, device=device)

    # 3. Model (its output started at the training set's mean face when cfg.mean_init), and the optimizer and
    #    learning-rate schedule the config names (keypoint-net: AdamW, one-cycle stepped per batch).
    model, model_kwargs = make_model(cfg.model, mirrored, mean)
    model.to(device)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(train))

    # 4. The Trainer: masked_mse(output, keypoints, mask) per batch; best.pt/last.pt each epoch; stop when the
    #    validation RMSE has not improved for cfg.patience epochs. The meta lets `torchlab evaluate` find the data.
    trainer = torchlab.Trainer.from_config(
        cfg,
        model,
        masked_mse,
        optimizer,
        metrics={"rmse": RMSE()},
        monitor="val_rmse",
        scheduler=scheduler,
        scheduler_interval=interval,
        checkpoint_dir=args.out,
        device=device,
        checkpoint_meta={
            "task": TASK,
            "recipe": recipe,
            "seed": args.seed,
            "config": as_dict(cfg),
            "model_name": cfg.model,
            "model_kwargs": model_kwargs,
            "normalization": NORMALIZATION,
            "keypoint_names": list(KEYPOINT_NAMES),
            "flip_sum": mirror.flip_sum,
            "mirror": mirror.how,
            "augment": cfg.augment,
            "data": data_meta(cfg, split),
        },
    )
    fit = trainer.fit(train, val)

    if world.is_main:
        # 5. Validation RMSE of the best weights (the Trainer restored them) next to the mean-face baseline,
        #    both kept in best.pt with the RMSE of every keypoint, and the figures.
        pred = predict_outputs(model, val_t[0], 256).numpy()
        rmse = masked_rmse(pred, val_t[1], val_t[2])
        baseline = mean_keypoint_baseline(train_t[1], train_t[2], val_t[1], val_t[2])
        per_kp = per_keypoint_rmse(pred, val_t[1].numpy(), val_t[2].numpy())
        per_keypoint = {f"rmse_{name}": float(value) for name, value in zip(KEYPOINT_NAMES, per_kp)}
        add_metrics(
            trainer.checkpoint_dir / "best.pt", {"val_rmse_px": rmse, "baseline_rmse_px": baseline, **per_keypoint}
        )
        print(
            f"{fit.epochs_run} epochs in {fit.fit_seconds:.2f} s on {len(split.train)} faces; validation RMSE "
            f"{rmse:.3f} px (mean face: {baseline:.3f} px)"
        )
        if not args.no_figures:
            figures = write_keypoint_figures(
                fit.history, table, split, pred, per_kp, trainer.checkpoint_dir / "figures", cfg.model
            )
            print("figures:", ", ".join(str(p) for p in figures))

        # 6. Inference from the checkpoint alone: torchlab.load rebuilds the model from best.pt.
        loaded, meta = torchlab.load(trainer.checkpoint_dir / "best.pt", device="cpu")
        nose = KEYPOINT_NAMES.index("nose_tip")
        x, y = predict_outputs(loaded, val_t[0][:1])[0, 2 * nose : 2 * nose + 2].tolist()
        tx, ty = val_t[1][0, 2 * nose : 2 * nose + 2].tolist()
        print(
            f"best.pt (epoch {meta['epoch']}) puts validation face 0's nose tip at ({x:.1f}, {y:.1f}); "
            f"truth ({tx:.1f}, {ty:.1f})"
        )
    distributed.teardown(synchronize=True)


if __name__ == "__main__":
    main()
