"""Shared oracles for the engine tests: central finite differences and kink-free inputs.

Helpers are plain functions (imported as ``from tests.engine.conftest import ...``) so that every
test module checks gradients the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

FD_STEP = 1e-6
FD_TOLERANCE = 1e-6


def numerical_grad(f: Callable[[], float], arr: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Central differences ``(f(a + h) - f(a - h)) / 2h`` for every element of ``arr``, perturbed in place.

    ``f`` reads ``arr`` (directly or through a model that holds it); ``arr`` is restored exactly.
    """
    grad = np.zeros(arr.shape, dtype=np.float64)
    flat = arr.reshape(-1)  # a view: perturbing it perturbs arr
    assert np.shares_memory(flat, arr), "numerical_grad needs a contiguous array to perturb in place"
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        g[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max |a - n| / max(max |a|, max |n|)``: the worst error relative to the gradient's scale."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    assert analytic.shape == numeric.shape, f"gradient shape {analytic.shape} != {numeric.shape}"
    scale = max(float(np.abs(analytic).max(initial=0.0)), float(np.abs(numeric).max(initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray, what: str, tol: float = FD_TOLERANCE) -> None:
    err = rel_error(analytic, numeric)
    assert err < tol, f"{what}: relative error {err:.3g} >= {tol:g}"


def kink_free(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.2, high: float = 1.0) -> np.ndarray:
    """float64 values with ``low <= |v| <= high``, random signs and all magnitudes distinct.

    Neighbouring magnitudes differ by ``(high - low) / size``, far more than a finite-difference step,
    so relu never crosses 0 and a max-pool window never changes its winner during a gradient check.
    """
    size = int(np.prod(shape))
    mags = low + (high - low) * rng.permutation(size) / max(size - 1, 1)
    signs = rng.choice([-1.0, 1.0], size=size)
    return (mags * signs).reshape(shape)
