"""Issue 40, part 3 for MNIST: an IDX header that contradicts what MNIST is (28x28 images, labels where labels
belong) is a one-line DataError naming the file, in train and in evaluate, not a wrong model or a traceback."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mnist_files import idx_bytes, synthetic_digits, write_mnist
from torchlab.cli.main import main
from torchlab.data import mnist
from torchlab.errors import DataError

RUN = ["--device", "cpu", "--no-progress", "--no-figures"]


def one_line(capsys, status: int) -> str:
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def declare_27_by_29(path) -> None:
    """Rewrite an images file's header to declare 27x29 images: the same bytes read as other images."""
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[8:16] = struct.pack(">II", 27, 29)
    path.write_bytes(gzip.compress(bytes(data)))


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    """An mnist-linear checkpoint trained one epoch on a small synthetic MNIST."""
    root = write_mnist(tmp_path_factory.mktemp("mnist"), n_train=300, n_test=100)
    out = root / "run"
    assert (
        main(
            [
                "train",
                "mnist",
                "--model",
                "mnist-linear",
                "--data-dir",
                str(root),
                "--epochs",
                "1",
                "--out",
                str(out),
                *RUN,
            ]
        )
        == 0
    )
    return root, out / "best.pt"


def test_a_27_by_29_header_is_refused_when_training_mnist_cnn(tmp_path, capsys):
    """The issue's example: mnist-cnn trained on such a file to 0.08 test accuracy with exit 0."""
    root = write_mnist(tmp_path / "mnist", n_train=300, n_test=100)
    declare_27_by_29(root / "train-images-idx3-ubyte.gz")
    err = one_line(
        capsys, main(["train", "mnist", "--data-dir", str(root), "--epochs", "1", "--out", str(tmp_path / "o"), *RUN])
    )
    assert f"MNIST file {root / 'train-images-idx3-ubyte.gz'} declares 27x29 images; MNIST images are 28x28" in err
    assert not (tmp_path / "o").exists()


def test_a_27_by_29_header_is_refused_when_evaluating_mnist_linear(linear_run, tmp_path, capsys):
    """The issue's example: mnist-linear stopped with "mat1 and mat2 shapes cannot be multiplied"."""
    root, checkpoint = linear_run
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in root.glob("*.gz"):
        (damaged / path.name).write_bytes(path.read_bytes())
    declare_27_by_29(damaged / "t10k-images-idx3-ubyte.gz")
    err = one_line(capsys, main(["evaluate", str(checkpoint), "--data-dir", str(damaged), "--device", "cpu"]))
    assert "t10k-images-idx3-ubyte.gz declares 27x29 images; MNIST images are 28x28" in err


def test_a_labels_file_holding_images_names_what_it_holds(tmp_path, capsys):
    """The issue's example: called "truncated" with a 60000 x 83887105 x 151126275 header."""
    root = write_mnist(tmp_path / "mnist", n_train=300, n_test=100)
    images, _ = synthetic_digits(300, 0)
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    err = one_line(
        capsys, main(["train", "mnist", "--data-dir", str(root), "--epochs", "1", "--out", str(tmp_path / "o"), *RUN])
    )
    assert (
        f"MNIST file {root / 'train-labels-idx1-ubyte.gz'} holds images, not labels: its magic number is "
        "0x00000803, labels have 0x00000801"
    ) in err
    assert "truncated" not in err


def test_an_images_file_holding_labels_names_what_it_holds(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.arange(10)))
    with pytest.raises(DataError, match="holds labels, not images"):
        mnist.read_idx(path, "images")
    assert mnist.read_idx(path).tolist() == list(range(10))  # without a kind: any IDX file of bytes
