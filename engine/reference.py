"""The reference engine: every layer written as plain loops, to read first and to test against.

Each layer is a pair in the style of CS231n's ``layers.py``::

    out, cache = xxx_forward(x, ...)      # remember what backward will need
    dx, grads = xxx_backward(dout, cache)  # grads has one entry per parameter (none: {})

Tensors are public NCHW: feature maps ``(N, C, H, W)``, vectors ``(N, D)``; float64 gives exact
gradient checks. Loops run over output positions, so you can watch the window slide. The fast
engine (`engine.layers`) computes the same numbers with unfolding and strided views; the tests
hold it to these functions, and these to PyTorch (tests/engine/test_reference.py).
"""

from __future__ import annotations

import numpy as np

# ---- convolution: how a convolution works, in 30 lines -------------------------------------------


def conv_pads(kernel_size: int, padding: int | str) -> tuple[int, int]:
    """Pixels added ``(before, after)`` each spatial side: an int, ``"valid"`` (none) or ``"same"``
    (output size = input size at stride 1; an even kernel's extra pixel goes after, as in PyTorch)."""
    if padding == "same":
        return (kernel_size - 1) // 2, kernel_size // 2
    p = 0 if padding == "valid" else padding
    return p, p


def pad(x: np.ndarray, before: int, after: int, value: float = 0.0) -> np.ndarray:
    """``(N, C, H, W) -> (N, C, before + H + after, before + W + after)``, filled with ``value``."""
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)), constant_values=value)


def conv2d_forward(x, weight, bias=None, stride=1, padding=0):
    """``x: (N, C, H, W)``, ``weight: (F, C, k, k)``, ``bias: (F,)`` or None -> ``out: (N, F, H', W')``.

    ``out[n, f, i, j] = sum over c, a, b of xp[n, c, i*s + a, j*s + b] * weight[f, c, a, b] + bias[f]``
    with ``xp`` the padded input and ``H' = (H + pads - k) // s + 1``: filter ``f`` is a k x k
    flashlight that slides over the input ``s`` pixels at a time and weighs what it lights up.
    """
    k = weight.shape[2]
    before, after = conv_pads(k, padding)
    xp = pad(x, before, after)
    n, f, s = x.shape[0], weight.shape[0], stride
    ho, wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    out = np.zeros((n, f, ho, wo), dtype=x.dtype)
    for b in range(n):
        for o in range(f):
            for i in range(ho):
                for j in range(wo):
                    window = xp[b, :, i * s : i * s + k, j * s : j * s + k]  # (C, k, k)
                    out[b, o, i, j] = np.sum(window * weight[o]) + (0 if bias is None else bias[o])
    return out, (xp, weight, bias is not None, s, before, x.shape)


def conv2d_backward(dout, cache):
    """``dout: (N, F, H', W') -> dx: (N, C, H, W)``, grads ``weight: (F, C, k, k)``, ``bias: (F,)``.

    Each output was ``sum(window * filter)``, so it hands its gradient back to both:
    ``dwindow += dout * filter`` and ``dfilter += dout * window``; ``dbias = sum of dout``.
    """
    xp, weight, has_bias, s, before, (_, _, h, w) = cache
    k = weight.shape[2]
    dxp, dw = np.zeros_like(xp), np.zeros_like(weight)
    n, f, ho, wo = dout.shape
    for b in range(n):
        for o in range(f):
            for i in range(ho):
                for j in range(wo):
                    rows, cols = slice(i * s, i * s + k), slice(j * s, j * s + k)
                    dxp[b, :, rows, cols] += dout[b, o, i, j] * weight[o]
                    dw[o] += dout[b, o, i, j] * xp[b, :, rows, cols]
    grads = {"weight": dw, "bias": dout.sum(axis=(0, 2, 3))} if has_bias else {"weight": dw}
    return dxp[:, :, before : before + h, before : before + w], grads


# ---- element-wise non-linearities (any shape) -----------------------------------------------------


