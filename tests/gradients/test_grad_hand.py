"""Hand-derived gradients (torchlab.gradients.hand) against autograd, the seeds' printed numbers,
and proof that a wrong formula is reported as a failure."""

from __future__ import annotations

import pytest
import torch

from torchlab.gradients import checks, hand
from torchlab.gradients.result import FORMULA_RTOL

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_two_neuron_seed_numbers_to_printed_precision():
    p = {k: torch.tensor(v, dtype=F64) for k, v in hand.TWO_NEURON_POINT.items()}
    loss = hand.two_neuron_loss(**p)
    grads = hand.two_neuron_grad(**p)
    assert round(loss.item(), 4) == hand.TWO_NEURON_LOSS == 27.2154
    assert [round(grads[k].item(), 4) for k in hand.TWO_NEURON_WEIGHTS] == [-0.8892, -0.0563, 0.9424, 2.0494]
    rows = checks.two_neuron_seed(_gen())
    assert [r.parameter for r in rows] == ["loss", *hand.TWO_NEURON_WEIGHTS]
    assert all(r.passed for r in rows)


def test_surfaces_seed_numbers():
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731
    assert hand.f(t(1.0), t(0.0)).item() == 4.0
    assert [g.item() for g in hand.grad_f(t(1.0), t(0.0))] == [0.0, 0.0]
    assert hand.B(t(0.0), t(0.0)).item() == 3691.0
    assert hand.B(t(10.0), t(3.0)).item() == 4000.0
    assert [g.item() for g in hand.grad_B(t(0.0), t(0.0))] == [60.0, 6.0]


@pytest.mark.parametrize(
    "name, method, check", [(n, m, c) for n, pairs in checks.FORMULA_CHECKS.items() for m, c in pairs if m == "hand"]
)
def test_hand_formulas_match_autograd(name, method, check):
    rows = check(_gen(1))
    assert rows, name
    for row in rows:
        assert row.passed, (row.model, row.parameter, row.note)
        assert row.max_rel <= FORMULA_RTOL


def test_draws_are_fresh_for_each_seed():
    first, second = checks.patch_linear(_gen(1)), checks.patch_linear(_gen(2))
    assert first[0].note != second[0].note or first[0].max_abs != second[0].max_abs


def test_patch_gradient_without_two_over_n_fails():
    dropped = lambda X, w, y: X.T @ (X @ w - y)  # noqa: E731 (the 2/N forgotten)
    (row,) = checks.patch_linear(_gen(3), formula=dropped)
    assert row.passed is False and row.status == "FAIL"
    assert row.max_rel > 0.5


def test_digit_mlp_with_transposed_weight_gradient_fails():
    def transposed(*args):
        grads = hand.digit_mlp_grads(*args)
        return {**grads, "W2": grads["W2"].T}

    rows = {r.parameter: r for r in checks.digit_mlp(_gen(4), formula=transposed)}
    assert rows["output.weight"].passed is False
    assert "shape" in rows["output.weight"].note
    assert rows["hidden.weight"].passed  # the other rows still pass


def test_relu_net_without_relu_masks_fails():
    def no_masks(weights, biases, X, v):  # multiplies the weights as if every ReLU were active
        grads = hand.relu_net_grads(weights, biases, X, v)
        product = weights[0]
        for W in weights[1:]:
            product = W @ product
        return {**grads, "input": v[:, None] * product}

    rows = {r.parameter: r for r in checks.relu_net("landscape-net", _gen(5), formula=no_masks)}
    assert rows["input"].passed is False
    assert rows["hidden.weight"].passed
