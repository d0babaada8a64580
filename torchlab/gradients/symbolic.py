"""Gradients derived by SymPy from each small net's expression, evaluated with NumPy.

Nothing here is differentiated by hand: each function writes the net (or loss) as a SymPy
expression in named symbols, lets `sympy.diff` derive every partial derivative, and turns
the results into NumPy functions with `sympy.lambdify`. ReLU is a SymPy function
`relu(z)` that declares its derivative, `step(z)` = 1 if z > 0 else 0 (the convention
autograd uses at z = 0); SymPy's chain rule does the rest. (`Max(0, z)` would work too but
makes SymPy compare nested symbolic terms at every step, which takes minutes for the ring net.)

SymPy is a development dependency (`pip install -e '.[dev]'`); it is imported only when a
derivation is first asked for, and `SympyMissing` says how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np


class SympyMissing(RuntimeError):
    """SymPy is not installed, so the symbolic checks cannot run."""


def require_sympy() -> Any:
    """The sympy module, or SympyMissing with the command that installs it."""
    try:
        import sympy
    except ImportError:
        raise SympyMissing(
            "sympy is not installed; the symbolic checks need it: pip install sympy (or pip install -e '.[dev]')"
        ) from None
    return sympy


@cache
def relu_functions() -> tuple[Any, Any]:
    """The SymPy functions (relu, step): d relu(z)/dz = step(z); step's own derivative is 0."""
    sp = require_sympy()
    function: Any = sp.Function  # SymPy's base class (sympy has no type information)

    class step(function):  # noqa: N801 (SymPy functions print by their class name)
        def fdiff(self, argindex: int = 1) -> Any:
            return sp.S.Zero

    class relu(function):  # noqa: N801
        def fdiff(self, argindex: int = 1) -> Any:
            return step(self.args[0])

    return relu, step


_NUMPY_RELU = {"relu": lambda z: np.maximum(z, 0.0), "step": lambda z: (np.asarray(z) > 0).astype(float)}


def _gradient(expr: Any, wrt: Sequence[Any], args: Sequence[Any]) -> Callable[..., list[Any]]:
    """A NumPy function of `args` returning [d expr / d w for w in wrt]."""
    sp = require_sympy()
    derivatives = [sp.diff(expr, w) for w in wrt]
    return sp.lambdify(list(args), derivatives, modules=[_NUMPY_RELU, "numpy"])


def _as_arrays(values: list[Any], n: int) -> list[np.ndarray]:
    """lambdify returns plain numbers for constant derivatives: broadcast them to (n,)."""
    return [np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in values]


# --- the two-neuron net of the practical (5.12) -----------------------------------------


@cache
def two_neuron() -> tuple[Callable[..., float], Callable[..., list[float]]]:
    """(loss, gradient) as functions of (x, y, w11_1, w12_1, w11_2, w21_2); the gradient
    lists dL/dw11_1, dL/dw12_1, dL/dw11_2, dL/dw21_2."""
    sp = require_sympy()
    x, y, w11_1, w12_1, w11_2, w21_2 = sp.symbols("x y w11_1 w12_1 w11_2 w21_2")

    def g(a: Any) -> Any:
        return 1 / (1 + sp.exp(-a))

    loss = (y - g(w11_2 * g(w11_1 * x) + w21_2 * g(w12_1 * x))) ** 2
    args = (x, y, w11_1, w12_1, w11_2, w21_2)
    return sp.lambdify(args, loss, modules="numpy"), _gradient(loss, args[2:], args)


# --- patch regression -------------------------------------------------------------------


@cache
def _patch_row_gradient() -> Callable[..., list[np.ndarray]]:
    sp = require_sympy()
    w0, w1, w2, x, y, intensity = sp.symbols("w0 w1 w2 x y I")
    squared_error = (w0 + w1 * x + w2 * y - intensity) ** 2
    return _gradient(squared_error, (w0, w1, w2), (w0, w1, w2, x, y, intensity))


