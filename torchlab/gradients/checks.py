"""Formula checks: hand-derived and SymPy gradients against autograd, and the seeds' numbers.

Every check draws fresh random inputs from the generator it is given, computes the
gradient twice (autograd in float64, and a formula) and returns one `CheckResult` per
parameter. `FORMULA_CHECKS` lists them by model name; the names in `EXAMPLES` are seed
examples that are not registered models (the two-neuron net, f, B, the NumPy layers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torchlab.gradients import hand, symbolic
from torchlab.gradients import numpy_layers as npl
from torchlab.gradients.result import FORWARD_RTOL, CheckResult, as_array, compare

if TYPE_CHECKING:
    from torchlab.models.patch import LinearPatchRegressor

Check = Callable[[torch.Generator], list[CheckResult]]
F64 = torch.float64
#: Printed seed numbers are compared to half a unit of their last printed digit.
PRINTED_4_DECIMALS = 0.5e-4


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen, dtype=F64)


def _normal(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=F64)


def _build(name: str, gen: torch.Generator) -> nn.Module:
    """The registered model in float64 eval mode; its random initialization comes from `gen`."""
    from torchlab.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        return build_model(name).double().eval()


def _linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The model's Linear layers in definition order, with their attribute names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


# --- digit-mlp: the notebook's backward pass --------------------------------------------


def digit_mlp(
    gen: torch.Generator, formula: Callable = hand.digit_mlp_grads, method: str = "hand"
) -> list[CheckResult]:
    """Cross-entropy gradients of the registered digit MLP: autograd vs the notebook's backprop."""
    model = _build("digit-mlp", gen)
    (n1, hidden), (n2, output) = _linears(model)
    m = 16
    X = torch.rand((m, hidden.in_features), generator=gen, dtype=F64)  # pixels / 16 lie in [0, 1]
    labels = torch.randint(0, output.out_features, (m,), generator=gen)
    F.cross_entropy(model(X), labels).backward()
    Y = F.one_hot(labels, output.out_features).to(F64)
    with torch.no_grad():  # the notebook's convention: samples in columns, biases (n, 1)
        grads = formula(hidden.weight, hidden.bias[:, None], output.weight, output.bias[:, None], X.T, Y.T)
    pairs = [
        (f"{n1}.weight", "W1", hidden.weight),
        (f"{n1}.bias", "b1", hidden.bias),
        (f"{n2}.weight", "W2", output.weight),
        (f"{n2}.bias", "b2", output.bias),
    ]
    # the notebook's biases are columns (n, 1); torch's are vectors (n,)
    return [
        compare("digit-mlp", label, method, as_array(grads[key]).reshape(-1) if key[0] == "b" else grads[key], p.grad)
        for label, key, p in pairs
    ]


# --- patch-linear: (2/N) X^T (X w - I) ----------------------------------------------------


def _random_patch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [1, x, y] of an H x W patch (random size) and a noisy brightness ramp I."""
    h, w = (int(v) for v in torch.randint(4, 17, (2,), generator=gen))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
    X = torch.stack([torch.ones(h * w, dtype=F64), xs.reshape(-1), ys.reshape(-1)], dim=1)
    a, b, c = (float(v) for v in _uniform(gen, (3,), -2.0, 2.0))
    I = 80 + a * 20 + b * X[:, 1] + c * X[:, 2] + 2 * _normal(gen, h * w)  # noqa: E741
    return X, I


def patch_linear(
    gen: torch.Generator, formula: Callable = hand.patch_mse_grad, method: str = "hand"
) -> list[CheckResult]:
    """MSE gradient of the registered patch regressor at random weights: autograd vs `formula`."""
    model = cast("LinearPatchRegressor", _build("patch-linear", gen))
    X, I = _random_patch(gen)  # noqa: E741
    with torch.no_grad():
        model.weight.copy_(_normal(gen, 3))
    F.mse_loss(model(X), I).backward()
    w = model.weight.detach()
    value = formula(X, w, I) if method == "hand" else formula(*(as_array(t) for t in (X, w, I)))
    return [compare("patch-linear", "weight", method, value, model.weight.grad, note=f"{len(X)} pixels")]


def patch_linear_symbolic(gen: torch.Generator) -> list[CheckResult]:
    return patch_linear(gen, symbolic.patch_mse_grad, "symbolic")


# --- ReLU nets: ring-net and landscape-net ---------------------------------------------


def relu_net(
    name: str, gen: torch.Generator, formula: Callable = hand.relu_net_grads, method: str = "hand"
) -> list[CheckResult]:
    """Gradients of L = sum_n v_n Phi(x_n) for a registered ReLU net, at random points x_n
    in [-3, 3]^2 and random weights v_n: autograd vs `formula` (hand or SymPy)."""
    model = _build(name, gen)
    layers = _linears(model)
    X = _uniform(gen, (32, layers[0][1].in_features), -3.0, 3.0).requires_grad_()
    v = _normal(gen, 32)
    (model(X).reshape(-1) * v).sum().backward()
    weights = [m.weight.detach() for _, m in layers]
    biases = [m.bias.detach() for _, m in layers]
    if method == "symbolic":
        grads = formula([as_array(w) for w in weights], [as_array(b) for b in biases], as_array(X), as_array(v))
    else:
        grads = formula(weights, biases, X.detach(), v)
    rows = []
    for (layer, m), gw, gb in zip(layers, grads["weights"], grads["biases"]):
        rows.append(compare(name, f"{layer}.weight", method, gw, m.weight.grad))
        rows.append(compare(name, f"{layer}.bias", method, gb, m.bias.grad))
    rows.append(compare(name, "input", method, grads["input"], X.grad, note="32 random points"))
    return rows


def landscape_seed_value(gen: torch.Generator) -> list[CheckResult]:
    """The notebook's check: with its n = 3 weights, Phi(1, -1) = -4."""
    model = _build("landscape-net", gen)
    with torch.no_grad():
        value = model(torch.tensor([[1.0, -1.0]], dtype=F64)).reshape(())
    return [compare("landscape-net", "Phi(1, -1) = -4", "seed", value, -4.0, rtol=0.0, atol=1e-12)]


