"""Gradients derived by hand, written the way the course material writes them.

Every function here computes a gradient with plain tensor arithmetic: no autograd. The
checks in `checks.py` compare each one with what `.backward()` computes.

Sources (in /work/shared/seeds/):
  two-neuron net     pytorch-mlp-cnn-keypoints-practical.md, sections 5.11-5.13
  patch regression   patch-regression-numpy.md
  f and B            digits-mlp-ring-net-notebook.md, exercises 4-5
  digit MLP          the same notebook, exercise 8 (backward pass of the training loop)
  ReLU nets          the same notebook, exercises 6 and 9 (landscape and ring nets)
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

# ---------------------------------------------------------------------------------------
# The two-neuron net (practical 5.12): x -> z1 = g(w11_1 x), z2 = g(w12_1 x)
#                                      -> yhat = g(w11_2 z1 + w21_2 z2),  L = (y - yhat)^2
# ---------------------------------------------------------------------------------------

#: The practical's working point and the numbers it prints (4 decimals).
TWO_NEURON_POINT = {"x": -1.7, "y": -4.5, "w11_1": 0.13, "w12_1": -2.0, "w11_2": 1.0, "w21_2": 0.5}
TWO_NEURON_LOSS = 27.2154
TWO_NEURON_GRAD = {"w11_1": -0.8892, "w12_1": -0.0563, "w11_2": 0.9424, "w21_2": 2.0494}
TWO_NEURON_WEIGHTS = ("w11_1", "w12_1", "w11_2", "w21_2")


def g(a: Tensor) -> Tensor:
    """The logistic sigmoid g(a) = 1 / (1 + e^-a)."""
    return 1.0 / (1.0 + torch.exp(-a))


def gp(a: Tensor) -> Tensor:
    """Its derivative g'(a) = e^-a / (1 + e^-a)^2."""
    return torch.exp(-a) / (1.0 + torch.exp(-a)) ** 2


def two_neuron_loss(x: Tensor, y: Tensor, w11_1: Tensor, w12_1: Tensor, w11_2: Tensor, w21_2: Tensor) -> Tensor:
    """The forward pass: L = (y - yhat)^2."""
    z1 = g(w11_1 * x)
    z2 = g(w12_1 * x)
    yhat = g(w11_2 * z1 + w21_2 * z2)
    return (y - yhat) ** 2


def two_neuron_grad(
    x: Tensor, y: Tensor, w11_1: Tensor, w12_1: Tensor, w11_2: Tensor, w21_2: Tensor
) -> dict[str, Tensor]:
    """dL/dw for the four weights, by the chain rule.

    With a1_1 = w11_1 x, a2_1 = w12_1 x and a1_2 = w11_2 z1 + w21_2 z2, every path starts
    with dL/dyhat * dyhat/da1_2 = -2 (y - yhat) g'(a1_2); the output weights then pick up
    their input z1 or z2, the hidden weights the output weight, g'(a) and x.
    """
    a1_1, a2_1 = w11_1 * x, w12_1 * x
    z1, z2 = g(a1_1), g(a2_1)
    a1_2 = w11_2 * z1 + w21_2 * z2
    yhat = g(a1_2)
    delta = -2 * (y - yhat) * gp(a1_2)
    return {
        "w11_1": delta * w11_2 * gp(a1_1) * x,
        "w12_1": delta * w21_2 * gp(a2_1) * x,
        "w11_2": delta * z1,
        "w21_2": delta * z2,
    }


# ---------------------------------------------------------------------------------------
# Patch regression: prediction = X @ w with rows [1, x, y]; loss = mean squared error
# ---------------------------------------------------------------------------------------


def patch_mse(X: Tensor, w: Tensor, I: Tensor) -> Tensor:  # noqa: E741 (the seed calls the targets I)
    """Mean squared error of the predictions X @ w against the brightness values I."""
    err = X @ w - I
    return (err @ err) / X.shape[0]


def patch_mse_grad(X: Tensor, w: Tensor, I: Tensor) -> Tensor:  # noqa: E741
    """The seed's compact form: gradient = (2 / N) X^T (X w - I)."""
    N = X.shape[0]
    errors = X @ w - I
    return (2 / N) * (X.T @ errors)


# ---------------------------------------------------------------------------------------
# f(x, y) = 3(x - 1)^2 + y^2 + 4   and the mountain   B(x, y) = 4000 - 3(x - 10)^2 - (y - 3)^2
# ---------------------------------------------------------------------------------------


def f(x: Tensor, y: Tensor) -> Tensor:
    """The bowl of exercise 4; its minimum is f(1, 0) = 4."""
    return 3 * (x - 1) ** 2 + y**2 + 4