def patch_mse_grad(X: np.ndarray, w: np.ndarray, I: np.ndarray) -> np.ndarray:  # noqa: E741
    """d/dw of mean over rows of (w0 + w1 x + w2 y - I)^2; X holds rows [1, x, y].

    SymPy differentiates one row's squared error; the mean over rows is taken numerically."""
    per_row = _as_arrays(_patch_row_gradient()(*w, X[:, 1], X[:, 2], I), len(X))
    return np.array([d.mean() for d in per_row])


# --- f and the mountain B (digits notebook, exercises 4-5) ------------------------------


@cache
def _surface_gradient(name: str) -> Callable[..., list[np.ndarray]]:
    sp = require_sympy()
    x, y = sp.symbols("x y")
    expr = 3 * (x - 1) ** 2 + y**2 + 4 if name == "f" else 4000 - 3 * (x - 10) ** 2 - (y - 3) ** 2
    return _gradient(expr, (x, y), (x, y))


def grad_f(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """[df/dx, df/dy] for f(x, y) = 3(x - 1)^2 + y^2 + 4."""
    return _as_arrays(_surface_gradient("f")(x, y), np.size(x))


def grad_B(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:  # noqa: N802
    """[dB/dx, dB/dy] for B(x, y) = 4000 - 3(x - 10)^2 - (y - 3)^2."""
    return _as_arrays(_surface_gradient("B")(x, y), np.size(x))


# --- ReLU nets: the ring net (2->4->3->1) and the landscape nets (2->n->1) ----------------


def relu_net_expression(sizes: Sequence[int]) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """Phi for a ReLU net with layer sizes e.g. (2, 4, 3, 1), in symbols.

    Returns (Phi, weight symbols as matrices, bias symbols as lists, input symbols); the
    weight of layer l from unit j to unit i is W{l}_{i}_{j}, its bias b{l}_{i}."""
    sp = require_sympy()
    relu, _ = relu_functions()
    if sizes[-1] != 1:
        raise ValueError(f"the symbolic ReLU net has one output, got sizes {tuple(sizes)}")
    inputs = list(sp.symbols(f"x1:{sizes[0] + 1}"))
    weights, biases, h = [], [], inputs
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        W = [[sp.Symbol(f"W{layer}_{i}_{j}") for j in range(n_in)] for i in range(n_out)]
        b = [sp.Symbol(f"b{layer}_{i}") for i in range(n_out)]
        z = [sum(W[i][j] * h[j] for j in range(n_in)) + b[i] for i in range(n_out)]
        h = z if layer == len(sizes) - 1 else [relu(zi) for zi in z]
        weights.append(W)
        biases.append(b)
    return h[0], weights, biases, inputs


@cache
def _relu_net_gradient(sizes: tuple[int, ...]) -> tuple[Callable[..., list[np.ndarray]], int]:
    phi, weights, biases, inputs = relu_net_expression(sizes)
    params = [s for W, b in zip(weights, biases) for s in [*(w for row in W for w in row), *b]]
    return _gradient(phi, params + inputs, params + inputs), len(params)


def relu_net_grads(
    weights: list[np.ndarray], biases: list[np.ndarray], X: np.ndarray, v: np.ndarray
) -> dict[str, object]:
    """Gradients of L = sum_n v_n Phi(x_n), from SymPy's derivatives of Phi.

    Same arguments and result layout as `hand.relu_net_grads`: weights[l] is (out, in),
    biases[l] is (out,), X is (N, d) and v is (N,)."""
    sizes = (weights[0].shape[1], *(W.shape[0] for W in weights))
    gradient, n_params = _relu_net_gradient(sizes)
    values = [float(p) for W, b in zip(weights, biases) for p in [*np.ravel(W), *np.ravel(b)]]
    per_sample = _as_arrays(gradient(*values, *X.T), len(X))  # each dPhi/dtheta, shape (N,)
    totals = iter([float(v @ d) for d in per_sample[:n_params]])
    grad_W, grad_b = [], []
    for W, b in zip(weights, biases):
        grad_W.append(np.array([next(totals) for _ in range(W.size)]).reshape(W.shape))
        grad_b.append(np.array([next(totals) for _ in range(b.size)]))
    grad_input = np.stack(per_sample[n_params:], axis=1) * v[:, None]
    return {"weights": grad_W, "biases": grad_b, "input": grad_input}