def relu_forward(x):
    """``out = max(x, 0)``; same shape as ``x``."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """``dx = dout where x > 0, else 0``."""
    return dout * (cache > 0), {}


def leaky_relu_forward(x, alpha=0.01):
    """``out = x if x > 0 else alpha * x``; same shape as ``x``."""
    return np.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dout, cache):
    """``dx = dout if x > 0 else alpha * dout``."""
    x, alpha = cache
    return np.where(x > 0, dout, alpha * dout), {}


def sigmoid_forward(x):
    """``out = 1 / (1 + exp(-x))`` (the textbook formula: fine for ``x > -700``)."""
    out = 1 / (1 + np.exp(-x))
    return out, out


def sigmoid_backward(dout, cache):
    """``dx = dout * out * (1 - out)``."""
    return dout * cache * (1 - cache), {}


def tanh_forward(x):
    """``out = tanh(x)``."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """``dx = dout * (1 - out^2)``."""
    return dout * (1 - cache**2), {}


# ---- pooling ------------------------------------------------------------------------------------


def maxpool2d_forward(x, pool_size, stride=None, padding=0):
    """``x: (N, C, H, W) -> out: (N, C, H', W')``, ``out[n, c, i, j] = max of the k x k window at
    (i*s, j*s)`` of the input padded with -inf (padding never wins); ``stride`` defaults to ``k``."""
    k, s = pool_size, stride or pool_size
    xp = pad(x, padding, padding, value=-np.inf)
    ho, wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    out = np.zeros((*x.shape[:2], ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xp[:, :, i * s : i * s + k, j * s : j * s + k].max(axis=(2, 3))
    return out, (xp, k, s, padding)


def maxpool2d_backward(dout, cache):
    """``dout: (N, C, H', W') -> dx: (N, C, H, W)``: each window's gradient goes to its maximum, and
    on a tie to the first maximum in row-major scan order (PyTorch's rule), so it is passed once."""
    xp, k, s, p = cache
    dxp = np.zeros_like(xp)
    n, c, ho, wo = dout.shape
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    a, q = divmod(int(np.argmax(xp[b, ch, i * s : i * s + k, j * s : j * s + k])), k)
                    dxp[b, ch, i * s + a, j * s + q] += dout[b, ch, i, j]
    return dxp[:, :, p : xp.shape[2] - p, p : xp.shape[3] - p], {}


def avgpool2d_forward(x, pool_size, stride=None, padding=0):
    """``x: (N, C, H, W) -> out: (N, C, H', W')``, ``out[n, c, i, j] = mean of the k x k window``
    of the zero-padded input: padding counts in the mean (PyTorch's ``count_include_pad=True``)."""
    k, s = pool_size, stride or pool_size
    xp = pad(x, padding, padding)
    ho, wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    out = np.zeros((*x.shape[:2], ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xp[:, :, i * s : i * s + k, j * s : j * s + k].sum(axis=(2, 3)) / (k * k)
    return out, (xp.shape, k, s, padding)


def avgpool2d_backward(dout, cache):
    """``dout: (N, C, H', W') -> dx: (N, C, H, W)``: every pixel of a window gets ``dout / k^2``."""
    shape, k, s, p = cache
    dxp = np.zeros(shape, dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dxp[:, :, i * s : i * s + k, j * s : j * s + k] += dout[:, :, i, j, None, None] / (k * k)
    return dxp[:, :, p : shape[2] - p, p : shape[3] - p], {}


def global_avgpool2d_forward(x):
    """``x: (N, C, H, W) -> out: (N, C)``, ``out[n, c] = mean of x[n, c]`` over H and W."""
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool2d_backward(dout, cache):
    """``dout: (N, C) -> dx: (N, C, H, W)``: every pixel gets ``dout / (H * W)``."""
    h, w = cache[2:]
    return np.broadcast_to(dout[:, :, None, None] / (h * w), cache).copy(), {}


# ---- dropout, flatten, dense, softmax ----------------------------------------------------------------


def dropout_forward(x, mask, rate, train=True):
    """Inverted dropout, ``x`` and ``mask`` of any one shape. Training: ``out = x * mask / (1 - rate)``
    with ``mask`` 1 (keep, probability ``1 - rate``) or 0 (drop); evaluation: ``out = x`` (mask unused).
    Scaling while training keeps the expected activation the same in both modes."""
    if not train:
        return x, None
    scale = mask / (1 - rate)
    return x * scale, scale


def dropout_backward(dout, cache):
    """``dx = dout * mask / (1 - rate)`` in training, ``dout`` in evaluation."""
    return (dout if cache is None else dout * cache), {}


def flatten_forward(x):
    """``x: (N, C, H, W) -> out: (N, C*H*W)`` in C, H, W order (PyTorch's ``flatten(1)``)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """``dout: (N, C*H*W) -> dx: (N, C, H, W)``."""
    return dout.reshape(cache), {}


def dense_forward(x, weight, bias=None):
    """``x: (N, D)``, ``weight: (U, D)`` (PyTorch's layout), ``bias: (U,)`` or None -> ``out: (N, U)``,
    ``out[n, u] = sum over d of weight[u, d] * x[n, d] + bias[u]``: every unit weighs every input."""
    out = np.zeros((x.shape[0], weight.shape[0]), dtype=x.dtype)
    for u in range(weight.shape[0]):
        out[:, u] = x @ weight[u] + (0 if bias is None else bias[u])
    return out, (x, weight, bias is not None)


def dense_backward(dout, cache):
    """``dout: (N, U) -> dx: (N, D) = dout @ weight``, ``weight: dout.T @ x``, ``bias: sum of dout``."""
    x, weight, has_bias = cache
    grads = {"weight": dout.T @ x, "bias": dout.sum(axis=0)} if has_bias else {"weight": dout.T @ x}
    return dout @ weight, grads


def softmax_forward(x):
    """``x: (N, K) -> p: (N, K)``, ``p[n, k] = exp(x[n, k]) / sum over j of exp(x[n, j])``
    (each row shifted by its max first: the same p, and exp never overflows)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return p, p


def softmax_backward(dout, cache):
    """``dx = p * (dout - sum over k of dout * p)``: the softmax Jacobian times ``dout``."""
    p = cache
    return p * (dout - (dout * p).sum(axis=1, keepdims=True)), {}


# ---- batch normalisation --------------------------------------------------------------------------


def batchnorm2d_forward(x, weight, bias, running_mean, running_var, train, momentum=0.1, eps=1e-5):
    """``x: (N, C, H, W)``, ``weight, bias: (C,)`` or None (not affine), ``running_mean,
    running_var: (C,)`` -> ``(out: (N, C, H, W), cache, {"running_mean": (C,), "running_var": (C,)})``.

    Per channel, over its ``n = N*H*W`` values: ``out = weight * (x - mean) / sqrt(var + eps) + bias``.
    Training uses the batch's mean and biased variance ``mean((x - mean)^2)``, and returns the
    running statistics moved towards them: ``(1 - momentum) * running + momentum * batch``, with the
    unbiased variance ``var * n / (n - 1)`` (PyTorch's rule). Evaluation uses the running statistics
    and returns them unchanged. The inputs are never modified.
    """
    if train:
        n = x.size // x.shape[1]
        if n < 2:
            raise ValueError("batchnorm2d in training needs more than one value per channel")
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        running = {"running_mean": (1 - momentum) * running_mean + momentum * mean,
                   "running_var": (1 - momentum) * running_var + momentum * var * n / (n - 1)}
    else:
        mean, var = running_mean, running_var
        running = {"running_mean": running_mean.copy(), "running_var": running_var.copy()}
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean[:, None, None]) * inv_std[:, None, None]
    gamma = np.ones_like(inv_std) if weight is None else weight
    out = x_hat * gamma[:, None, None] + (0 if bias is None else bias[:, None, None])
    return out, (x_hat, inv_std, gamma, weight is not None, train), running


def batchnorm2d_backward(dout, cache):
    """``dout: (N, C, H, W) -> dx: (N, C, H, W)``, grads ``weight, bias: (C,)`` when affine.

    Evaluation: the statistics are constants, ``dx = dout * weight / sqrt(running_var + eps)``.
    Training: the mean and variance depend on every input too; per channel, with ``g = dout * weight``
    and sums over the channel's ``n`` values: ``dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + eps)``.
    ``dweight = sum of dout * x_hat``, ``dbias = sum of dout``.
    """
    x_hat, inv_std, gamma, affine, train = cache
    g = dout * gamma[:, None, None]
    if train:
        g = g - g.mean(axis=(0, 2, 3))[:, None, None] - x_hat * (g * x_hat).mean(axis=(0, 2, 3))[:, None, None]
    dx = g * inv_std[:, None, None]
    grads = {"weight": (dout * x_hat).sum(axis=(0, 2, 3)), "bias": dout.sum(axis=(0, 2, 3))} if affine else {}
    return dx, grads


# ---- losses (engine.losses): loss and its gradient, averaged over the batch -------------------------


def softmax_cross_entropy(logits, y):
    """``logits: (N, K)``, ``y: (N,)`` class indices -> ``(loss, dlogits: (N, K), p: (N, K))``.

    ``loss = mean over n of -log p[n, y[n]]`` with ``p = softmax(logits)``; ``dlogits = (p - onehot) / N``.
    """
    n = logits.shape[0]
    p, _ = softmax_forward(logits)
    onehot = np.eye(logits.shape[1])[y]
    return float(-np.log(p[np.arange(n), y]).mean()), (p - onehot) / n, p


def mean_squared_error(out, y):
    """``out: (N, K)``, ``y: (N,)`` -> ``(loss, dout: (N, K))``: ``loss = sum 1/2 (out - onehot)^2 / N``,
    ``dout = (out - onehot) / N``."""
    diff = out - np.eye(out.shape[1])[y]
    return float(0.5 * (diff**2).sum() / out.shape[0]), diff / out.shape[0]


# ---- one layer of a model spec (used by the tests to run any layer type) -----------------------------


def layer_forward(spec, params, x, *, train=False, mask=None, buffers=None):
    """Run the layer an `engine.specs` dataclass describes on public ``x``: ``-> (out, cache, buffers')``.

    ``params`` as the engine names them (``weight``, ``bias``); ``mask``: dropout's keep mask in
    training; ``buffers``: batchnorm2d's running statistics, returned updated (``{}`` for the others).
    """
    t, w, b = spec.type, params.get("weight"), params.get("bias")
    if t == "batchnorm2d":
        return batchnorm2d_forward(x, w, b, buffers["running_mean"], buffers["running_var"], train, spec.momentum, spec.eps)
    if t == "conv2d":
        out, cache = conv2d_forward(x, w, b, spec.stride, spec.padding)
    elif t == "dense":
        out, cache = dense_forward(x, w, b)
    elif t in ("maxpool2d", "avgpool2d"):
        out, cache = FORWARD[t](x, spec.pool_size, spec.stride, spec.padding)
    elif t == "leaky_relu":
        out, cache = leaky_relu_forward(x, spec.alpha)
    elif t == "dropout":
        out, cache = dropout_forward(x, mask, spec.rate, train)
    else:
        out, cache = FORWARD[t](x)
    return out, cache, {}


def layer_backward(spec, dout, cache):
    """The backward pass matching `layer_forward`: ``-> (dx, grads)``."""
    return BACKWARD[spec.type](dout, cache)


FORWARD = {
    "conv2d": conv2d_forward, "relu": relu_forward, "leaky_relu": leaky_relu_forward, "sigmoid": sigmoid_forward,
    "tanh": tanh_forward, "maxpool2d": maxpool2d_forward, "avgpool2d": avgpool2d_forward,
    "global_avgpool2d": global_avgpool2d_forward, "dropout": dropout_forward, "flatten": flatten_forward,
    "dense": dense_forward, "softmax": softmax_forward, "batchnorm2d": batchnorm2d_forward,
}
BACKWARD = {
    "conv2d": conv2d_backward, "relu": relu_backward, "leaky_relu": leaky_relu_backward, "sigmoid": sigmoid_backward,
    "tanh": tanh_backward, "maxpool2d": maxpool2d_backward, "avgpool2d": avgpool2d_backward,
    "global_avgpool2d": global_avgpool2d_backward, "dropout": dropout_backward, "flatten": flatten_backward,
    "dense": dense_backward, "softmax": softmax_backward, "batchnorm2d": batchnorm2d_backward,
}
