"""Keypoints data: the Kaggle CSV loader's checks, synthetic faces, the flip convention, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlab.data.keypoints import (
    COORD_COLUMNS,
    FLIP_SUM,
    KEYPOINT_NAMES,
    KeypointTable,
    _parse_one,
    flip_permutation,
    format_training_csv,
    parse_images,
    read_lookup_csv,
    read_test_csv,
    read_training_csv,
    split_rows,
)
from torchlab.data.keypoints_augment import KeypointAugment, affine_batch, flip_batch
from torchlab.data.synthetic_faces import (
    TEMPLATE,
    drop_labels,
    make_faces,
    mirror_geometry,
    render_faces,
    sample_geometry,
)
from torchlab.errors import DataError


@pytest.fixture(scope="module")
def faces() -> KeypointTable:
    return make_faces(40, seed=5)


@pytest.fixture
def training_text(faces) -> list[str]:
    return format_training_csv(faces.images[:6], faces.keypoints[:6]).splitlines()


def _write(tmp_path, lines, name="training.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loader_reads_back_what_was_written(tmp_path, faces):
    path = _write(tmp_path, format_training_csv(faces.images, faces.keypoints).splitlines())
    table = read_training_csv(path)
    assert table.images.shape == (40, 96, 96) and table.images.dtype == np.uint8
    np.testing.assert_array_equal(table.images, faces.images)
    np.testing.assert_array_equal(np.isnan(table.keypoints), np.isnan(faces.keypoints))
    np.testing.assert_allclose(table.keypoints, faces.keypoints, atol=1e-5, equal_nan=True)
    assert list(COORD_COLUMNS[:4]) == [
        "left_eye_center_x",
        "left_eye_center_y",
        "right_eye_center_x",
        "right_eye_center_y",
    ]
    assert COORD_COLUMNS[-1] == "mouth_center_bottom_lip_y" and len(COORD_COLUMNS) == 30


def test_fast_parser_matches_the_careful_one_and_accepts_decimals(faces):
    strings = [" ".join(map(str, img.ravel())) for img in faces.images[:3]]
    fast = parse_images(strings)
    careful = np.stack([_parse_one(s, "x", i) for i, s in enumerate(strings)]).reshape(fast.shape)
    np.testing.assert_array_equal(fast, careful)
    decimals = [" ".join(f"{v}.0" for v in img.ravel()) for img in faces.images[:2]]  # falls back to the careful path
    np.testing.assert_array_equal(parse_images(decimals), faces.images[:2])


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda rows: [r.rsplit(",", 1)[0] for r in rows], "no 'Image' column"),
        (lambda rows: rows[:3] + [rows[3].rsplit(" ", 1)[0]] + rows[4:], "row 3: Image has 9215 gray levels"),
        (lambda rows: rows[:2] + [rows[2].replace(" ", " abc ", 1)] + rows[3:], "row 2: Image holds 'abc'"),
        (
            lambda rows: rows[:4] + [rows[4].replace(" ", " -3 ", 1).rsplit(" ", 1)[0]] + rows[5:],
            "row 4: Image holds gray",
        ),
        (
            lambda rows: rows[:1] + [rows[1].replace(rows[1].split(",")[0], "seven", 1)] + rows[2:],
            "row 1: left_eye_center_x = 'seven' is not a number",
        ),
        (
            lambda rows: rows[:5] + [rows[5].replace(rows[5].split(",")[2], "96.0", 1)] + rows[6:],
            "row 5: right_eye_center_x = 96 lies outside the image",
        ),
    ],
)
def test_loader_names_the_bad_row(tmp_path, training_text, change, expected):
    path = _write(tmp_path, change(training_text))
    with pytest.raises(DataError, match=expected.replace("(", r"\(")):
        read_training_csv(path)


def test_gray_levels_above_255_are_refused(tmp_path, training_text):
    rows = list(training_text)
    head, pixels = rows[2].rsplit(",", 1)
    rows[2] = head + "," + "300 " + pixels.split(" ", 1)[1]
    with pytest.raises(DataError, match=r"row 2: Image holds gray levels outside 0..255 .*max 300"):
        read_training_csv(_write(tmp_path, rows))


def test_missing_file_and_test_csv_and_lookup(tmp_path, faces):
    with pytest.raises(DataError, match="does not exist"):
        read_training_csv(tmp_path / "nope.csv")
    lines = ["ImageId,Image"] + [f"{i + 1}," + " ".join(map(str, faces.images[i].ravel())) for i in range(3)]
    ids, images = read_test_csv(_write(tmp_path, lines, "test.csv"))
    assert ids.tolist() == [1, 2, 3] and images.shape == (3, 96, 96)
    bad = _write(tmp_path, ["RowId,ImageId,FeatureName,Location", "1,1,left_eye_center_x,", "2,1,left_ear_x,"], "l.csv")
    with pytest.raises(DataError, match="row 2: FeatureName 'left_ear_x'"):
        read_lookup_csv(bad)


def test_synthetic_missingness_is_kaggle_like(faces):
    exact = np.repeat(TEMPLATE[None], 2000, axis=0)
    table = KeypointTable(np.zeros((2000, 96, 96), np.uint8), drop_labels(exact, np.random.default_rng(1)))
    present = ~np.isnan(table.keypoints[:, 0::2])
    always = [
        KEYPOINT_NAMES.index(n) for n in ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")
    ]
    assert present[:, always].mean() > 0.98
    others = [i for i in range(15) if i not in always]
    assert 0.2 < present[:, others].mean() < 0.4
    assert 0.15 < table.complete.mean() < 0.4
    assert np.nanmin(faces.keypoints) >= 0 and np.nanmax(faces.keypoints) < 96


def test_split_keeps_the_seed_validation_rows_for_both_missing_modes(faces):
    drop, mask = split_rows(faces, "drop"), split_rows(faces, "mask")
    np.testing.assert_array_equal(drop.val, mask.val)
    assert faces.complete[drop.train].all() and faces.complete[drop.val].all()
    assert len(mask.train) == len(faces) - len(mask.val)
    assert not set(mask.train) & set(mask.val)


# ----------------------------------------------------------------- flip convention
def test_flip_swaps_the_right_names():
    perm = flip_permutation()
    pairs = {KEYPOINT_NAMES[i]: KEYPOINT_NAMES[j] for i, j in enumerate(perm)}
    assert pairs["left_eye_center"] == "right_eye_center"
    assert pairs["right_eye_outer_corner"] == "left_eye_outer_corner"
    assert pairs["left_eyebrow_inner_end"] == "right_eyebrow_inner_end"
    assert pairs["mouth_left_corner"] == "mouth_right_corner"
    for center in ("nose_tip", "mouth_center_top_lip", "mouth_center_bottom_lip"):
        assert pairs[center] == center
    assert sorted(perm) == list(range(15)) and all(perm[perm[i]] == i for i in range(15))


def test_keypoints_sit_on_pixel_centers():
    """The synthetic iris is centered on its keypoint: dark-pixel centroid == keypoint (pixel j at x = j)."""
    geometry = sample_geometry(16, np.random.default_rng(3))
    geometry["texture"][:] = 0
    images = render_faces(geometry).astype(float)
    y, x = np.mgrid[0:96, 0:96]
    errors = []
    for img, kp in zip(images, geometry["keypoints"]):
        cx, cy = kp[0]
        near = (x - cx) ** 2 + (y - cy) ** 2 <= 2.0**2  # inside the iris
        weight = (img.max() - img) * near
        errors.append([(weight * x).sum() / weight.sum() - cx, (weight * y).sum() / weight.sum() - cy])
    assert np.abs(np.mean(errors, axis=0)).max() < 0.15


def test_flip_is_x_to_95_minus_x_and_96_is_off_by_one():
    geometry = sample_geometry(8, np.random.default_rng(0))
    images = torch.from_numpy(render_faces(geometry)).float().unsqueeze(1)
    kp = torch.from_numpy(geometry["keypoints"].reshape(8, 30)).float()
    mask = torch.ones_like(kp)
    mirrored = mirror_geometry(geometry)
    want_img = torch.from_numpy(render_faces(mirrored)).float().unsqueeze(1)
    want_kp = torch.from_numpy(mirrored["keypoints"].reshape(8, 30)).float()
    which = torch.ones(8, dtype=torch.bool)
    got_img, got_kp, got_mask = flip_batch(images, kp, mask, which)
    assert (got_img - want_img).abs().max() <= 1  # the mirrored face drawn from scratch, up to rounding
    assert torch.allclose(got_kp, want_kp, atol=1e-4)
    _, off_kp, _ = flip_batch(images, kp, mask, which, flip_sum=FLIP_SUM + 1)
    assert torch.allclose(off_kp[:, 0::2] - want_kp[:, 0::2], torch.ones(8, 15), atol=1e-4)
    none = torch.zeros(8, dtype=torch.bool)
    same = flip_batch(images, kp, mask, none)
    assert torch.equal(same[0], images) and torch.equal(same[1], kp)


def test_affine_moves_image_and_keypoints_together():
    geometry = sample_geometry(4, np.random.default_rng(2))
    images = torch.from_numpy(render_faces(geometry)).float().unsqueeze(1) / 255
    kp = torch.from_numpy(geometry["keypoints"].reshape(4, 30)).float()
    mask = torch.ones_like(kp)
    same = affine_batch(images, kp, mask, torch.zeros(4), torch.ones(4), torch.zeros(4, 2))
    assert (same[0] - images).abs().max() < 1e-4 and (same[1] - kp).abs().max() < 1e-4
    shifted = affine_batch(images, kp, mask, torch.zeros(4), torch.ones(4), torch.tensor([[3.0, -2.0]] * 4))
    assert torch.allclose(shifted[0][..., 10:80, 10:80], images[..., 12:82, 7:77], atol=1e-4)
    assert torch.allclose(shifted[1][:, 0::2], kp[:, 0::2] + 3) and torch.allclose(shifted[1][:, 1::2], kp[:, 1::2] - 2)
    # a quarter turn about the center (47.5, 47.5): (x, y) -> (95 - y, x); pushed-out points are masked
    turned = affine_batch(images, kp, mask, torch.full((4,), np.pi / 2), torch.ones(4), torch.zeros(4, 2))
    assert torch.allclose(turned[0][..., 5:90, 5:90], images.transpose(-1, -2).flip(-1)[..., 5:90, 5:90], atol=1e-3)
    assert torch.allclose(turned[1][:, 0::2], 95 - kp[:, 1::2], atol=1e-3)
    far = affine_batch(images, kp, mask, torch.zeros(4), torch.ones(4), torch.tensor([[60.0, 0.0]] * 4))
    assert far[2].sum() < mask.sum() and torch.equal(far[2][:, 0::2], far[2][:, 1::2])


def test_augment_keeps_masked_targets_finite_and_is_seeded():
    table = make_faces(8, seed=9)
    images = torch.from_numpy(table.images).float().unsqueeze(1) / 255
    mask = torch.from_numpy(table.labeled).float()
    kp = torch.from_numpy(np.nan_to_num(table.keypoints)) * mask
    run = lambda: KeypointAugment()((images, kp, mask), torch.Generator().manual_seed(1))  # noqa: E731
    a, b = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.isfinite(a[1]).all() and a[0].min() >= 0 and a[0].max() <= 1
    assert ((a[2] == 0) | (a[2] == 1)).all() and (a[1][a[2] == 0] == 0).all()