# --- the two-neuron net of the practical ------------------------------------------------


def two_neuron(
    gen: torch.Generator, formula: Callable = hand.two_neuron_grad, method: str = "hand"
) -> list[CheckResult]:
    """dL/dw at 8 random points (x, y, weights): autograd vs the practical's formulas or SymPy."""
    x = _uniform(gen, (8,), -3.0, 3.0)
    y = _uniform(gen, (8,), -5.0, 5.0)
    w = {k: (2 * _normal(gen, 8)).requires_grad_() for k in hand.TWO_NEURON_WEIGHTS}
    hand.two_neuron_loss(x, y, *w.values()).sum().backward()  # the points are independent
    if method == "symbolic":
        values = dict(zip(hand.TWO_NEURON_WEIGHTS, formula(*(as_array(t) for t in (x, y, *w.values())))))
    else:
        with torch.no_grad():
            values = formula(x, y, *w.values())
    return [
        compare("two-neuron", k, method, values[k], w[k].grad, note="8 random points") for k in hand.TWO_NEURON_WEIGHTS
    ]


def two_neuron_symbolic(gen: torch.Generator) -> list[CheckResult]:
    _, gradient = symbolic.two_neuron()
    return two_neuron(gen, gradient, "symbolic")


def two_neuron_seed(gen: torch.Generator) -> list[CheckResult]:
    """The practical's printed loss 27.2154 and gradient (-0.8892, -0.0563, 0.9424, 2.0494),
    recomputed by autograd in float64 at its point and compared to 4 decimals."""
    p = hand.TWO_NEURON_POINT
    w = {k: torch.tensor(p[k], dtype=F64, requires_grad=True) for k in hand.TWO_NEURON_WEIGHTS}
    loss = hand.two_neuron_loss(torch.tensor(p["x"], dtype=F64), torch.tensor(p["y"], dtype=F64), *w.values())
    loss.backward()
    rows = [compare("two-neuron", "loss", "seed", loss, hand.TWO_NEURON_LOSS, rtol=0.0, atol=PRINTED_4_DECIMALS)]
    rows += [
        compare("two-neuron", k, "seed", w[k].grad, hand.TWO_NEURON_GRAD[k], rtol=0.0, atol=PRINTED_4_DECIMALS)
        for k in hand.TWO_NEURON_WEIGHTS
    ]
    return rows


# --- f and the mountain B -----------------------------------------------------------------


def surface(name: str, gen: torch.Generator, method: str = "hand") -> list[CheckResult]:
    """(d/dx, d/dy) of f or B at 16 random points in [-20, 20]^2: autograd vs the formula."""
    fn, hand_grad, sym_grad = {
        "f": (hand.f, hand.grad_f, symbolic.grad_f),
        "B": (hand.B, hand.grad_B, symbolic.grad_B),
    }[name]
    x = _uniform(gen, (16,), -20.0, 20.0).requires_grad_()
    y = _uniform(gen, (16,), -20.0, 20.0).requires_grad_()
    fn(x, y).sum().backward()
    gx: np.ndarray | torch.Tensor
    gy: np.ndarray | torch.Tensor
    if method == "symbolic":
        gx, gy = sym_grad(as_array(x), as_array(y))
    else:
        gx, gy = hand_grad(x.detach(), y.detach())
    return [
        compare(name, "x", method, gx, x.grad, note="16 random points"),
        compare(name, "y", method, gy, y.grad, note="16 random points"),
    ]


