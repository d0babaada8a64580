"""SymPy-derived gradients against autograd, and a clear message when SymPy is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from torchlab.gradients import checks, hand, runner, symbolic
from torchlab.gradients.result import FORMULA_RTOL

pytest.importorskip("sympy")

SYMBOLIC = [(n, c) for n, pairs in checks.FORMULA_CHECKS.items() for m, c in pairs if m == "symbolic"]


def test_every_small_net_has_a_symbolic_check():
    assert {n for n, _ in SYMBOLIC} == {"two-neuron", "patch-linear", "ring-net", "landscape-net", "f", "B"}


@pytest.mark.parametrize("name, check", SYMBOLIC)
def test_symbolic_gradients_match_autograd(name, check):
    rows = check(torch.Generator().manual_seed(21))
    assert rows
    for row in rows:
        assert row.method == "symbolic"
        assert row.passed and row.max_rel <= FORMULA_RTOL, (name, row.parameter, row.max_rel)


def test_two_neuron_symbolic_gives_the_seed_numbers():
    loss, gradient = symbolic.two_neuron()
    point = hand.TWO_NEURON_POINT.values()
    assert round(float(loss(*point)), 4) == 27.2154
    assert [round(float(g), 4) for g in gradient(*point)] == [-0.8892, -0.0563, 0.9424, 2.0494]


def test_relu_net_expression_is_the_landscape_net():
    import sympy as sp

    phi, weights, biases, inputs = symbolic.relu_net_expression((2, 3, 1))
    assert len(inputs) == 2 and len(weights) == 2 and len(weights[0]) == 3
    assert sp.diff(phi, biases[1][0]) == 1  # dPhi/db2 = 1
    seed = {w: v for row, vals in zip(weights[0], [[1, -1], [2, 0], [-1, 2]]) for w, v in zip(row, vals)}
    seed.update(zip(biases[0], [0, 1, -1]))
    seed.update(zip(weights[1][0], [1, -2, 1]))
    seed.update({biases[1][0]: 0, inputs[0]: 1, inputs[1]: -1})
    relu, _ = symbolic.relu_functions()
    value = phi.subs(seed).replace(relu, lambda z: sp.Max(0, z))
    assert value == -4  # the notebook's Phi(1, -1) = -4, evaluated symbolically


def test_symbolic_patch_gradient_is_two_over_n_form():
    X = np.c_[np.ones(6), np.arange(6.0), np.arange(6.0) % 2]
    w, I = np.array([0.5, -1.0, 2.0]), np.linspace(0, 1, 6)  # noqa: E741
    np.testing.assert_allclose(symbolic.patch_mse_grad(X, w, I), 2 / 6 * X.T @ (X @ w - I), rtol=1e-12)


CACHED = (
    symbolic.two_neuron,
    symbolic._surface_gradient,
    symbolic._relu_net_gradient,
    symbolic._patch_row_gradient,
    symbolic.relu_functions,
)


def test_missing_sympy_is_a_clear_skip(monkeypatch):
    for cached in CACHED:
        cached.cache_clear()
    monkeypatch.setitem(sys.modules, "sympy", None)  # `import sympy` now raises ImportError
    try:
        with pytest.raises(symbolic.SympyMissing, match="pip install sympy"):
            symbolic.require_sympy()
        rows = [r for r in runner.run_checks("f", seed=0) if r.method == "symbolic"]
        assert [(r.status, r.parameter) for r in rows] == [("skip", "all")]
        assert "sympy is not installed" in rows[0].note
        assert all(r.passed for r in runner.run_checks("f", seed=0) if r.method == "hand")
    finally:
        monkeypatch.undo()
        for cached in CACHED:
            cached.cache_clear()
