"""Classification losses, averaged over the batch, each returning the gradient it implies."""

from __future__ import annotations

import numpy as np

LOSSES = ("cross_entropy", "mse")


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``z: (N, K) -> log p: (N, K)``, stable via the log-sum-exp shift."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean of ``-log softmax(logits)[y]``; returns ``(loss, dlogits = (p - onehot) / N, p)``.

    Fusing softmax with the loss avoids log(0) and the softmax Jacobian.
    """
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = float(-logp[rows, y].mean())
    p = np.exp(logp)
    d = p.copy()
    d[rows, y] -= 1
    d /= n
    return loss, d, p


def mean_squared_error(out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The classic explanation's ``E = sum_k 1/2 (target_k - out_k)^2`` against one-hot targets, averaged over N.

    Returns ``(loss, dout = (out - target) / N)``.
    """
    n = out.shape[0]
    target = np.zeros_like(out)
    target[np.arange(n), y] = 1
    diff = out - target
    return float(0.5 * (diff * diff).sum() / n), diff / n
