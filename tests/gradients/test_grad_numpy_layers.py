"""The NumPy reference layers: the assignment's test vectors, parity with torch layers and autograd."""

from __future__ import annotations

import numpy as np
import torch

from torchlab.gradients import checks
from torchlab.gradients import numpy_layers as npl
from torchlab.gradients.result import FORMULA_RTOL, compare


def test_assignment_test_vectors():
    kernel = np.eye(3)
    kernel[-1, -1] = 2
    np.testing.assert_array_equal(
        npl.conv_matrix(np.array([[1, 2, 3], [2, 3, 4], [3, 4, 5]]), kernel), [[7, 10, 3], [10, 14, 6], [3, 6, 8]]
    )
    np.testing.assert_allclose(
        npl.box_blur(np.array([[9, 0, 9], [0, 0, 0], [9, 0, 9]]), 3),
        [[1, 2, 1], [2, 4, 2], [1, 2, 1]],
        rtol=0,
        atol=1e-12,
    )
    pool = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    np.testing.assert_array_equal(npl.maxpool_forward(pool), [[6, 8], [3, 4]])
    assert npl.l2_regularizer(2, [np.array([5, 3, 7, 5, 0.5])]) == 108.25
    assert npl.flatten_forward(np.zeros((100, 3, 16, 16))).shape == (100, 768)
    assert all(r.passed for r in checks.numpy_layers_seed(torch.Generator()))


def test_maxpool_gradient_goes_to_the_window_maximum():
    pool = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=float)
    grad = npl.maxpool_grad_input(pool, np.array([[10.0, 20.0], [30.0, 40.0]]))
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[2, 0], expected[3, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(grad, expected)


def test_every_layer_matches_torch_forward_and_autograd_backward():
    rows = checks.numpy_layers(torch.Generator().manual_seed(11))
    layers = {r.parameter.split(":")[0] for r in rows}
    assert layers == {"dense", "relu", "sigmoid", "nll", "l2", "conv_matrix", "conv", "maxpool", "flatten"}
    assert {r.method for r in rows} == {"forward", "hand"}
    for row in rows:
        assert row.passed and row.max_rel <= FORMULA_RTOL, (row.parameter, row.max_rel)


def test_transposed_weight_in_dense_backward_is_a_failure():
    rng = np.random.default_rng(0)
    x, W, b, g = rng.normal(size=(5, 4)), rng.normal(size=(4, 4)), rng.normal(size=4), rng.normal(size=(5, 4))
    right = npl.dense_grad_input(x, g, W, b)
    wrong = g @ W  # W where W^T belongs: same shape, wrong numbers
    assert compare("t", "dense: input", "hand", right, g @ W.T).passed
    row = compare("t", "dense: input", "hand", wrong, g @ W.T)
    assert row.passed is False and row.max_rel > 1e-3