def surface_seed(name: str, gen: torch.Generator) -> list[CheckResult]:
    """f's minimum f(1, 0) = 4 with zero gradient; B(0, 0) = 3691 and the summit B(10, 3) = 4000."""

    def at(fn: Callable, x: float, y: float) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        px, py = (torch.tensor(v, dtype=F64, requires_grad=True) for v in (x, y))
        value = fn(px, py)
        return value, torch.autograd.grad(value, (px, py))

    if name == "f":
        value, grad = at(hand.f, 1.0, 0.0)
        return [
            compare("f", "f(1, 0) = 4", "seed", value, 4.0, rtol=0.0, atol=1e-12),
            compare("f", "grad f(1, 0) = 0", "seed", torch.stack(grad), [0.0, 0.0], rtol=0.0, atol=1e-12),
        ]
    start, _ = at(hand.B, 0.0, 0.0)
    summit, grad = at(hand.B, 10.0, 3.0)
    return [
        compare("B", "B(0, 0) = 3691", "seed", start, 3691.0, rtol=0.0, atol=1e-9),
        compare("B", "B(10, 3) = 4000", "seed", summit, 4000.0, rtol=0.0, atol=1e-9),
        compare("B", "grad B(10, 3) = 0", "seed", torch.stack(grad), [0.0, 0.0], rtol=0.0, atol=1e-12),
    ]


# --- the NumPy reference layers -----------------------------------------------------------


def _autograd(
    forward: Callable, inputs: list[torch.Tensor], grad_output: torch.Tensor | None
) -> tuple[torch.Tensor, list]:
    """Run a torch layer on leaf copies of `inputs`; return its output and the input gradients."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = forward(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_output)
    return out.detach(), list(grads)


def numpy_layers(gen: torch.Generator) -> list[CheckResult]:
    """Each NumPy layer's forward against the torch layer, and its backward against autograd,
    for random inputs and a random gradient arriving from above."""
    rows: list[CheckResult] = []

    def check(
        layer: str,
        np_out: np.ndarray | float,
        torch_out: torch.Tensor,
        pairs: list[tuple[str, np.ndarray, torch.Tensor]],
    ) -> None:
        rows.append(compare("numpy-layers", f"{layer}: output", "forward", np_out, torch_out, rtol=FORWARD_RTOL))
        rows.extend(compare("numpy-layers", f"{layer}: {what}", "hand", mine, ref) for what, mine, ref in pairs)

    x, W, b, g = _normal(gen, 5, 4), _normal(gen, 4, 3), _normal(gen, 3), _normal(gen, 5, 3)
    a = [as_array(t) for t in (x, W, b, g)]
    out, (gx, gW, gb) = _autograd(lambda x, W, b: x @ W + b, [x, W, b], g)
    check(
        "dense",
        npl.dense_forward(*a[:3]),
        out,
        [
            ("input", npl.dense_grad_input(a[0], a[3], a[1], a[2]), gx),
            ("W", npl.dense_grad_W(a[0], a[3], a[1], a[2]), gW),
            ("b", npl.dense_grad_b(a[0], a[3], a[1], a[2]), gb),
        ],
    )

    for layer, np_fwd, np_grad, torch_fwd in (
        ("relu", npl.relu_forward, npl.relu_grad_input, torch.relu),
        ("sigmoid", npl.sigmoid_forward, npl.sigmoid_grad_input, torch.sigmoid),
    ):
        x, g = _normal(gen, 6, 5), _normal(gen, 6, 5)
        out, (gx,) = _autograd(torch_fwd, [x], g)
        check(layer, np_fwd(as_array(x)), out, [("input", np_grad(as_array(x), as_array(g)), gx)])

    p = torch.sigmoid(_normal(gen, 8, 1))
    y = torch.randint(0, 2, (8, 1), generator=gen).to(F64)
    out, (gp,) = _autograd(lambda p: F.binary_cross_entropy(p, y), [p], None)
    check(
        "nll",
        npl.nll_forward(as_array(p), as_array(y)),
        out,
        [("pred", npl.nll_grad_input(as_array(p), as_array(y)), gp)],
    )

    ws = [_normal(gen, 3, 4), _normal(gen, 5)]
    out, grads = _autograd(lambda *w: 0.5 * 1e-2 * sum((t**2).sum() for t in w), ws, None)
    check(
        "l2",
        npl.l2_regularizer(1e-2, [as_array(w) for w in ws]),
        out,
        [
            (f"weights[{i}]", mine, ref)
            for i, (mine, ref) in enumerate(zip(npl.l2_grad(1e-2, [as_array(w) for w in ws]), grads))
        ],
    )

    image, kernel = _normal(gen, 7, 9), _normal(gen, 3, 5)
    reference = F.conv2d(image[None, None], kernel[None, None], padding=(1, 2))[0, 0]
    rows.append(
        compare(
            "numpy-layers",
            "conv_matrix: output",
            "forward",
            npl.conv_matrix(as_array(image), as_array(kernel)),
            reference,
            rtol=FORWARD_RTOL,
            note="3x5 kernel",
        )
    )

    x, W, b, g = _normal(gen, 2, 3, 6, 6), _normal(gen, 4, 3, 3, 3), _normal(gen, 4), _normal(gen, 2, 4, 6, 6)
    a = [as_array(t) for t in (x, W, b, g)]
    out, (gx, gW, gb) = _autograd(lambda x, W, b: F.conv2d(x, W, b, padding=1), [x, W, b], g)
    check(
        "conv",
        npl.conv_forward(*a[:3]),
        out,
        [
            ("input", npl.conv_grad_input(a[0], a[3], a[1], a[2]), gx),
            ("W", npl.conv_grad_W(a[0], a[3], a[1], a[2]), gW),
            ("b", npl.conv_grad_b(a[0], a[3], a[1], a[2]), gb),
        ],
    )

    x, g = _normal(gen, 2, 3, 6, 8), _normal(gen, 2, 3, 3, 4)
    out, (gx,) = _autograd(lambda x: F.max_pool2d(x, 2), [x], g)
    check(
        "maxpool",
        npl.maxpool_forward(as_array(x)),
        out,
        [("input", npl.maxpool_grad_input(as_array(x), as_array(g)), gx)],
    )

    x, g = _normal(gen, 2, 3, 4, 4), _normal(gen, 2, 48)
    out, (gx,) = _autograd(lambda x: torch.flatten(x, 1), [x], g)
    check(
        "flatten",
        npl.flatten_forward(as_array(x)),
        out,
        [("input", npl.flatten_grad_input(as_array(x), as_array(g)), gx)],
    )
    return rows


def numpy_layers_seed(gen: torch.Generator) -> list[CheckResult]:
    """The assignment's test vectors."""
    kernel = np.eye(3)
    kernel[-1, -1] = 2
    pool_input = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=float)
    cases = [
        (
            "conv_matrix example",
            npl.conv_matrix(np.array([[1, 2, 3], [2, 3, 4], [3, 4, 5]]), kernel),
            [[7, 10, 3], [10, 14, 6], [3, 6, 8]],
        ),
        (
            "box_blur example",
            npl.box_blur(np.array([[9, 0, 9], [0, 0, 0], [9, 0, 9]]), 3),
            [[1, 2, 1], [2, 4, 2], [1, 2, 1]],
        ),
        ("maxpool example", npl.maxpool_forward(pool_input), [[6, 8], [3, 4]]),
        ("l2 example = 108.25", npl.l2_regularizer(2, [np.array([5, 3, 7, 5, 0.5])]), 108.25),
        ("flatten (100,3,16,16)", npl.flatten_forward(np.zeros((100, 3, 16, 16))).shape, (100, 768)),
    ]
    return [
        compare("numpy-layers", label, "seed", mine, expected, rtol=0.0, atol=1e-12) for label, mine, expected in cases
    ]


