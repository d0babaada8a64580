"""The NumPy reference layers of the CNN assignment, forward and backward.

Source: /work/shared/seeds/numpy-layers-cnn-assignment.md. Conventions follow it:
  dense     H = X W + b, with X (n_objects, d_in), W (d_in, d_out), b (d_out,)
  conv      W (n_out, n_in, k, k), input (n_objects, n_in, H, W), zero padding keeps H x W
  max-pool  2 x 2 windows, stride 2
Each `*_grad_*` function takes the gradient of the loss with respect to the layer's output
(`grad_output`) and returns the gradient with respect to one of its inputs or parameters.

One deliberate difference: the assignment's conv layer forward never adds its bias b (its
backward still returns grad_b); here the forward adds b, so forward and backward describe
the same function and match torch's conv2d with a bias.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

# --- dense ------------------------------------------------------------------------------


def dense_forward(x_input: Array, W: Array, b: Array) -> Array:
    """H = X W + b."""
    return x_input @ W + b


def dense_grad_input(x_input: Array, grad_output: Array, W: Array, b: Array) -> Array:
    """dL/dX = dL/dH W^T."""
    return grad_output @ W.T


def dense_grad_W(x_input: Array, grad_output: Array, W: Array, b: Array) -> Array:
    """dL/dW = X^T dL/dH."""
    return x_input.T @ grad_output


def dense_grad_b(x_input: Array, grad_output: Array, W: Array, b: Array) -> Array:
    """dL/db = dL/dH summed over the objects."""
    return grad_output.sum(axis=0)


# --- nonlinearities ---------------------------------------------------------------------


def relu_forward(x_input: Array) -> Array:
    """max(0, x), element-wise."""
    return np.maximum(x_input, 0.0)


def relu_grad_input(x_input: Array, grad_output: Array) -> Array:
    """The gradient passes where the input was positive."""
    return grad_output * (x_input > 0)


def sigmoid_forward(x_input: Array) -> Array:
    """1 / (1 + e^-x), element-wise."""
    return 1.0 / (1.0 + np.exp(-x_input))


def sigmoid_grad_input(x_input: Array, grad_output: Array) -> Array:
    """sigma'(x) = sigma(x) (1 - sigma(x))."""
    s = sigmoid_forward(x_input)
    return grad_output * s * (1.0 - s)


# --- losses -----------------------------------------------------------------------------


def nll_forward(target_pred: Array, target_true: Array) -> float:
    """Binary negative log-likelihood (cross-entropy), averaged over the objects:
    -mean(y log p + (1 - y) log(1 - p))."""
    p, y = target_pred, target_true
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def nll_grad_input(target_pred: Array, target_true: Array) -> Array:
    """dL/dp = (p - y) / (p (1 - p)) / N."""
    p, y = target_pred, target_true
    return (p - y) / (p * (1 - p)) / p.size


def l2_regularizer(weight_decay: float, weights: list[Array]) -> float:
    """(lambda / 2) * sum of squared entries of every weight array."""
    return float(weight_decay / 2 * sum(np.sum(np.square(w)) for w in weights))


def l2_grad(weight_decay: float, weights: list[Array]) -> list[Array]:
    """d/dw of the L2 term: lambda * w for each array."""
    return [weight_decay * w for w in weights]


# --- convolution ------------------------------------------------------------------------


def conv_matrix(matrix: Array, kernel: Array) -> Array:
    """Zero-padded 2-D cross-correlation, output the size of `matrix`:
    Y[i, j] = sum_{a, b} K[a, b] X[i + a - p, j + b - q] for a kernel (2p + 1, 2q + 1)."""
    kh, kw = kernel.shape
    p, q = (kh - 1) // 2, (kw - 1) // 2
    n, m = matrix.shape
    padded = np.pad(np.asarray(matrix, dtype=float), ((p, p), (q, q)))
    out = np.zeros((n, m))
    for a in range(kh):
        for b in range(kw):
            out += kernel[a, b] * padded[a : a + n, b : b + m]
    return out


