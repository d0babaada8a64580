"""Keypoint tasks end to end: a short training on synthetic faces, then predict on a photo and a test.csv."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import torchlab
from torchlab.cli.flags import overrides_from
from torchlab.cli.main import build_parser, main
from torchlab.data.keypoints import COORD_COLUMNS, KEYPOINT_NAMES
from torchlab.data.synthetic_faces import make_faces, write_lookup_csv, write_test_csv
from torchlab.tasks.keypoints.faces import face_to_photo, photo_to_face


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("keypoint-net")
    args = build_parser().parse_args(
        [
            "train",
            "keypoint-net",
            "--synthetic",
            "200",
            "--width",
            "8",
            "--epochs",
            "4",
            "--batch-size",
            "16",
            "--lr",
            "5e-3",
            "--no-augment",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert overrides_from(args, args.task_entry) == {
        "synthetic": 200,
        "width": 8,
        "epochs": 4,
        "batch_size": 16,
        "lr": 5e-3,
        "augment": False,
    }
    result = torchlab.train(
        "keypoint-net", args.recipe, out=out, device="cpu", progress=False, **overrides_from(args, args.task_entry)
    )
    return out, result.summary


def test_short_training_beats_the_mean_face(trained):
    out, summary = trained
    assert summary["val_rmse_px"] < 0.8 * summary["baseline_rmse_px"], summary
    assert summary["train_rows"] + summary["val_rows"] == 200
    for name in ("loss.png", "faces.png", "keypoint_rmse.png", "training_faces.png"):
        assert (out / "figures" / name).stat().st_size > 5000
    model, meta = torchlab.load(out / "best.pt")
    assert meta["task"] == "keypoints" and meta["model"]["name"] == "keypoint-net" and meta["data"]["missing"] == "mask"
    assert len(meta["model"]["kwargs"]["mean_keypoints"]) == 30  # the heat-map prior starts at the mean face
    assert abs(meta["metrics"]["val_rmse_px"] - summary["val_rmse_px"]) < 1e-3
    assert set(f"rmse_{n}" for n in KEYPOINT_NAMES) <= set(meta["metrics"])


def test_evaluate_reproduces_the_training_number(trained, capsys):
    out, summary = trained
    assert main(["evaluate", str(out / "best.pt"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    value = float(text.split("val_rmse_px: ")[1].split()[0])
    assert abs(value - summary["val_rmse_px"]) < 1e-3


def test_predict_on_a_photo_maps_back_to_its_pixels(trained, tmp_path, capsys):
    out, _ = trained
    face = make_faces(1, seed=77, missing=False).images[0]
    # a 240x160 photo: the face, enlarged 2.5x, in the middle of a wider gray frame
    big = np.asarray(Image.fromarray(face).resize((240, 240), Image.Resampling.BILINEAR))
    photo = np.full((240, 400), 128, np.uint8)
    photo[:, 80:320] = big
    path = tmp_path / "me.png"
    Image.fromarray(photo).convert("RGB").save(path)
    assert main(["predict", str(out / "best.pt"), str(path), "--out", str(tmp_path / "res"), "--device", "cpu"]) == 0
    [record] = json.loads((tmp_path / "res" / "predictions.json").read_text())
    assert record["crop"] == {"x": 80, "y": 0, "size": 240} and len(record["keypoints"]) == 15
    assert record["found_by"] == "detector" and "no frontal face" in record["note"]  # a drawn face: center square
    assert (tmp_path / "res" / "me_keypoints.png").stat().st_size > 5000
    # the photo's keypoints are the model's 96x96 predictions mapped through the crop
    model, _ = torchlab.load(out / "best.pt")
    small, crop = photo_to_face(photo.astype(np.float32) / 255)
    with torch.no_grad():
        pred = model(torch.from_numpy(small / 255).float()[None, None])[0].reshape(15, 2).numpy()
    expect = face_to_photo(pred, crop)
    got = np.array([[v["x"], v["y"]] for v in record["keypoints"].values()])
    np.testing.assert_allclose(got, expect, atol=0.02)
    assert (
        main(
            [
                "predict",
                str(out / "best.pt"),
                str(path),
                "--format",
                "csv",
                "--out",
                str(tmp_path / "res"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    header, row = (tmp_path / "res" / "predictions.csv").read_text().splitlines()
    values = dict(zip(header.split(","), row.split(",")))
    assert float(values["keypoints_left_eye_center_x"]) == pytest.approx(expect[0, 0], abs=1e-3)


def test_face_to_photo_is_the_inverse_of_the_resize():
    # pixel centers: face pixel 0 covers photo pixels 0..2 of a 288 square (center 1), pixel 95 covers 285..287
    pts = face_to_photo(np.array([[0.0, 95.0]]), (10, 0, 288))
    np.testing.assert_allclose(pts, [[11.0, 286.0]])


def test_submission_has_kaggle_rows_clipped(trained, tmp_path):
    out, _ = trained
    test_csv = write_test_csv(tmp_path / "test.csv", 3)
    lookup = write_lookup_csv(tmp_path / "IdLookupTable.csv", [1, 2, 3], features_per_image=5)
    assert (
        main(
            [
                "predict",
                str(out / "best.pt"),
                str(test_csv),
                "--submission",
                str(lookup),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "kaggle"),
            ]
        )
        == 0
    )
    lines = (tmp_path / "kaggle" / "submission.csv").read_text().splitlines()
    assert lines[0] == "RowId,Location" and len(lines) == 16
    rows = [line.split(",") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, 16))
    assert all(0.0 <= float(r[1]) <= 96.0 for r in rows)
    lines = (tmp_path / "IdLookupTable.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines + ["16,9,nose_tip_x,"]) + "\n")
    assert (
        main(
            [
                "predict",
                str(out / "best.pt"),
                str(test_csv),
                "--submission",
                str(bad),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "never"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "never").exists()


def test_bad_training_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "training.csv"
    bad.write_text(",".join(COORD_COLUMNS) + "\n" + ",".join(["1"] * 30) + "\n")
    assert main(["train", "keypoint-cnn", "--data", str(bad), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "no 'Image' column" in capsys.readouterr().err
    assert not (tmp_path / "o" / "last.pt").exists()


def test_recipes_are_configs_with_the_old_values():
    for task in ("keypoint-fcn", "keypoint-cnn"):
        cfg = torchlab.get_recipe(task)
        assert (cfg.epochs, cfg.lr, cfg.optimizer, cfg.schedule, cfg.missing, cfg.augment) == (
            30,
            1e-3,
            "adam",
            "cosine",
            "mask",
            True,
        )
    net = torchlab.get_recipe("keypoint-net")
    assert (net.epochs, net.lr, net.weight_decay, net.optimizer, net.schedule, net.warmup, net.width) == (
        100,
        2e-3,
        1e-4,
        "adamw",
        "onecycle",
        0.2,
        32,
    )
    for task in ("keypoint-fcn", "keypoint-cnn", "keypoint-net"):
        seed = torchlab.get_recipe(task, "seed")
        assert (seed.epochs, seed.lr, seed.batch_size, seed.weight_decay, seed.optimizer, seed.schedule) == (
            20,
            1e-3,
            64,
            0.0,
            "adam",
            "none",
        )
        assert (seed.missing, seed.augment, seed.mean_init) == ("drop", False, False)
    args = build_parser().parse_args(
        ["train", "keypoint-cnn", "--missing", "drop", "--flip-sum", "96", "--augment", "--data", "t.csv"]
    )
    assert overrides_from(args, args.task_entry) == {
        "missing": "drop",
        "flip_sum": 96.0,
        "augment": True,
        "data": "t.csv",
    }


@pytest.mark.parametrize(
    "flags, message",
    [
        (["keypoint-net", "--width", "3"], "--width must be a whole number >= 4, got 3"),
        (["keypoint-fcn", "--synthetic", "5"], "--synthetic must be a whole number >= 20, got 5"),
        (["keypoint-cnn", "--flip-sum", "nan"], "--flip-sum must be a finite number"),
        (["keypoint-net", "--scale", "0.95"], "--scale must be in [0, 0.9)"),
        (["keypoint-net", "--degrees", "-1"], "--degrees must be in [0, 180)"),
    ],
)
def test_bad_settings_are_one_line_errors_before_anything_is_written(tmp_path, capsys, flags, message):
    assert main(["train", *flags, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_predict_validation_faces_and_a_test_csv(trained, tmp_path, capsys):
    out, _ = trained
    assert main(["predict", str(out / "best.pt"), "--index", "0", "--index", "3", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * 16 and lines[0].startswith("validation face 0: RMSE ") and lines[0].endswith(" px")
    assert lines[16].startswith("validation face 3: RMSE ")
    assert lines[1].startswith("  left_eye_center: predicted (") and " true (" in lines[1]
    # the same as values: one record per face, its RMSE over the 30 coordinates
    [record] = torchlab.predict(out / "best.pt", index=[3], device="cpu")
    pred = np.array([[p["x"], p["y"]] for p in record["keypoints"].values()])
    true = np.array([[p["x"], p["y"]] for p in record["true"].values()])
    assert record["rmse_px"] == pytest.approx(np.sqrt(np.mean((pred - true) ** 2)))
    assert lines[16] == f"validation face 3: RMSE {record['rmse_px']:.3f} px"

    test_csv = write_test_csv(tmp_path / "test.csv", 3)
    [record] = torchlab.predict(out / "best.pt", [test_csv], device="cpu", format="csv", out=str(tmp_path / "res"))
    assert record["image_ids"] == [1, 2, 3] and np.array(record["keypoints"]).shape == (3, 30)
    rows = (tmp_path / "res" / "test_keypoints.csv").read_text().splitlines()
    assert rows[0].split(",") == ["ImageId", *COORD_COLUMNS] and len(rows) == 4
    assert float(rows[2].split(",")[1]) == pytest.approx(record["keypoints"][1][0], abs=1e-3)


def test_a_checkpoint_without_a_config_still_evaluates(trained, tmp_path, capsys):
    """best.pt as written before typed configs: no "config", the recipe's hyper-parameters as "hparams"."""
    from torchlab.engine.checkpoint import read_checkpoint, save_checkpoint

    out, summary = trained
    checkpoint = read_checkpoint(out / "best.pt")
    del checkpoint["config"]
    checkpoint["hparams"] = {
        "epochs": 4,
        "lr": 5e-3,
        "batch_size": 16,
        "weight_decay": 1e-4,
        "patience": None,
        "missing": "mask",
        "augment": True,
        "optimizer": "adamw",
        "schedule": "onecycle",
    }
    save_checkpoint(checkpoint, tmp_path / "old.pt")
    metrics = torchlab.evaluate(tmp_path / "old.pt", device="cpu")
    assert metrics["val_rmse_px"] == pytest.approx(summary["val_rmse_px"], abs=1e-3)
    assert len(torchlab.predict(tmp_path / "old.pt", index=[0], device="cpu")) == 1


@pytest.mark.parametrize("head", ["heatmap-48", "regression"])
def test_the_other_heads_train_evaluate_and_write_a_submission(head, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "keypoint-net",
                "--synthetic",
                "120",
                "--width",
                "8",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--head",
                head,
                "--no-augment",
                "--no-figures",
                "--no-progress",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model, meta = torchlab.load(out / "best.pt")
    assert meta["model"]["kwargs"]["head"] == head and model.head == head
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--device", "cpu"]) == 0
    assert (
        abs(float(capsys.readouterr().out.split("val_rmse_px: ")[1].split()[0]) - meta["metrics"]["val_rmse_px"]) < 1e-3
    )
    test_csv = write_test_csv(tmp_path / "test.csv", 2)
    lookup = write_lookup_csv(tmp_path / "IdLookupTable.csv", [1, 2], features_per_image=4)
    assert (
        main(
            [
                "predict",
                str(out / "best.pt"),
                str(test_csv),
                "--submission",
                str(lookup),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "kaggle"),
            ]
        )
        == 0
    )
    assert len((tmp_path / "kaggle" / "submission.csv").read_text().splitlines()) == 9