# --- the table of checks by name ----------------------------------------------------------

#: For each name, the (method, check) pairs that run on top of the registry-wide
#: finite-difference checks (registered models) or instead of them (seed examples).
FORMULA_CHECKS: dict[str, list[tuple[str, Check]]] = {
    "digit-mlp": [("hand", digit_mlp)],
    "patch-linear": [("hand", patch_linear), ("symbolic", patch_linear_symbolic)],
    "ring-net": [
        ("hand", lambda gen: relu_net("ring-net", gen)),
        ("symbolic", lambda gen: relu_net("ring-net", gen, symbolic.relu_net_grads, "symbolic")),
    ],
    "landscape-net": [
        ("hand", lambda gen: relu_net("landscape-net", gen)),
        ("symbolic", lambda gen: relu_net("landscape-net", gen, symbolic.relu_net_grads, "symbolic")),
        ("seed", landscape_seed_value),
    ],
    "two-neuron": [("hand", two_neuron), ("symbolic", two_neuron_symbolic), ("seed", two_neuron_seed)],
    "f": [
        ("hand", lambda gen: surface("f", gen)),
        ("symbolic", lambda gen: surface("f", gen, "symbolic")),
        ("seed", lambda gen: surface_seed("f", gen)),
    ],
    "B": [
        ("hand", lambda gen: surface("B", gen)),
        ("symbolic", lambda gen: surface("B", gen, "symbolic")),
        ("seed", lambda gen: surface_seed("B", gen)),
    ],
    "numpy-layers": [("hand", numpy_layers), ("seed", numpy_layers_seed)],
}

#: Seed examples that are not registered models.
EXAMPLES = ("two-neuron", "f", "B", "numpy-layers")
