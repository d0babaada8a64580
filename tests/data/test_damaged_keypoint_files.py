"""Issue 40, parts 3 and 4 for the keypoints CSV: a truncated or damaged compressed file is a one-line DataError
naming the file (pandas' EOFError was about 50 lines of traceback; a CRC error did not name the file), and a
folder given for --data says it is a folder."""

from __future__ import annotations

import gzip

import pytest

from torchlab.cli.main import main
from torchlab.data.keypoints import format_training_csv, read_training_csv
from torchlab.data.synthetic_faces import make_faces
from torchlab.errors import DataError

RUN = ["--device", "cpu", "--no-progress", "--no-figures"]


def one_line(capsys, status: int) -> str:
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def compressed_faces() -> bytes:
    table = make_faces(30, seed=3)
    return gzip.compress(format_training_csv(table.images, table.keypoints).encode())


def test_a_truncated_csv_gz_is_one_line_in_train_and_evaluate(
    compressed_faces, tiny_keypoint_checkpoint, tmp_path, capsys
):
    cut = tmp_path / "faces.csv.gz"
    cut.write_bytes(compressed_faces[: len(compressed_faces) // 2])
    err = one_line(
        capsys, main(["train", "keypoint-net", "--data", str(cut), "--epochs", "1", "--out", str(tmp_path / "o"), *RUN])
    )
    assert f"{cut} is truncated or damaged (EOFError" in err and not (tmp_path / "o").exists()
    err = one_line(capsys, main(["evaluate", str(tiny_keypoint_checkpoint), "--data", str(cut), "--device", "cpu"]))
    assert f"{cut} is truncated or damaged (EOFError" in err


def test_export_with_a_truncated_csv_gz_names_it_and_has_no_traceback(
    compressed_faces, tiny_keypoint_checkpoint, tmp_path, capsys
):
    """export takes --data only for its parity inputs: a file it cannot read is named, and random inputs serve."""
    cut = tmp_path / "faces.csv.gz"
    cut.write_bytes(compressed_faces[: len(compressed_faces) // 2])
    status = main(
        [
            "export",
            str(tiny_keypoint_checkpoint),
            "--data",
            str(cut),
            "--format",
            "torchscript",
            "--out",
            str(tmp_path / "x.pt"),
        ]
    )
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert status == 0 and f"{cut} is truncated or damaged" in captured.out


def test_a_crc_error_names_the_file(compressed_faces, tmp_path):
    damaged = bytearray(compressed_faces)
    damaged[-6] ^= 0x01  # inside the gzip trailer's CRC-32
    path = tmp_path / "faces.csv.gz"
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"faces.csv.gz is truncated or damaged \(BadGzipFile: CRC check failed"):
        read_training_csv(path)


def test_a_folder_given_as_data_says_it_is_a_folder(tiny_keypoint_checkpoint, tmp_path, capsys):
    err = one_line(
        capsys, main(["evaluate", str(tiny_keypoint_checkpoint), "--data", str(tmp_path), "--device", "cpu"])
    )
    assert f"{tmp_path} is a folder; give the path of one CSV file" in err and "does not exist" not in err
