"""The ring notebook's nets, as plain modules (no training code).

ring-net       hand-set 2->4->3->1 ReLU net: in the L1 ring a <= |x1|+|x2| <= b?  (31 parameters)
landscape-net  2->n->1 ReLU net whose graph is a piecewise-planar "landscape"
ring-mlp       2->16->1 ReLU net trained to tell ring points from the rest  (65 parameters)
"""

from __future__ import annotations

import torch
from torch import nn

from torchlab.models import register_model

# The notebook's 2->3->1 landscape weights (section 6a); with them Phi(1, -1) = -4.
SEED_LANDSCAPE_W1 = [[1.0, -1.0], [2.0, 0.0], [-1.0, 2.0]]
SEED_LANDSCAPE_B1 = [0.0, 1.0, -1.0]
SEED_LANDSCAPE_W2 = [[1.0, -2.0, 1.0]]
SEED_LANDSCAPE_B2 = [0.0]


def _set_linear(layer: nn.Linear, weight: list, bias: list) -> None:
    """Copy hand-chosen numbers into a Linear layer (no gradient history)."""
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.tensor(bias, dtype=layer.bias.dtype))


@register_model(
    "ring-net", input_shape=(2,), description="hand-set 2->4->3->1 ReLU net for the L1 ring a<=|x1|+|x2|<=b (31 params)"
)
class RingNet(nn.Module):
    """Scores a point (x1, x2): score >= 0 exactly when a <= |x1| + |x2| <= b.

    layer1 makes [relu(x1), relu(-x1), relu(x2), relu(-x2)], whose sum is r = |x1| + |x2|;
    layer2 makes relu(a + b - 2r), relu(b - r), relu(r - b); the output is
    relu(b - r) - relu(r - b) - relu(a + b - 2r), which equals r - a below the middle of
    the ring, b - r above it, and is negative outside [a, b].
    """

    def __init__(self, a: float = 1.0, b: float = 2.0) -> None:
        super().__init__()
        if not 0.0 <= a < b:
            raise ValueError(f"the ring needs 0 <= a < b, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)
        self.layer1 = nn.Linear(2, 4)
        self.layer2 = nn.Linear(4, 3)
        self.output = nn.Linear(3, 1)
        _set_linear(self.layer1, [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [0.0] * 4)
        _set_linear(self.layer2, [[-2.0] * 4, [-1.0] * 4, [1.0] * 4], [self.a + self.b, self.b, -self.b])
        _set_linear(self.output, [[-1.0, 1.0, -1.0]], [0.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 2) -> score (N,)."""
        h1 = torch.relu(self.layer1(x))
        h2 = torch.relu(self.layer2(h1))
        return self.output(h2).squeeze(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The output score (N,); >= 0 inside the ring, 0 on its edges."""
        return self(x)

    def in_ring(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean (N,): does each point lie in the L1 ring (edges included)?"""
        return self(x) >= 0


@register_model(
    "landscape-net", input_shape=(2,), description="2->n->1 ReLU net; the notebook's n=3 weights or random ones"
)
class LandscapeNet(nn.Module):
    """Phi(x) = W2 relu(W1 x + b1) + b2 with n hidden units.

    weights="seed" loads the notebook's n = 3 matrices; weights="random" draws
    W1, W2 ~ N(0, 1) and b1, b2 ~ N(0, 0.2^2) from a generator seeded with `seed`.
    """

    def __init__(self, hidden: int = 3, weights: str = "seed", seed: int = 0) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if weights not in ("seed", "random"):
            raise ValueError(f"weights must be 'seed' or 'random', got {weights!r}")
        if weights == "seed" and hidden != 3:
            raise ValueError(f"the notebook's weights are for hidden=3, got hidden={hidden}; use weights='random'")
        self.hidden = nn.Linear(2, hidden)
        self.output = nn.Linear(hidden, 1)
        if weights == "seed":
            _set_linear(self.hidden, SEED_LANDSCAPE_W1, SEED_LANDSCAPE_B1)
            _set_linear(self.output, SEED_LANDSCAPE_W2, SEED_LANDSCAPE_B2)
        else:
            g = torch.Generator().manual_seed(seed)
            w1 = torch.randn(hidden, 2, generator=g)
            b1 = 0.2 * torch.randn(hidden, generator=g)
            w2 = torch.randn(1, hidden, generator=g)
            b2 = 0.2 * torch.randn(1, generator=g)
            _set_linear(self.hidden, w1.tolist(), b1.tolist())
            _set_linear(self.output, w2.tolist(), b2.tolist())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 2) -> Phi(x) (N,)."""
        return self.output(torch.relu(self.hidden(x))).squeeze(-1)


@register_model("ring-mlp", input_shape=(2,), description="2->16->1 ReLU net trained to find ring points (65 params)")
class RingClassifier(nn.Module):
    """One hidden ReLU layer; returns one logit per point (the sigmoid lives in the loss)."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.hidden = nn.Linear(2, hidden)
        self.output = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 2) -> logit (N,); sigmoid(logit) is the probability of 'in the ring'."""
        return self.output(torch.relu(self.hidden(x))).squeeze(-1)
