"""Small torch helpers shared by the estimator and the retraining code."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import torch
from torch import nn

from lossval.errors import ConfigError

__all__ = ["resolve_device", "make_mlp", "make_adam", "ADAM_BETAS", "ADAM_EPS", "ProgressBar"]

# Adam's moment decay rates and eps, torch's defaults, named so that LossVal's closed-form
# row-weight Adam (lossval.valuation._RowAdam) and the network's optimiser share them.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def make_adam(params: Any, *, lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam``, fused where this torch build and the parameters' device support it.

    The fused kernel updates every tensor of a group in one call. On the CPU the default
    per-tensor implementation costs 0.1-0.3 ms per step for these small networks and for a
    row-weight vector (as much as the forward and backward pass), 0.23 ms per step for 100k
    weights. Same maths; the result is deterministic either way.

    Args:
        params: Parameters or parameter groups, as ``torch.optim.Adam`` takes them.
        lr: Default learning rate.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device / dtype
        return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a concrete ``torch.device``.

    Args:
        device: ``"auto"`` picks CUDA, then Apple MPS, then CPU. ``"cuda"``, ``"cuda:1"``,
            ``"mps"`` or ``"cpu"`` ask for that device explicitly.

    Returns:
        The device to run on.

    Raises:
        ConfigError: An explicit device was asked for that this machine lacks.
    """
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} was requested but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}, cuda {torch.version.cuda}). Use device='auto' or 'cpu', "
                "or install a CUDA build of torch on a machine with an NVIDIA GPU."
            )
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device='mps' was requested but MPS is not available; use 'auto' or 'cpu'.")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")


def make_mlp(
    n_inputs: int, n_outputs: int, *, n_layers: int, width: int, activation: str
) -> nn.Sequential:
    """A plain MLP with ``n_layers`` linear layers (``n_layers - 1`` hidden layers).

    Args:
        n_inputs: Input features.
        n_outputs: Output units (classes for classification, 1 for regression).
        n_layers: Number of ``nn.Linear`` layers, >= 1.
        width: Hidden width.
        activation: One of ``relu``, ``tanh``, ``gelu``, ``silu``.

    Returns:
        An ``nn.Sequential`` mapping ``(n, n_inputs)`` to ``(n, n_outputs)`` logits / predictions.
    """
    if n_layers < 1:
        raise ConfigError(f"n_layers must be >= 1, got {n_layers}")
    try:
        act = _ACTIVATIONS[activation]
    except KeyError:
        raise ConfigError(
            f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}"
        ) from None
    layers: list[nn.Module] = []
    fan_in = n_inputs
    for _ in range(n_layers - 1):
        layers += [nn.Linear(fan_in, width), act()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_outputs))
    return nn.Sequential(*layers)


class ProgressBar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal.

    Args:
        total: Number of steps.
        label: Text before the bar.
        enabled: Draw at all (``verbose``); still off when the stream is not a TTY.
        stream: Where to draw (default ``sys.stderr``).
    """

    def __init__(self, total: int, *, label: str, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(enabled) and bool(isatty())
        self.start = time.perf_counter()
        self.done = 0

    def update(self, n: int = 1, *, info: str = "") -> None:
        """Advance by ``n`` steps and redraw."""
        self.done += n
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        filled = int(round(24 * frac))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total}"
            f" {elapsed:5.1f}s eta {eta:5.1f}s {info}   "
        )
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
