"""Keypoints with partial labels, value by value: the masked loss's divisor, the flip moving the
mask with its keypoints, the mean face over labeled rows only, augmentation that changes from
epoch to epoch, and the CSV table's masks and splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchlab.data.batcher import TensorBatcher
from torchlab.data.keypoints import (
    COORD_COLUMNS,
    FLIP_SUM,
    IMAGE_SIZE,
    KEYPOINT_NAMES,
    KeypointTable,
    flip_permutation,
    format_test_csv,
    format_training_csv,
    parse_images,
    read_lookup_csv,
    read_test_csv,
    read_training_csv,
    seed_split,
    split_rows,
)
from torchlab.data.keypoints_augment import (
    CENTER,
    KeypointAugment,
    affine_batch,
    coordinate_permutation,
    flip_batch,
    flip_keypoints,
)
from torchlab.errors import DataError
from torchlab.tasks.keypoints.train import masked_mse, mean_keypoints

LEFT_EYE, RIGHT_EYE = KEYPOINT_NAMES.index("left_eye_center"), KEYPOINT_NAMES.index("right_eye_center")
NOSE = KEYPOINT_NAMES.index("nose_tip")


def column(name: str) -> int:
    return COORD_COLUMNS.index(name)


# ---------------------------------------------------------------- masked loss
def test_masked_loss_divides_by_the_labeled_count():
    output = torch.zeros(2, 30)
    target = torch.zeros(2, 30)
    mask = torch.zeros(2, 30)
    target[0, :3] = torch.tensor([1.0, 2.0, 3.0])
    mask[0, :3] = 1
    target[1, 5] = 100.0  # unlabeled: never counted
    loss = masked_mse(output, target, mask)
    assert float(loss) == pytest.approx((1 + 4 + 9) / 3)
    full = torch.ones(2, 30)
    assert float(masked_mse(output, target, full)) == pytest.approx(float(torch.nn.functional.mse_loss(output, target)))
    assert float(masked_mse(output, target, torch.zeros(2, 30))) == 0.0  # nothing labeled: 0, not NaN


def test_masked_loss_gives_unlabeled_coordinates_no_gradient():
    output = torch.full((1, 30), 5.0, requires_grad=True)
    mask = torch.zeros(1, 30)
    mask[0, 4] = 1
    masked_mse(output, torch.zeros(1, 30), mask).backward()
    grad = output.grad[0]
    assert float(grad[4]) == pytest.approx(2 * 5.0 / 1) and float(grad.abs().sum()) == pytest.approx(10.0)


# -------------------------------------------------------------------- mean face
def test_mean_face_averages_each_coordinate_over_its_labeled_rows_only():
    keypoints = torch.zeros(3, 30)
    mask = torch.zeros(3, 30)
    keypoints[:, 0] = torch.tensor([10.0, 20.0, 0.0])
    mask[:, 0] = torch.tensor([1.0, 1.0, 0.0])  # the third row's 0 is "unlabeled", not a coordinate
    keypoints[:, 1] = torch.tensor([30.0, 60.0, 90.0])
    mask[:, 1] = 1
    mean = mean_keypoints(keypoints, mask)
    assert mean[0] == 15.0 and mean[1] == 60.0
    assert mean[2:] == [47.5] * 28  # never labeled: the image center
    assert len(mean) == 30


# ------------------------------------------------------------------------- flip
def test_flip_moves_the_mask_with_the_keypoints():
    keypoints = torch.zeros(2, 30)
    mask = torch.zeros(2, 30)
    keypoints[:, 2 * LEFT_EYE : 2 * LEFT_EYE + 2] = torch.tensor([60.0, 40.0])
    mask[:, 2 * LEFT_EYE : 2 * LEFT_EYE + 2] = 1
    keypoints[:, 2 * NOSE : 2 * NOSE + 2] = torch.tensor([50.0, 55.0])
    mask[:, 2 * NOSE : 2 * NOSE + 2] = 1
    images = torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    images[:, 0, 40, 60] = 1.0
    which = torch.tensor([True, False])
    out_images, out_kp, out_mask = flip_batch(images, keypoints, mask, which)
    # sample 0: the left eye (60, 40) is now the right eye at (95 - 60, 40); the mask went with it
    right = slice(2 * RIGHT_EYE, 2 * RIGHT_EYE + 2)
    left = slice(2 * LEFT_EYE, 2 * LEFT_EYE + 2)
    assert out_kp[0, right].tolist() == [35.0, 40.0] and out_mask[0, right].tolist() == [1.0, 1.0]
    assert out_mask[0, left].tolist() == [0.0, 0.0]
    assert out_kp[0, 2 * NOSE : 2 * NOSE + 2].tolist() == [45.0, 55.0]
    assert float(out_mask[0].sum()) == 4.0
    assert out_images[0, 0, 40, 35] == 1.0 and out_images[0, 0, 40, 60] == 0.0
    # sample 1: untouched
    assert torch.equal(out_kp[1], keypoints[1]) and torch.equal(out_mask[1], mask[1])
    assert torch.equal(out_images[1], images[1])


def test_flip_permutation_and_coordinate_columns():
    perm = coordinate_permutation()
    assert perm[:4].tolist() == [2, 3, 0, 1]  # left eye (x, y) <- right eye (x, y)
    assert perm[2 * NOSE : 2 * NOSE + 2].tolist() == [2 * NOSE, 2 * NOSE + 1]
    assert sorted(perm.tolist()) == list(range(30)) and perm.dtype == torch.int64
    assert flip_permutation()[LEFT_EYE] == RIGHT_EYE
    kp = torch.arange(30, dtype=torch.float32).view(1, 30)
    flipped = flip_keypoints(kp)
    assert flipped[0, 0] == FLIP_SUM - 2 and flipped[0, 1] == 3  # x mirrored, y kept
    assert torch.equal(flip_keypoints(flipped), kp)  # flipping twice is the identity
    assert flip_keypoints(kp, flip_sum=10.0)[0, 0] == 8.0
    assert torch.equal(kp, torch.arange(30, dtype=torch.float32).view(1, 30))  # the input is not changed in place


# -------------------------------------------------------------------- affine
def test_affine_scale_rotation_and_masking_of_pushed_out_points():
    kp = torch.zeros(1, 30)
    kp[0, :4] = torch.tensor([CENTER + 10, CENTER, CENTER, CENTER - 20])
    mask = torch.ones(1, 30)
    images = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    _, scaled, _ = affine_batch(images, kp, mask, torch.zeros(1), torch.tensor([2.0]), torch.zeros(1, 2))
    assert scaled[0, :4].tolist() == pytest.approx([CENTER + 20, CENTER, CENTER, CENTER - 40])
    _, turned, _ = affine_batch(images, kp, mask, torch.tensor([math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert turned[0, :2].tolist() == pytest.approx([CENTER, CENTER + 10], abs=1e-4)  # (+10, 0) -> (0, +10)
    # shifted 50 px right: the point at x = 57.5 leaves the image (masked), x = 47.5 stays at 97.5 > 95: masked too
    edge = torch.zeros(1, 30)
    edge[0, :4] = torch.tensor([40.0, 10.0, 44.0, 10.0])
    _, moved, moved_mask = affine_batch(images, edge, mask, torch.zeros(1), torch.ones(1), torch.tensor([[51.0, 0.0]]))
    assert moved[0, :4].tolist() == pytest.approx([91.0, 10.0, 95.0, 10.0])
    assert moved_mask[0, :4].tolist() == [1.0, 1.0, 1.0, 1.0]  # x = 95 is the last pixel center: inside
    _, _, out_mask = affine_batch(images, edge, mask, torch.zeros(1), torch.ones(1), torch.tensor([[51.5, 0.0]]))
    assert out_mask[0, :4].tolist() == [1.0, 1.0, 0.0, 0.0]  # x = 95.5: outside, x and y masked together
    _, _, low = affine_batch(images, edge, mask, torch.zeros(1), torch.ones(1), torch.tensor([[-40.0, -10.0]]))
    assert low[0, :4].tolist() == [1.0, 1.0, 1.0, 1.0]  # (0, 0) and (4, 0): on the first pixel centers
    _, _, below = affine_batch(images, edge, mask, torch.zeros(1), torch.ones(1), torch.tensor([[-40.5, 0.0]]))
    assert below[0, :4].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_augment_with_everything_off_is_the_identity_and_masks_zero_the_targets():
    images = torch.rand(3, 1, IMAGE_SIZE, IMAGE_SIZE)
    kp = torch.full((3, 30), 40.0)
    mask = torch.ones(3, 30)
    mask[1, 6:10] = 0
    off = KeypointAugment(flip=0.0, degrees=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)
    out = off((images, kp, mask), torch.Generator().manual_seed(0))
    assert torch.equal(out[0], images) and torch.equal(out[2], mask)
    assert out[1][1, 6:10].tolist() == [0.0] * 4 and out[1][0].tolist() == [40.0] * 30
    flip_only = KeypointAugment(flip=1.0, degrees=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)
    out = flip_only((images, kp, mask), torch.Generator().manual_seed(0))
    assert torch.equal(out[0], images.flip(-1)) and out[1][0, 0] == FLIP_SUM - 40.0
    bright = KeypointAugment(flip=0.0, degrees=0.0, scale=0.0, shift=0.0, brightness=0.15, contrast=0.0)
    out = bright(
        (torch.full((4, 1, IMAGE_SIZE, IMAGE_SIZE), 0.5), kp[:1].expand(4, 30), mask[:1].expand(4, 30)),
        torch.Generator().manual_seed(0),
    )
    shifts = out[0].mean(dim=(1, 2, 3)) - 0.5  # a uniform shift per image, within +-0.15
    assert shifts.abs().max() <= 0.15 + 1e-6 and shifts.abs().max() > 0.01 and len(set(shifts.tolist())) == 4
    assert torch.equal(out[1], kp[:1].expand(4, 30))  # brightness never moves a keypoint
    default = KeypointAugment()
    assert (default.flip, default.flip_sum, default.degrees, default.scale, default.shift) == (
        0.5,
        95.0,
        12.0,
        0.08,
        5.0,
    )
    assert (default.brightness, default.contrast) == (0.15, 0.25)


def test_augmentation_differs_across_epochs_and_repeats_within_one():
    table_images = torch.rand(6, 1, IMAGE_SIZE, IMAGE_SIZE)
    kp = torch.full((6, 30), 47.5)
    mask = torch.ones(6, 30)
    batcher = TensorBatcher((table_images, kp, mask), 6, transform=KeypointAugment(), seed=3)

    def epoch(e):
        batcher.set_epoch(e)
        return next(iter(batcher))

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])
    other_seed = TensorBatcher((table_images, kp, mask), 6, transform=KeypointAugment(), seed=4)
    assert not torch.equal(next(iter(other_seed))[0], first[0])
    plain = TensorBatcher((table_images, kp, mask), 6)
    assert torch.equal(next(iter(plain))[0], table_images)  # no transform: the tensors as they are


# -------------------------------------------------------------- table and CSV
def test_labeled_needs_both_x_and_y_and_complete_needs_all():
    kp = np.full((3, 30), 50.0, dtype=np.float32)
    kp[1, 0] = np.nan  # x of the left eye missing: its y does not count either
    kp[2, :] = np.nan
    kp[2, 4:6] = 20.0
    table = KeypointTable(np.zeros((3, 96, 96), np.uint8), kp)
    labeled = table.labeled
    assert labeled[0].all() and labeled[1, :2].tolist() == [False, False] and labeled[1, 2:].all()
    assert labeled[2].tolist() == [False] * 4 + [True, True] + [False] * 24
    assert table.complete.tolist() == [True, False, False] and len(table) == 3


def test_split_rows_mask_adds_rows_with_any_label_and_drop_keeps_complete_rows():
    n = 30
    kp = np.full((n, 30), 50.0, dtype=np.float32)
    kp[20:25, 2:] = np.nan  # partial: only the left eye
    kp[25:, :] = np.nan  # nothing labeled
    table = KeypointTable(np.zeros((n, 96, 96), np.uint8), kp)
    drop, mask = split_rows(table, "drop"), split_rows(table, "mask")
    assert len(drop.val) == 2 and sorted(drop.val.tolist()) == sorted(mask.val.tolist())
    assert sorted(drop.train.tolist() + drop.val.tolist()) == list(range(20))
    assert mask.train.tolist() == sorted(set(drop.train.tolist()) | set(range(20, 25)))
    with pytest.raises(DataError, match="--missing must be 'drop' or 'mask'"):
        split_rows(table, "keep")
    train, val = seed_split(20)
    assert len(val) == 2 and len(train) == 18 and sorted(np.concatenate([train, val]).tolist()) == list(range(20))
    with pytest.raises(DataError, match="only 1 row"):
        seed_split(1)
    assert len(seed_split(2)[1]) == 1


def test_csv_round_trip_keeps_missing_cells_and_values(tmp_path):
    images = np.arange(2 * 96 * 96).reshape(2, 96, 96).astype(np.uint8)
    kp = np.full((2, 30), 12.5, dtype=np.float32)
    kp[1, 3] = np.nan
    kp[0, 0] = 0.0
    kp[0, 1] = 95.999
    text = format_training_csv(images, kp)
    lines = text.splitlines()
    assert lines[0] == ",".join(COORD_COLUMNS) + ",Image" and len(lines) == 3 and text.endswith("\n")
    assert lines[2].split(",")[3] == "" and lines[1].split(",")[0] == "0.000000"
    (tmp_path / "t.csv").write_text(text)
    table = read_training_csv(tmp_path / "t.csv")
    np.testing.assert_array_equal(table.images, images)
    np.testing.assert_allclose(table.keypoints, kp, equal_nan=True, rtol=1e-6)
    assert table.keypoints.dtype == np.float32 and table.source == str(tmp_path / "t.csv")
    (tmp_path / "test.csv").write_text(format_test_csv(images, first_id=7))
    ids, test_images = read_test_csv(tmp_path / "test.csv")
    assert ids.tolist() == [7, 8] and ids.dtype == np.int64 and np.array_equal(test_images, images)
    assert format_test_csv(images).splitlines()[1].startswith("1,0 1 2 ")


def test_csv_errors_name_file_row_and_column(tmp_path):
    images = np.zeros((2, 96, 96), np.uint8)
    kp = np.full((2, 30), 10.0, dtype=np.float32)
    text = format_training_csv(images, kp).splitlines()
    (tmp_path / "cols.csv").write_text("\n".join([text[0].replace("nose_tip_x", "nose_x")] + text[1:]) + "\n")
    with pytest.raises(DataError, match=r"lacks coordinate column\(s\) nose_tip_x; use Kaggle"):
        read_training_csv(tmp_path / "cols.csv")
    header = text[0].split(",")
    many = ",".join(h if i >= 4 else f"c{i}" for i, h in enumerate(header))
    (tmp_path / "many.csv").write_text("\n".join([many] + text[1:]) + "\n")
    with pytest.raises(DataError, match=r"left_eye_center_x, left_eye_center_y, right_eye_center_x \.\.\."):
        read_training_csv(tmp_path / "many.csv")
    three = ",".join(h if i >= 3 else f"c{i}" for i, h in enumerate(header))
    (tmp_path / "three.csv").write_text("\n".join([three] + text[1:]) + "\n")
    with pytest.raises(DataError, match=r"right_eye_center_x; use"):
        read_training_csv(tmp_path / "three.csv")
    negative = text[:2] + [text[2].replace("10.000000", "-0.5", 1)]
    (tmp_path / "neg.csv").write_text("\n".join(negative) + "\n")
    with pytest.raises(DataError, match=r"row 2: left_eye_center_x = -0.5 lies outside"):
        read_training_csv(tmp_path / "neg.csv")
    inf = text[:2] + [text[2].replace("10.000000", "inf", 1)]
    (tmp_path / "inf.csv").write_text("\n".join(inf) + "\n")
    with pytest.raises(DataError, match=r"row 2: left_eye_center_x = 'inf' is not a number"):
        read_training_csv(tmp_path / "inf.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_training_csv(tmp_path / "empty.csv")
    (tmp_path / "ids.csv").write_text("ImageId,Image\n1.5,0\n")
    with pytest.raises(DataError, match=r"row 1: ImageId '1.5' is not a whole number"):
        read_test_csv(tmp_path / "ids.csv")
    (tmp_path / "noimg.csv").write_text("ImageId\n1\n")
    with pytest.raises(DataError, match="no 'Image' column"):
        read_test_csv(tmp_path / "noimg.csv")
    (tmp_path / "look.csv").write_text("RowId,ImageId,FeatureName,Location\n1,2,nose_tip_y,\n")
    rows, image_ids, names = read_lookup_csv(tmp_path / "look.csv")
    assert rows.tolist() == [1] and image_ids.tolist() == [2] and names == ["nose_tip_y"]
    (tmp_path / "look2.csv").write_text("RowId,ImageId\n1,2\n")
    with pytest.raises(DataError, match="no 'FeatureName' column"):
        read_lookup_csv(tmp_path / "look2.csv")


def _one_effect(**on) -> KeypointAugment:
    off = dict(flip=0.0, degrees=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)
    return KeypointAugment(**{**off, **on})


def test_augmentation_draws_stay_within_their_ranges_and_use_them():
    """One effect at a time on 800 samples: each random draw spans its whole range and no more."""
    n = 800
    images = torch.full((n, 1, 4, 4), 0.5)
    images[:, :, :2] = 0.4  # a little contrast to scale
    kp = torch.zeros(n, 30)
    kp[:, 0], kp[:, 1] = CENTER + 10, CENTER  # the left eye 10 px right of the center
    mask = torch.ones(n, 30)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    flipped = _one_effect(flip=0.25)((images, kp, mask), g())[1][:, 2 * RIGHT_EYE] == FLIP_SUM - (CENTER + 10)
    assert 0.2 < flipped.float().mean() < 0.3
    turned = _one_effect(degrees=12.0)((images, kp, mask), g())[1]
    angles = torch.rad2deg(torch.atan2(turned[:, 1] - CENTER, turned[:, 0] - CENTER))
    assert angles.abs().max() <= 12.0 + 1e-3 and angles.min() < -11.5 and angles.max() > 11.5
    scaled = _one_effect(scale=0.08)((images, kp, mask), g())[1]
    factor = (scaled[:, 0] - CENTER) / 10
    assert factor.min() >= 0.92 - 1e-5 and factor.max() <= 1.08 + 1e-5 and factor.min() < 0.925 and factor.max() > 1.075
    shifted = _one_effect(shift=5.0)((images, kp, mask), g())[1]
    dx, dy = shifted[:, 0] - (CENTER + 10), shifted[:, 1] - CENTER
    for d in (dx, dy):
        assert d.abs().max() <= 5.0 + 1e-4 and d.min() < -4.8 and d.max() > 4.8
    assert abs(float(torch.corrcoef(torch.stack([dx, dy]))[0, 1])) < 0.15  # two independent draws
    out = _one_effect(brightness=0.15)((images, kp, mask), g())[0]
    shift = (out - images).mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.15 + 1e-6 and shift.min() < -0.14 and shift.max() > 0.14
    assert torch.allclose(out - images, shift.view(-1, 1, 1, 1).expand_as(out), atol=1e-6)  # one shift per image
    out = _one_effect(contrast=0.25)((images, kp, mask), g())[0]
    assert torch.allclose(out.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=1e-6)  # about each image's mean
    ratio = (out[:, 0, 0, 0] - out[:, 0, 3, 3]) / (images[0, 0, 0, 0] - images[0, 0, 3, 3])
    assert ratio.min() >= 0.75 - 1e-4 and ratio.max() <= 1.25 + 1e-4 and ratio.min() < 0.76 and ratio.max() > 1.24
    clamped = _one_effect(brightness=0.9)((images, kp, mask), g())[0]
    assert clamped.min() >= 0.0 and clamped.max() <= 1.0 and clamped.min() == 0.0 and clamped.max() == 1.0


def test_plain_whole_numbers_take_the_fast_parser(monkeypatch):
    import torchlab.data.keypoints as keypoints

    pixels = np.arange(9216) % 256  # every gray level from 0 to 255
    text = " ".join(map(str, pixels))
    careful = keypoints._parse_one
    monkeypatch.setattr(keypoints, "_parse_one", lambda *a: pytest.fail("the careful parser ran on plain numbers"))
    assert np.array_equal(keypoints.parse_images([text])[0].ravel(), pixels)
    monkeypatch.setattr(keypoints, "_parse_one", careful)
    decimals = " ".join(["12.6", "0.4"] + ["7"] * 9214)  # not whole numbers: the careful parser rounds them
    assert keypoints.parse_images([decimals])[0].ravel()[:3].tolist() == [13, 0, 7]
    with pytest.raises(DataError, match="row 1: the Image value is empty"):
        keypoints.parse_images([float("nan")])


def test_text_that_is_no_number_is_refused_not_taken_as_missing(tmp_path):
    images = np.zeros((1, 96, 96), np.uint8)
    kp = np.full((1, 30), 10.0, dtype=np.float32)
    header, row = format_training_csv(images, kp).splitlines()
    (tmp_path / "na.csv").write_text(header + "\n" + row.replace("10.000000", "NA", 1) + "\n")
    with pytest.raises(DataError, match=r"row 1: left_eye_center_x = 'NA' is not a number"):
        read_training_csv(tmp_path / "na.csv")
    (tmp_path / "look.csv").write_text("RowId,ImageId,FeatureName,Location\n1,2,,\n")
    with pytest.raises(DataError, match=r"row 1: FeatureName '' is not one of the 30 keypoint coordinates"):
        read_lookup_csv(tmp_path / "look.csv")


def test_seed_split_is_scikit_learns_with_the_seeds_settings():
    from sklearn.model_selection import train_test_split

    train, val = seed_split(50)
    want_train, want_val = train_test_split(np.arange(50), test_size=0.1, random_state=42)
    assert train.tolist() == want_train.tolist() and val.tolist() == want_val.tolist()
    train, val = seed_split(50, fraction=0.2, seed=1)
    want_train, want_val = train_test_split(np.arange(50), test_size=0.2, random_state=1)
    assert val.tolist() == want_val.tolist() and len(train) == 40


@pytest.mark.parametrize("flip", [0.5, 0.0])
def test_augment_draws_flip_then_geometry_then_light_from_one_generator(flip):
    """The exact recipe: which samples flip, then angle, scale and shift, then contrast and brightness
    about each image's own mean, all drawn in that order from the batch's generator."""
    g0 = torch.Generator().manual_seed(11)
    n = 4
    images = torch.rand(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=g0) * torch.linspace(0.2, 1.0, n).view(n, 1, 1, 1)
    kp = 30 + 30 * torch.rand(n, 30, generator=g0)
    mask = (torch.rand(n, 30, generator=g0) > 0.2).float().repeat_interleave(2, dim=1)[:, :30]
    aug = KeypointAugment(flip=flip, flip_sum=96.0, degrees=10.0, scale=0.1, shift=4.0, brightness=0.2, contrast=0.3)
    out = aug((images, kp * mask, mask), torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)

    def u(*shape):
        return torch.rand(*shape, generator=g) * 2 - 1

    step = (images, kp * mask, mask)
    if flip:
        step = flip_batch(*step, torch.rand(n, generator=g) < flip, flip_sum=96.0)
    step = affine_batch(*step, u(n) * math.radians(10.0), 1 + u(n) * 0.1, u(n, 2) * 4.0)
    mean = step[0].mean(dim=(1, 2, 3), keepdim=True)
    contrast, brightness = 1 + u(n, 1, 1, 1) * 0.3, u(n, 1, 1, 1) * 0.2
    want_images = ((step[0] - mean) * contrast + mean + brightness).clamp(0, 1)
    assert torch.allclose(out[0], want_images, atol=1e-6) and out[0].shape == images.shape
    assert torch.allclose(out[1], step[1] * step[2], atol=1e-5) and torch.equal(out[2], step[2])


def test_affine_keeps_the_dtype_and_replicates_the_border():
    images = torch.full((2, 1, IMAGE_SIZE, IMAGE_SIZE), 0.5, dtype=torch.float64)
    kp = torch.full((2, 30), 40.0, dtype=torch.float64)
    mask = torch.ones(2, 30, dtype=torch.float64)
    out = affine_batch(
        images, kp, mask, torch.tensor([0.1, -0.2]), torch.tensor([1.1, 0.9]), torch.tensor([[6.0, -3.0], [-5.0, 2.0]])
    )
    assert out[0].dtype == out[1].dtype == torch.float64
    assert torch.allclose(out[0], images)  # pixels coming in from outside repeat the edge: no black border
    flipped = KeypointAugment(flip=1.0, flip_sum=96.0, degrees=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)(
        (images.float(), kp.float(), mask.float()), torch.Generator()
    )
    assert flipped[1][0, 2 * RIGHT_EYE] == 96.0 - 40.0  # the augmentation's own flip_sum, not the default 95


def test_every_csv_error_starts_with_the_file(tmp_path, monkeypatch):
    import pandas as pd

    images = np.zeros((1, 96, 96), np.uint8)
    kp = np.full((1, 30), 10.0, dtype=np.float32)
    header, row = format_training_csv(images, kp).splitlines()
    bad_coordinate = tmp_path / "coord.csv"
    bad_coordinate.write_text(header + "\n" + row.replace("10.000000", "x", 1) + "\n")
    bad_image = tmp_path / "image.csv"
    bad_image.write_text(header + "\n" + row.rsplit(" ", 1)[0] + " 256\n")  # 256 is no gray level
    for path, says in ((bad_coordinate, "row 1: left_eye_center_x = 'x'"), (bad_image, "row 1: Image holds gray")):
        with pytest.raises(DataError, match=f"^{path} {says}"):
            read_training_csv(path)
    for text in ("ImageId,Image\nabc,0\n", "ImageId,Image\n1,0 1\n"):
        (tmp_path / "test.csv").write_text(text)
        with pytest.raises(DataError, match=f"^{tmp_path / 'test.csv'} row 1: "):
            read_test_csv(tmp_path / "test.csv")
    for text in ("RowId,ImageId,FeatureName\nx,1,nose_tip_x\n", "RowId,ImageId,FeatureName\n1,y,nose_tip_x\n"):
        (tmp_path / "look.csv").write_text(text)
        with pytest.raises(DataError, match=f"^{tmp_path / 'look.csv'} row 1: (RowId 'x'|ImageId 'y') is not a whole"):
            read_lookup_csv(tmp_path / "look.csv")
    with pytest.raises(DataError, match="^data row 1: Image has 2 gray levels"):
        parse_images(["1 2"])  # the default name when no file is given
    with pytest.raises(DataError, match="^data row 1: Image holds gray levels outside 0..255"):
        parse_images([" ".join(["256"] + ["0"] * 9215)])  # not wrapped round to 0 by the fast parser

    def unreadable(*args, **kwargs):
        raise ValueError("a pandas complaint\nover two lines " + "x" * 300)

    monkeypatch.setattr(pd, "read_csv", unreadable)
    with pytest.raises(DataError) as info:
        read_training_csv(bad_image)
    detail = ("a pandas complaint over two lines " + "x" * 300)[:160]
    assert str(info.value) == f"{bad_image} is not a readable CSV file ({detail})"  # one line, 160 characters
