"""tools/bench_examples_mnist.py on a small fake MNIST: both loops train, report and give a ratio."""

from __future__ import annotations

import re
import sys

import torch

from accelerators import write_fake_mnist
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import bench_examples_mnist  # noqa: E402


def test_examples_net_has_the_shape_of_pytorch_examples_mnist():
    net = bench_examples_mnist.ExamplesNet()
    assert sum(p.numel() for p in net.parameters()) == 1_199_882  # main.py's Net
    out = net.eval()(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.allclose(out.exp().sum(1), torch.ones(2))  # log-probabilities


def test_the_bench_reports_both_loops_and_stops_the_examples_loop_at_the_target(tmp_path, capsys):
    mnist = write_fake_mnist(tmp_path / "mnist", n_train=300, n_test=100)
    assert bench_examples_mnist.main(["--data-dir", str(mnist), "--target", "0.01", "--max-epochs", "3"]) == 0
    shown = capsys.readouterr().out
    assert len(re.findall(r"^examples\s+epoch \d+:", shown, re.M)) == 1  # 1% is reached after one epoch
    assert re.search(r"^time to 0\.010 test accuracy, torchlab: [\d.]+ s$", shown, re.M)
    assert re.search(r"^speed-up \(examples / torchlab\): [\d.]+x$", shown, re.M)


def test_a_missing_data_folder_is_a_one_line_error(tmp_path, capsys):
    assert bench_examples_mnist.main(["--data-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
