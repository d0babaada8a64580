"""Autograd against finite differences for every registered model, in float64.

For a model f, random inputs x (batch of `ModelSpec.input_shape`) and a random tensor v
the shape of f(x), the scalar L = sum(v * f(x)) has gradient v^T J with respect to every
parameter and the input. Two checks compare autograd's gradient with numbers that do not
use autograd at all:

  finite-difference  per parameter tensor: central differences (L(p + h u) - L(p - h u)) / 2h
                     against autograd's grad . u, for u every single entry of a small tensor,
                     or random unit directions for a big one (as many as fit in about
                     `budget` multiply-adds); a model too slow for a row per tensor gets one row
                     for all its parameters together;
  gradcheck          torch.autograd.gradcheck of (input, parameters) -> output: the whole
                     Jacobian for small models, gradcheck's fast mode for bigger ones, and
                     no row for models too slow for it.

ReLU and max-pool make models piecewise linear: a probe whose +h and -h steps cross a
kink has a meaningless finite difference. It shows up as one-sided differences that
disagree; the probe is redrawn or skipped, and counted in the note. A gradcheck that fails is redrawn
at fresh points, at most `GRADCHECK_DRAWS` times in all; a wrong gradient fails every draw.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from torch import nn

from torchlab.gradients.result import CheckResult, compare, failed, skipped

F64 = torch.float64
STEP = 1e-6  # finite-difference step h
FD_RTOL = 1e-6  # finite differences must agree with autograd to this, relative to the gradient's size
FD_BATCH = 2
GRADCHECK_BATCH = 2
GRADCHECK_FULL_ENTRIES = 500
GRADCHECK_DRAWS = 3
BUDGET = 2e9  # multiply-adds per model and check: a few seconds at most on a laptop core
EPS = float(np.finfo(np.float64).eps)


def build_float64(name: str, seed: int) -> nn.Module:
    """The registered model, initialized from `seed`, in float64 and eval mode."""
    from torchlab.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name).double().eval()


def _random_input(name: str, batch: int, gen: torch.Generator) -> torch.Tensor | None:
    from torchlab.models import get_model_spec

    shape = get_model_spec(name).input_shape
    return None if shape is None else torch.randn((batch, *shape), generator=gen, dtype=F64)


Probe = list[torch.Tensor]  # one direction: a tensor per checked tensor, same shapes


def _probe_difference(loss, tensors: list[torch.Tensor], probe: Probe, base: float) -> tuple[float, float]:
    """(central difference along `probe`, |forward - backward one-sided difference|)."""
    originals = [t.detach().clone() for t in tensors]
    with torch.no_grad():
        values = []
        for sign in (1.0, -1.0):
            for t, original, u in zip(tensors, originals, probe):
                t.copy_(original + sign * STEP * u)
            values.append(float(loss()))
        for t, original in zip(tensors, originals):
            t.copy_(original)
    up, down = values
    return (up - down) / (2 * STEP), abs((up - base) - (base - down)) / STEP


def _probes(tensors: list[torch.Tensor], count: int, gen: torch.Generator) -> tuple[list[Probe], str]:
    """Every single entry when there are at most `count`, else `count` random unit directions."""
    sizes = [t.numel() for t in tensors]
    total = sum(sizes)
    if total <= count:
        probes = []
        for k, n in enumerate(sizes):
            for i in range(n):
                probe = [torch.zeros_like(t) for t in tensors]
                probe[k].view(-1)[i] = 1.0
                probes.append(probe)
        return probes, f"all {total:,} entries"
    probes = []
    for _ in range(count):
        u = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in tensors]
        norm = torch.sqrt(cast(torch.Tensor, sum((v**2).sum() for v in u)))  # u is never empty: a tensor
        probes.append([v / norm for v in u])
    return probes, f"{count} random direction{'s' if count > 1 else ''} over {total:,} entries"


def _check_group(
    name: str,
    label: str,
    loss,
    tensors: list[torch.Tensor],
    grads: list[torch.Tensor],
    count: int,
    gen: torch.Generator,
) -> CheckResult:
    """Autograd's directional derivatives grad . u against central differences, for the probes u.

    A probe whose one-sided differences disagree crossed a kink: a random direction is redrawn
    (at most twice), a single entry is skipped."""
    with torch.no_grad():
        base = float(loss())
    noise = 100 * EPS * max(abs(base), 1.0) / STEP  # rounding noise of one difference
    probes, note = _probes(tensors, count, gen)
    random_directions = not note.startswith("all")
    fd, ad, kinks = [], [], 0
    for probe in probes:
        for attempt in range(3 if random_directions else 1):
            if attempt:
                probe = _probes(tensors, 1, gen)[0][0]
            central, gap = _probe_difference(loss, tensors, probe, base)
            if gap <= FD_RTOL * abs(central) + noise:
                fd.append(central)
                ad.append(float(sum((g * u).sum() for g, u in zip(grads, probe))))
                break
            kinks += 1
    if kinks:
        note += f", {kinks} on a kink skipped"
    if not fd:
        return CheckResult(name, label, "finite-difference", passed=False, note=note + ": nothing left to compare")
    scale = max(abs(v) for v in fd)
    return compare(name, label, "finite-difference", fd, ad, rtol=FD_RTOL, atol=noise + FD_RTOL * scale, note=note)


def finite_difference_rows(name: str, seed: int, budget: float = BUDGET, max_probes: int = 64) -> list[CheckResult]:
    """Autograd vs central differences: a row per parameter tensor and one for the input,
    or, for a model too slow for that within `budget`, one row for all parameters together."""
    gen = torch.Generator().manual_seed(seed)
    model = build_float64(name, seed)
    x = _random_input(name, FD_BATCH, gen)
    if x is None:
        return [skipped(name, "all", "finite-difference", "the model registers no input_shape")]
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
    tensors["input"] = x.requires_grad_()
    out = model(x)
    if not isinstance(out, torch.Tensor):
        return [failed(name, "all", "finite-difference", TypeError(f"output is {type(out).__name__}, not a tensor"))]
    v = torch.randn(out.shape, generator=gen, dtype=F64)
    grads = dict(zip(tensors, torch.autograd.grad((out * v).sum(), list(tensors.values()), allow_unused=True)))
    grads = {k: torch.zeros_like(tensors[k]) if g is None else g.detach() for k, g in grads.items()}
    x.requires_grad_(False)

    def loss() -> torch.Tensor:
        return (model(x) * v).sum()

    affordable = budget / (2 * forward_cost(model, x))  # central differences that fit in the budget
    if affordable >= len(tensors):
        groups = {label: [label] for label in tensors}
    else:
        params = [k for k in tensors if k != "input"]
        groups = {f"all {len(params)} parameter tensors": params, "input": ["input"]}
    count = int(np.clip(affordable // len(groups), 1, max_probes))
    with torch.no_grad():
        return [
            _check_group(name, label, loss, [tensors[k].data for k in keys], [grads[k] for k in keys], count, gen)
            for label, keys in groups.items()
        ]


def forward_cost(model: nn.Module, x: torch.Tensor) -> float:
    """Work of one forward pass in multiply-adds, estimated from each leaf module's output:
    a Linear or Conv output entry costs its number of inputs, any other entry 1, and every
    module call a flat 1e5 (Python overhead). A stand-in for time that does not depend on how
    busy the machine is, so that a seed always repeats the same probes."""
    total = [0.0]

    def count(module: nn.Module, inputs: tuple, output: object) -> None:
        per_entry = 1
        if isinstance(module, nn.Linear):
            per_entry = module.in_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            per_entry = module.in_channels // module.groups * int(np.prod(module.kernel_size))
        size = output.numel() if isinstance(output, torch.Tensor) else 0
        total[0] += 1e5 + size * per_entry

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return max(total[0], 1e5)


def gradcheck_row(name: str, seed: int, budget: float = BUDGET) -> CheckResult | None:
    """torch.autograd.gradcheck of (input, parameters) -> output, in float64: the full
    Jacobian for models with at most `GRADCHECK_FULL_ENTRIES` entries, else gradcheck's fast
    mode (random projections of the Jacobian, one per tensor) when that fits in about
    `budget` multiply-adds. None for a model too slow for either (the finite-difference rows
    still check it)."""
    from torch.func import functional_call

    gen = torch.Generator().manual_seed(seed)
    model = build_float64(name, seed)
    params = dict(model.named_parameters())
    x = _random_input(name, GRADCHECK_BATCH, gen)
    if x is None:
        return skipped(name, "all", "gradcheck", "the model registers no input_shape")
    entries = x.numel() + sum(p.numel() for p in params.values())
    fast = entries > GRADCHECK_FULL_ENTRIES
    if fast and 8 * (len(params) + 1) * forward_cost(model, x) > budget:
        return None

    def fn(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return functional_call(model, dict(zip(params, values)), (x,))

    what = (
        f"fast mode, {len(params) + 1} tensors, {entries:,} entries" if fast else f"full Jacobian, {entries:,} columns"
    )
    for draw in range(1, GRADCHECK_DRAWS + 1):
        inputs = (x.requires_grad_(), *(p.detach().clone().requires_grad_() for p in params.values()))
        if torch.autograd.gradcheck(fn, inputs, eps=STEP, atol=1e-7, rtol=1e-5, fast_mode=fast, raise_exception=False):
            return CheckResult(name, "all", "gradcheck", passed=True, note=f"{what} (draw {draw})")
        x = cast(torch.Tensor, _random_input(name, GRADCHECK_BATCH, gen))  # not None: the first draw was not
    return CheckResult(
        name,
        "all",
        "gradcheck",
        passed=False,
        note=f"torch.autograd.gradcheck ({what}) failed at {GRADCHECK_DRAWS} random points",
    )
