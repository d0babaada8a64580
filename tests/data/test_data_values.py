"""Exact values of the data plumbing: the TensorBatcher's batches, shards and seeds, the holdout
split, make_loader's samplers, and MNIST's IDX reader, subsets and normalization (computed from
the training images only: not the held-out ones, not the test set)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from torchlab.cli.main import main
from torchlab.data import mnist
from torchlab.data.batcher import TensorBatcher, make_loader
from torchlab.data.splits import split_indices
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.errors import DataError, UsageError
from torchlab.runtime import distributed


def in_world(monkeypatch, rank: int, world_size: int) -> None:
    monkeypatch.setattr(distributed, "current", lambda: distributed.World(rank, world_size))


def values(batcher) -> list[list[int]]:
    return [b[0].tolist() for b in batcher]


# ------------------------------------------------------------------ TensorBatcher
def test_batches_in_order_with_the_last_one_smaller_or_dropped():
    x = torch.arange(7)
    assert values(TensorBatcher((x,), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert values(TensorBatcher((x,), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(TensorBatcher((x,), 3)) == 3 and len(TensorBatcher((x,), 3, drop_last=True)) == 2
    assert len(TensorBatcher((x,), 7)) == 1 and len(TensorBatcher((x[:6],), 3, drop_last=True)) == 2
    for whole in (None, 0, -1, 100):
        batcher = TensorBatcher((x,), whole)
        assert batcher.batch_size == 7 and values(batcher) == [list(range(7))]
    assert values(TensorBatcher((x[:3],), 1)) == [[0], [1], [2]]  # one sample a batch is a batch size too
    pairs = TensorBatcher((x, x * 10), 4)
    assert [b[1].tolist() for b in pairs] == [[0, 10, 20, 30], [40, 50, 60]]
    assert pairs.num_samples == 7 and pairs.device == torch.device("cpu") and pairs.epoch == 0


def test_batcher_refuses_misaligned_tensors():
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorBatcher((), 2)
    with pytest.raises(ValueError, match=r"disagree on the number of samples: \[3, 4\]"):
        TensorBatcher((torch.zeros(3), torch.zeros(4)), 2)


def test_shuffle_is_a_function_of_seed_and_epoch():
    x = torch.arange(20)

    def order(seed, epoch):
        batcher = TensorBatcher((x,), 6, shuffle=True, seed=seed)
        batcher.set_epoch(epoch)
        return torch.cat([b[0] for b in batcher]).tolist()

    assert order(1, 2) == order(1, 2) and sorted(order(1, 2)) == list(range(20))
    assert order(1, 2) != order(1, 3) and order(1, 2) != order(2, 2) and order(0, 0) != list(range(20))
    g = torch.Generator().manual_seed(1 * 1_000_003 + 2)
    assert order(1, 2) == torch.randperm(20, generator=g).tolist()  # resume relies on this exact order


def test_transform_gets_a_generator_seeded_by_seed_and_epoch():
    seen = []

    def transform(batch, generator):
        seen.append(torch.rand(1, generator=generator).item())
        return (batch[0] * 2,)

    batcher = TensorBatcher((torch.arange(4),), 2, transform=transform, seed=5)
    batcher.set_epoch(3)
    assert values(batcher) == [[0, 2], [4, 6]]
    g = torch.Generator().manual_seed(5 * 7919 + 3 + 1)
    first, second = torch.rand(1, generator=g).item(), torch.rand(1, generator=g).item()
    assert seen == [first, second]  # one generator for the epoch, drawn from batch after batch


@pytest.mark.parametrize("n", [7, 8])
def test_training_shards_are_padded_and_evaluation_shards_exact(monkeypatch, n):
    x = torch.arange(n)
    train, val = {}, {}
    for rank in (0, 1):
        in_world(monkeypatch, rank, 2)
        batcher = TensorBatcher((x,), 3, shuffle=True, seed=2)
        assert (batcher.rank, batcher.world_size, batcher.even_shards) == (rank, 2, True)
        train[rank] = torch.cat([b[0] for b in batcher]).tolist()
        assert len(batcher) == 2
        evaluation = TensorBatcher((x,), 3)
        val[rank] = torch.cat([b[0] for b in evaluation]).tolist()
        assert len(evaluation) == len(range(rank, n, 2)) // 3 + (len(range(rank, n, 2)) % 3 > 0)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(2 * 1_000_003)).tolist()
    padded = perm + perm[: 4 * 2 - n]
    assert train[0] == padded[0::2] and train[1] == padded[1::2]  # every world_size-th index of the padded order
    assert val[0] == list(range(0, n, 2)) and val[1] == list(range(1, n, 2))
    in_world(monkeypatch, 1, 2)
    unsharded = TensorBatcher((x,), 3, shard=False)
    assert (unsharded.rank, unsharded.world_size) == (0, 1) and values(unsharded)[0] == [0, 1, 2]
    uneven = TensorBatcher((x,), 3, shuffle=True, seed=2, even_shards=False)
    assert torch.cat([b[0] for b in uneven]).tolist() == perm[1::2]
    padded_eval = TensorBatcher((x,), 3, even_shards=True)
    assert torch.cat([b[0] for b in padded_eval]).tolist() == (list(range(n)) + [0] * (8 - n))[1::2]


def test_split_indices_holds_out_the_rounded_fraction():
    train, hold = split_indices(10, 0.25, seed=3)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    assert hold.tolist() == perm[:2] and train.tolist() == perm[2:]  # round(2.5) = 2
    assert len(split_indices(10, 0.26)[1]) == 3 and len(split_indices(10, 0.01)[1]) == 1  # at least one
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="holdout fraction must be in"):
            split_indices(10, bad)


def test_make_loader_shards_by_rank(monkeypatch):
    data = torch.utils.data.TensorDataset(torch.arange(10))
    in_world(monkeypatch, 1, 3)
    loader = make_loader(data, 2)
    assert [b[0].tolist() for b in loader] == [[1, 4], [7]]  # every third sample from rank 1
    loader = make_loader(data, 2, shuffle=True, seed=9, drop_last=True)
    sampler = loader.sampler
    assert (sampler.num_replicas, sampler.rank, sampler.seed, sampler.shuffle) == (3, 1, 9, True)
    assert not sampler.drop_last and loader.drop_last and len(list(sampler)) == 4
    in_world(monkeypatch, 0, 1)
    assert sorted(torch.cat([b[0] for b in make_loader(data, 4, shuffle=True)]).tolist()) == list(range(10))


# --------------------------------------------------------------------- MNIST IDX
def idx(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_split(folder, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx(images))
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(labels))


def test_read_idx_header_and_shapes(tmp_path):
    path = tmp_path / "f"
    for array in (np.arange(5), np.arange(6).reshape(2, 3), np.arange(24).reshape(2, 3, 4)):
        path.write_bytes(idx(array) + b"extra")  # trailing bytes are ignored
        assert np.array_equal(mnist.read_idx(path), array.astype(np.uint8))
    path.write_bytes(idx(np.zeros((1, 1, 1, 1))))
    with pytest.raises(DataError, match="magic number 0x00000804"):
        mnist.read_idx(path)  # 4 dimensions: not MNIST
    path.write_bytes(idx(np.zeros(3), magic=0x00000800))
    with pytest.raises(DataError, match="magic number 0x00000800"):
        mnist.read_idx(path)
    path.write_bytes(idx(np.zeros(3), magic=0x01000801))
    with pytest.raises(DataError, match="magic number 0x01000801"):
        mnist.read_idx(path)
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match=r"is truncated \(3 bytes, no IDX header\)"):
        mnist.read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 8)
    with pytest.raises(DataError, match="truncated inside its header"):
        mnist.read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    assert mnist.read_idx(path).shape == (0,)
    gz = tmp_path / "f.gz"
    gz.write_bytes(gzip.compress(idx(np.arange(3))))
    assert mnist.read_idx(gz).tolist() == [0, 1, 2]
    (tmp_path / "plain_named.gz").write_bytes(gzip.compress(idx(np.arange(2))))
    assert mnist.read_idx(str(tmp_path / "plain_named.gz")).tolist() == [0, 1]


def test_find_file_prefers_torchvision_layout_then_raw_then_root(tmp_path):
    stem = "train-labels-idx1-ubyte"
    for folder in (tmp_path / "MNIST" / "raw", tmp_path / "raw", tmp_path):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (stem + ".gz")).write_bytes(b"")
    assert mnist.find_file(tmp_path, stem) == tmp_path / "MNIST" / "raw" / (stem + ".gz")
    (tmp_path / "MNIST" / "raw" / (stem + ".gz")).unlink()
    assert mnist.find_file(tmp_path, stem) == tmp_path / "raw" / (stem + ".gz")
    (tmp_path / "raw" / stem).write_bytes(b"")
    assert mnist.find_file(tmp_path, stem) == tmp_path / "raw" / stem  # the raw file before the .gz
    (tmp_path / "raw" / stem).unlink()
    (tmp_path / "raw" / (stem + ".gz")).unlink()
    assert mnist.find_file(str(tmp_path), stem) == tmp_path / (stem + ".gz")
    (tmp_path / "MNIST" / "raw" / stem).mkdir()  # a folder of that name is not the file
    assert mnist.find_file(tmp_path, stem) == tmp_path / (stem + ".gz")
    for other in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / other).write_bytes(b"")
    with pytest.raises(DataError, match=r"file t10k-images-idx3-ubyte\[.gz\] not found"):
        mnist.check_files(tmp_path)  # the one file missing is named
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    assert [p.name for p in mnist.check_files(tmp_path)] == [
        "train-images-idx3-ubyte",
        stem + ".gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte",
    ]


def test_load_split_checks_dimensions_counts_and_labels(tmp_path):
    write_split(tmp_path, "t10k", np.zeros((3, 28, 28)), np.array([0, 9, 4]))
    images, labels = mnist.load_split(tmp_path, "test")
    assert images.shape == (3, 28, 28) and labels.tolist() == [0, 9, 4] and labels.dtype == np.int64
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx(np.array([0, 10, 4])))
    with pytest.raises(DataError, match="has label 10; digit labels run 0..9"):
        mnist.load_split(tmp_path, "test")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx(np.zeros((3, 1))))
    with pytest.raises(DataError, match="holds 2-D data, not labels"):
        mnist.load_split(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx(np.zeros((3, 4))))
    with pytest.raises(DataError, match="holds 2-D data, not images"):
        mnist.load_split(tmp_path, "test")
    write_split(tmp_path / "empty", "t10k", np.zeros((0, 28, 28)), np.zeros(0))
    assert mnist.load_split(tmp_path / "empty", "test")[1].shape == (0,)


def test_load_mnist_subset_limit_and_scaling(tmp_path):
    labels = np.array([3, 7, 1, 7, 3, 3, 7])
    images = np.stack([np.full((28, 28), 51 * (i % 6)) for i in range(7)])
    write_split(tmp_path, "train", images, labels)
    write_split(tmp_path, "t10k", images[:3], labels[:3])
    data = mnist.load_mnist(tmp_path, digits=(3, 7), limit=3)
    # the subset first (3, 7, 7, 3, 3, 7), then the limit: the first 3 of those
    assert data.labels_train.tolist() == [3, 7, 7] and data.y_train.tolist() == [0.0, 1.0, 1.0]
    assert data.y_train.dtype == torch.float32 and data.digits == (3, 7) and data.classes == 1
    assert data.x_train.shape == (3, 1, 28, 28) and data.x_train[1, 0, 0, 0].item() == pytest.approx(0.2)
    assert data.labels_test.tolist() == [3, 7] and data.y_test.tolist() == [0.0, 1.0]
    full = mnist.load_mnist(tmp_path)
    assert full.classes == 10 and full.class_names() == [str(d) for d in range(10)] and full.digits is None
    assert full.y_train.tolist() == labels.tolist() and full.y_train.dtype == torch.int64
    assert full.x_train[5].max().item() == 1.0 and full.x_train.dtype == torch.float32
    assert mnist.load_mnist(tmp_path, limit=1).x_train.shape[0] == 1
    with pytest.raises(UsageError, match="--limit must be >= 1, got 0"):
        mnist.load_mnist(tmp_path, limit=0)
    with pytest.raises(DataError, match=r"no training samples left after --digits \(0, 2\)"):
        mnist.load_mnist(tmp_path, digits=[0, 2])


def test_validate_digits_and_binary_targets():
    assert mnist.validate_digits(["4", 5]) == (4, 5)
    for bad in ([4], [4, 4], [4, 5, 6], [-1, 3], [3, 10]):
        with pytest.raises(UsageError, match="--digits takes two different digits 0..9"):
            mnist.validate_digits(bad)
    assert mnist.validate_digits([0, 9]) == (0, 9)
    keep, targets = mnist.binary_targets(np.array([7, 2, 7, 9]), (9, 7))
    assert keep.tolist() == [True, False, True, True] and targets.tolist() == [1.0, 1.0, 0.0]
    assert targets.dtype == np.float32


def test_download_calls_torchvision_for_both_splits_and_wraps_failures(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    assert mnist.download_mnist(tmp_path) == tmp_path / "MNIST" / "raw"
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]

    class Offline:
        def __init__(self, *args, **kwargs):
            raise ConnectionError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(DataError, match=r"downloading MNIST into .* failed \(ConnectionError: no network\)"):
        mnist.download_mnist(tmp_path)


def test_normalization_stats_are_mean_and_sample_std():
    mean, std = mnist.normalization_stats(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert mean == 1.5 and std == pytest.approx(float(np.std([0, 1, 2, 3], ddof=1)))
    assert isinstance(mean, float) and isinstance(std, float)


def test_random_affine_zero_is_identity_and_shift_moves_whole_pixels():
    x = torch.rand(2, 1, 8, 8)
    same = mnist.random_affine(x, torch.Generator().manual_seed(0), shift=0.0, degrees=0.0, scale=0.0)
    assert torch.allclose(same, x, atol=1e-6)
    img = torch.zeros(64, 1, 8, 8)
    img[:, :, 3:5, 3:5] = 1.0
    moved = mnist.random_affine(img, torch.Generator().manual_seed(1), shift=2.0, degrees=0.0, scale=0.0)
    mass = moved.sum(dim=(1, 2, 3))
    cols = (moved.sum(dim=(1, 2)) * torch.arange(8.0)).sum(1) / mass - 3.5
    rows = (moved.sum(dim=(1, 3)) * torch.arange(8.0)).sum(1) / mass - 3.5
    assert cols.abs().max() <= 2.0 + 1e-4 and rows.abs().max() <= 2.0 + 1e-4  # at most `shift` pixels
    assert cols.abs().max() > 1.0 and rows.abs().max() > 1.0 and (cols - rows).abs().max() > 0.1
    turned = mnist.random_affine(img, torch.Generator().manual_seed(1), shift=0.0, degrees=90.0, scale=0.0)
    assert torch.allclose(turned.sum(dim=(1, 2, 3)), mass.new_full((64,), 4.0), atol=0.5)  # a turn keeps the square
    zoomed = mnist.random_affine(img, torch.Generator().manual_seed(2), shift=0.0, degrees=0.0, scale=0.5)
    areas = zoomed.sum(dim=(1, 2, 3))
    assert areas.min() < 3.0 and areas.max() > 5.0 and areas.max() < 4 * 1.5**2 + 0.5


def test_mnist_normalization_comes_from_the_training_images_only(tmp_path):
    # image i has every pixel = i; the test images are all 255 (they must not count, nor may the held-out ones)
    labels = np.arange(20) % 10
    write_split(tmp_path, "train", np.stack([np.full((28, 28), i) for i in range(20)]), labels)
    write_split(tmp_path, "t10k", np.full((4, 28, 28), 255), labels[:4])
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "mnist",
                "--data-dir",
                str(tmp_path),
                "--model",
                "mnist-linear",
                "--epochs",
                "1",
                "--val-size",
                "5",
                "--batch-size",
                "8",
                "--out",
                str(out),
                "--no-figures",
                "--no-progress",
                "--device",
                "cpu",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    keep, _ = split_indices(20, 5 / 20, seed=0)
    pixels = (torch.tensor(sorted(keep.tolist()), dtype=torch.float32).repeat_interleave(28 * 28) / 255).double()
    saved = read_checkpoint(out / "best.pt")
    assert saved["normalization"]["mean"] == pytest.approx(float(pixels.mean()), rel=1e-12)
    assert saved["normalization"]["std"] == pytest.approx(float(pixels.std()), rel=1e-12)
    assert saved["train_samples"] == 15


def test_missing_file_advice_fits_the_command(tmp_path):
    write_split(tmp_path, "t10k", np.zeros((1, 2, 2)), np.zeros(1))
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte\[\.gz\] not found .*; pass --data-dir with the four "
        r"MNIST files, or add --download to fetch them$",
    ):
        mnist.load_mnist(tmp_path)  # training offers --download
    with pytest.raises(DataError, match=r"not found .*; pass --data-dir with the four MNIST files$"):
        mnist.load_split(tmp_path, "train")  # evaluate and predict have no --download
    with pytest.raises(DataError, match=r"not found .*\); do this$"):
        mnist.load_split(tmp_path, "train", "do this")
    with pytest.raises(DataError, match=r"not found .*\); or that$"):
        mnist.check_files(tmp_path, "or that")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found .*\); then$"):
        mnist.load_split(tmp_path, "test", "then")  # the labels are looked up with the same advice


def test_four_byte_idx_is_truncated_inside_its_header(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\x00\x00\x08\x01")
    with pytest.raises(DataError, match="truncated inside its header"):
        mnist.read_idx(path)


@pytest.mark.parametrize("settings", [dict(shift=2.0, degrees=10.0, scale=0.1), {}])  # {}: the defaults
def test_random_affine_draws_angle_zoom_and_shift_in_that_order(monkeypatch, settings):
    import math

    captured = []
    real = torch.nn.functional.affine_grid

    def affine_grid(theta, *args, **kwargs):
        captured.append(theta)
        return real(theta, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "affine_grid", affine_grid)
    images = torch.rand(3, 1, 10, 20)
    mnist.random_affine(images, torch.Generator().manual_seed(5), **settings)
    g = torch.Generator().manual_seed(5)
    u = [torch.rand(3, generator=g) * 2 - 1 for _ in range(4)]
    angle, zoom = u[0] * 10.0 * math.pi / 180, 1 + u[1] * 0.1
    want = torch.stack(
        [
            torch.stack([angle.cos() / zoom, -angle.sin() / zoom, u[2] * 2 * 2.0 / 20], 1),
            torch.stack([angle.sin() / zoom, angle.cos() / zoom, u[3] * 2 * 2.0 / 10], 1),
        ],
        1,
    )
    assert len(captured) == 1 and torch.allclose(captured[0], want, atol=1e-6)


def test_load_mnist_downloads_first_when_asked(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(mnist, "download_mnist", lambda root: calls.append(root))
    write_split(tmp_path, "train", np.zeros((2, 28, 28)), np.array([1, 2]))
    write_split(tmp_path, "t10k", np.zeros((1, 28, 28)), np.array([1]))
    mnist.load_mnist(tmp_path)
    assert calls == []
    mnist.load_mnist(tmp_path, download=True)
    assert calls == [tmp_path]


def test_batcher_and_loader_defaults_and_device(monkeypatch):
    x = torch.arange(300)
    batcher = TensorBatcher((x,))
    assert (batcher.batch_size, batcher.seed, batcher.shuffle, batcher.drop_last, len(batcher)) == (
        128,
        0,
        False,
        False,
        3,
    )
    on_meta = TensorBatcher((x.float(),), 10, device="meta")  # moved once, to the device asked for
    assert on_meta.device.type == "meta" and on_meta.tensors[0].device.type == "meta"
    assert TensorBatcher((x,), 10, device=None).tensors[0] is x  # no device: the tensors as given
    assert torch.equal(split_indices(20, 0.25)[1], split_indices(20, 0.25, seed=0)[1])
    in_world(monkeypatch, 0, 1)
    data = torch.utils.data.TensorDataset(torch.arange(6))
    assert make_loader(data, 2, shuffle=True).sampler.seed == 0
    loader = make_loader(data, 2, collate_fn=lambda items: [int(i[0]) * 10 for i in items])  # passed to DataLoader
    assert list(loader) == [[0, 10], [20, 30], [40, 50]]


def test_random_affine_keeps_float64_and_idx_edges(tmp_path):
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    out = mnist.random_affine(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == x.shape
    path = tmp_path / "f"
    path.write_bytes(b"\x80\x00\x08\x03" + b"\x00" * 12)
    with pytest.raises(DataError, match="magic number 0x80000803"):
        mnist.read_idx(path)
    path.write_bytes(idx(np.zeros((3, 28, 28)))[:-10])  # 10 bytes short: fewer than the header's 16
    with pytest.raises(DataError, match="is truncated: its header promises 3x28x28 = 2,352 values but it holds 2,342"):
        mnist.read_idx(path)