def box_blur(image: Array, box_size: int) -> Array:
    """The mean over a box_size x box_size window around every pixel (zero outside)."""
    return conv_matrix(image, np.ones((box_size, box_size)) / box_size**2)


def _pad_images(x_input: Array, k: int) -> tuple[Array, int]:
    pad = (k - 1) // 2
    return np.pad(x_input, ((0, 0), (0, 0), (pad, pad), (pad, pad))), pad


def conv_forward(x_input: Array, W: Array, b: Array) -> Array:
    """Output channel o = sum over input channels c of conv_matrix(x[c], W[o, c]), plus b[o]."""
    n_obj, _, h, w = x_input.shape
    k = W.shape[2]
    padded, _ = _pad_images(x_input, k)
    out = np.zeros((n_obj, W.shape[0], h, w))
    for a in range(k):
        for c in range(k):
            window = padded[:, :, a : a + h, c : c + w]  # every pixel's neighbor at offset (a, c)
            out += np.einsum("nihw,oi->nohw", window, W[:, :, a, c])
    return out + b.reshape(1, -1, 1, 1)


def conv_grad_W(x_input: Array, grad_output: Array, W: Array, b: Array) -> Array:
    """dL/dW[o, i, a, c] = sum over objects and pixels of dL/dY[o] times the input at offset (a, c)."""
    _, _, h, w = x_input.shape
    k = W.shape[2]
    padded, _ = _pad_images(x_input, k)
    grad_W = np.zeros_like(W, dtype=float)
    for a in range(k):
        for c in range(k):
            grad_W[:, :, a, c] = np.einsum("nohw,nihw->oi", grad_output, padded[:, :, a : a + h, c : c + w])
    return grad_W


def conv_grad_b(x_input: Array, grad_output: Array, W: Array, b: Array) -> Array:
    """dL/db[o] = dL/dY[o] summed over objects and pixels."""
    return grad_output.sum(axis=(0, 2, 3))


def conv_grad_input(x_input: Array, grad_output: Array, W: Array, b: Array) -> Array:
    """Each output pixel sends W[o, i, a, c] * dL/dY back to the input pixel it read at (a, c)."""
    _, _, h, w = x_input.shape
    k = W.shape[2]
    padded, pad = _pad_images(np.zeros_like(x_input, dtype=float), k)
    for a in range(k):
        for c in range(k):
            padded[:, :, a : a + h, c : c + w] += np.einsum("nohw,oi->nihw", grad_output, W[:, :, a, c])
    return padded[:, :, pad : pad + h, pad : pad + w]


# --- pooling and flatten ----------------------------------------------------------------


def _windows(x_input: Array) -> Array:
    """(n, c, 2H, 2W) -> (n, c, H, W, 4): the four values of every 2 x 2 window."""
    n, c, h, w = x_input.shape
    x = x_input.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return x.reshape(n, c, h // 2, w // 2, 4)


def maxpool_forward(x_input: Array) -> Array:
    """The largest value of every 2 x 2 window; (H, W) or (n, c, H, W) input."""
    if x_input.ndim == 2:
        return maxpool_forward(x_input[None, None])[0, 0]
    return _windows(x_input).max(axis=-1)


def maxpool_grad_input(x_input: Array, grad_output: Array) -> Array:
    """The window's gradient goes to the position of its maximum (the first one on a tie)."""
    if x_input.ndim == 2:
        return maxpool_grad_input(x_input[None, None], grad_output[None, None])[0, 0]
    n, c, h, w = x_input.shape
    winners = np.eye(4)[_windows(x_input).argmax(axis=-1)]  # one-hot (n, c, H/2, W/2, 4)
    routed = winners * grad_output[..., None]
    routed = routed.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return routed.reshape(n, c, h, w)


def flatten_forward(x_input: Array) -> Array:
    """(K, L, M, N) -> (K, L*M*N)."""
    return x_input.reshape(x_input.shape[0], -1)


def flatten_grad_input(x_input: Array, grad_output: Array) -> Array:
    """The gradient is reshaped back; no value changes."""
    return grad_output.reshape(x_input.shape)