def grad_f(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(df/dx, df/dy) = (6(x - 1), 2y)."""
    return 6 * (x - 1), 2 * y


def B(x: Tensor, y: Tensor) -> Tensor:  # noqa: N802 (the seed's name)
    """The mountain of exercise 5; the summit is B(10, 3) = 4000 and B(0, 0) = 3691."""
    return 4000 - 3 * (x - 10) ** 2 - (y - 3) ** 2


def grad_B(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:  # noqa: N802
    """(dB/dx, dB/dy) = (-6(x - 10), -2(y - 3))."""
    return -6 * (x - 10), -2 * (y - 3)


# ---------------------------------------------------------------------------------------
# The digit MLP (exercise 8), in the notebook's convention: weights (out, in), samples in
# columns. X (64, m), Y one-hot (10, m); Z1 = W1 X + b1, H = relu(Z1), Z2 = W2 H + b2,
# P = softmax(Z2) column-wise, loss = mean over columns of -log P[true class].
# ---------------------------------------------------------------------------------------


def softmax_columns(Z: Tensor) -> Tensor:
    """Softmax of each column (shifting by the column maximum changes nothing but overflow)."""
    exp_Z = torch.exp(Z - Z.max(dim=0, keepdim=True).values)
    return exp_Z / exp_Z.sum(dim=0, keepdim=True)


def digit_mlp_loss(W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, X: Tensor, Y: Tensor) -> Tensor:
    """Mean cross-entropy of the 64 -> 32 -> 10 net (biases are columns (n, 1))."""
    P = softmax_columns(W2 @ torch.relu(W1 @ X + b1) + b2)
    return -(Y * torch.log(P)).sum(dim=0).mean()


def digit_mlp_grads(W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, X: Tensor, Y: Tensor) -> dict[str, Tensor]:
    """The notebook's backward pass: dZ2 = P - Y, dW2 = dZ2 H^T / m, db2 = row sums / m,
    dZ1 = W2^T dZ2 * 1[Z1 > 0], dW1 = dZ1 X^T / m, db1 = row sums / m."""
    m = X.shape[1]
    Z1 = W1 @ X + b1
    H = torch.relu(Z1)
    P = softmax_columns(W2 @ H + b2)
    dZ2 = P - Y
    dW2 = (1 / m) * dZ2 @ H.T
    db2 = (1 / m) * dZ2.sum(dim=1, keepdim=True)
    dH = W2.T @ dZ2
    dZ1 = dH * (Z1 > 0)
    dW1 = (1 / m) * dZ1 @ X.T
    db1 = (1 / m) * dZ1.sum(dim=1, keepdim=True)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# ---------------------------------------------------------------------------------------
# ReLU nets (exercises 6 and 9): Phi(x) = W_L relu(... relu(W_1 x + b_1) ...) + b_L
# ---------------------------------------------------------------------------------------


def relu_net_forward(weights: list[Tensor], biases: list[Tensor], X: Tensor) -> Tensor:
    """Phi for each row of X (N, d): ReLU after every layer but the last; returns (N, out)."""
    h = X
    for layer, (W, b) in enumerate(zip(weights, biases)):
        h = h @ W.T + b
        if layer < len(weights) - 1:
            h = torch.relu(h)
    return h


def relu_net_grads(weights: list[Tensor], biases: list[Tensor], X: Tensor, v: Tensor) -> dict[str, object]:
    """Gradients of L = sum_n v_n Phi(x_n) for a ReLU net with one output.

    A ReLU net is piecewise linear. On the piece that holds x_n every ReLU is a fixed 0/1
    mask D_l = diag(1[z_l > 0]), so Phi(x_n) = W_L D_{L-1} W_{L-1} ... D_1 W_1 x_n + const.
    The row vector r_l = W_L D_{L-1} W_{L-1} ... W_{l+1} D_l says what one unit of layer
    l's pre-activation is worth at the output; then, on that piece,
        dPhi/dW_l = r_l^T h_{l-1}^T,   dPhi/db_l = r_l^T,   dPhi/dx = r_1 W_1,
    with h_0 = x and h_l = relu(z_l). Returns {"weights": [...], "biases": [...], "input": (N, d)}.
    """
    hs, masks = [X], []
    for W, b in zip(weights[:-1], biases[:-1]):
        z = hs[-1] @ W.T + b
        masks.append((z > 0).to(X.dtype))
        hs.append(torch.relu(z))
    r = v.reshape(-1, 1).to(X.dtype)  # r_L: each sample's output weight v_n
    grad_W: list[Tensor] = []
    grad_b: list[Tensor] = []
    for layer in reversed(range(len(weights))):
        grad_W.insert(0, r.T @ hs[layer])  # sum over samples of r_l^T h_{l-1}^T
        grad_b.insert(0, r.sum(dim=0))
        r_below = r @ weights[layer]  # what a unit of h_{l-1} is worth at the output
        if layer > 0:
            r = r_below * masks[layer - 1]
    return {"weights": grad_W, "biases": grad_b, "input": r_below}
