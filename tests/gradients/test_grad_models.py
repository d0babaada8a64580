"""Every registered model: float64 finite differences and torch.autograd.gradcheck against autograd;
and a model with a deliberately wrong backward is caught."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchlab.gradients import registry, runner
from torchlab.models import _MODELS, model_names, register_model

BUDGET = 5e7  # a fortieth of the CLI's default work per model, to keep the suite fast


@pytest.mark.parametrize("name", model_names())
def test_finite_differences_match_autograd(name):
    rows = registry.finite_difference_rows(name, seed=123, budget=BUDGET)
    assert rows and rows[-1].parameter == "input"
    for row in rows:
        assert row.passed, (name, row.parameter, row.max_rel, row.note)
        assert row.max_rel <= registry.FD_RTOL or row.max_abs <= 1e-6


@pytest.mark.parametrize("name", [n for n in model_names() if n.startswith(("ring", "landscape", "patch", "digit"))])
def test_torch_gradcheck_passes_for_small_models(name):
    row = registry.gradcheck_row(name, seed=7, budget=BUDGET)
    assert row is not None and row.passed, row


class _WrongGradient(torch.autograd.Function):
    """y = 3x, but the backward claims dy/dx = 2: a bug autograd cannot see."""

    @staticmethod
    def forward(ctx, x):
        return 3 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class _BrokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, x):
        return _WrongGradient.apply(self.layer(x))


@pytest.fixture
def broken_model():
    register_model("test-broken-grad", input_shape=(4,))(_BrokenModel)
    yield "test-broken-grad"
    del _MODELS["test-broken-grad"]


def test_a_wrong_backward_fails_every_numeric_check(broken_model):
    rows = runner.run_checks(broken_model, seed=5)
    assert {r.method for r in rows} == {"gradcheck", "finite-difference"}
    assert all(r.status == "FAIL" for r in rows), [(r.parameter, r.method, r.status) for r in rows]
    fd = [r for r in rows if r.method == "finite-difference"]
    assert all(abs(r.max_rel - 0.5) < 1e-6 for r in fd)  # autograd says 2, the truth is 3: |2 - 3| / 2


def test_models_with_formulas_get_hand_rows_and_unregistered_ones_are_skipped(monkeypatch):
    rows = runner.run_checks("ring-net", seed=3)
    assert {r.method for r in rows} == {"gradcheck", "finite-difference", "hand", "symbolic"}
    assert all(r.passed for r in rows)
    model_names()  # the registry is filled on first use
    monkeypatch.delitem(_MODELS, "ring-net")  # as if the model had no registration
    skipped = runner.run_checks("ring-net", seed=3)
    assert [(r.method, r.status) for r in skipped] == [("hand", "skip"), ("symbolic", "skip")]
    assert "not registered" in skipped[0].note
