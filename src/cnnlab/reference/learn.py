"""Learning a convolution kernel from data by gradient descent, in NumPy (d2l.ai 7.2.4).

Given an image ``X`` and its vertical-edge map ``Y = corr2d(X, [[1, -1]])``, we start from a
random 1×2 kernel and minimise the squared error ``L = sum((corr2d(X, K) - Y)**2)``. Because
``Y_hat[i, j] = sum_{a, b} X[i + a, j + b] * K[a, b]``, the gradient is

    dL/dK[a, b] = sum_{i, j} 2 * (Y_hat - Y)[i, j] * X[i + a, j + b]
                = corr2d(X, 2 * (Y_hat - Y))[a, b]

— the gradient of a cross-correlation with respect to its kernel is itself a cross-correlation
of the input with the output error. No autograd needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab._validate import check_int
from cnnlab.reference.conv import corr2d


@dataclass
class LearnedKernel:
    """What :func:`learn_edge_kernel` found.

    Attributes:
        kernel: the learned kernel, shape ``(1, 2)``.
        losses: the squared error after each step.
    """

    kernel: np.ndarray
    losses: list[float]


def edge_image(height: int = 6, width: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The course's toy image (white, with a black vertical band) and its edge map.

    Example:
        >>> X, Y = edge_image()
        >>> Y[0].tolist()
        [0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
    """
    check_int("height", height, min_value=1)
    check_int("width", width, min_value=4)
    X = np.ones((height, width))
    X[:, width // 4 : width - width // 4] = 0.0  # black band in the middle
    return X, corr2d(X, np.array([[1.0, -1.0]]))  # edges: +1 white->black, -1 black->white


def learn_edge_kernel(
    X: np.ndarray | None = None,
    Y: np.ndarray | None = None,
    lr: float = 0.03,
    num_epochs: int = 50,
    seed: int = 0,
) -> LearnedKernel:
    """Learn a 1×2 kernel that maps ``X`` to ``Y`` by plain gradient descent.

    Args:
        X: image ``(H, W)``; default: :func:`edge_image`.
        Y: target ``(H, W - 1)``; default: the edge map of ``X`` with kernel ``[1, -1]``.
        lr: learning rate (step size).
        num_epochs: gradient steps.
        seed: seed of the random initial kernel.

    Example:
        >>> np.round(learn_edge_kernel().kernel, 2).tolist()
        [[1.0, -1.0]]
    """
    if X is None:
        X, default_Y = edge_image()
        Y = default_Y if Y is None else Y
    X = np.asarray(X, dtype=float)
    if Y is None:
        Y = corr2d(X, np.array([[1.0, -1.0]]))
    Y = np.asarray(Y, dtype=float)
    if X.ndim != 2 or Y.shape != (X.shape[0], X.shape[1] - 1):
        raise ValueError(f"X must be (H, W) and Y (H, W - 1); got shapes {X.shape} and {Y.shape}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    check_int("num_epochs", num_epochs, min_value=1)
    K = np.random.default_rng(seed).normal(size=(1, 2))
    losses = []
    for _ in range(num_epochs):
        error = corr2d(X, K) - Y  # (H, W - 1)
        losses.append(float((error**2).sum()))
        if not np.isfinite(losses[-1]) or losses[-1] > 1e6 * (losses[0] + 1.0):
            raise ValueError(f"gradient descent diverged (loss {losses[-1]:.3g} after "
                             f"{len(losses)} steps): lr={lr} is too large for this image; "
                             f"valid: a smaller lr, e.g. {lr / 10:g}")
        K = K - lr * corr2d(X, 2 * error)  # dL/dK, derived in the module docstring
    losses.append(float(((corr2d(X, K) - Y) ** 2).sum()))
    return LearnedKernel(kernel=K, losses=losses)
