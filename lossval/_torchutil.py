"""Small torch helpers shared by the estimator and the retraining code."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn

from lossval.errors import ConfigError

__all__ = ["resolve_device", "cpu_threads", "seeded_init", "make_mlp", "make_adam", "FlatAdam", "BatchSteps", "batch_steps_for", "per_row_loss",
           "pad_batches", "use_cuda_graphs", "ACTIVATIONS", "ADAM_BETAS", "ADAM_EPS", "DEVICE_NAME", "CUDA_GRAPHS_ENV", "ProgressBar"]

# Adam's moment decay rates and eps, torch's defaults, named so that LossVal's closed-form
# row-weight Adam (lossval.valuation._RowAdam) and the network's optimiser share them.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}

DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(?::(\d+))?")
"""How a device may be spelt (lower case); whether this machine has it is :func:`resolve_device`'s question."""


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


class FlatAdam:
    """Adam (torch's update rule and constants) on every parameter of a network at once.

    The parameters and their gradients are re-pointed at two flat buffers (``param.data``
    and ``param.grad`` become views), so one step is one fused kernel over one tensor and
    clearing the gradients is one fill. For the small networks LossVal trains, the cost of
    an optimiser step is almost all per-tensor and per-call overhead: on the 2-core CPU
    ``torch.optim.Adam(fused=True)`` takes 150-180 us per step for a 3-layer MLP, this
    takes 15-25 us, and a whole training step gets about a quarter cheaper. Same maths as
    ``torch.optim.Adam`` (tested to float rounding).

    Backward accumulates into the existing ``.grad`` views in place, so call
    :meth:`zero_grad` (not ``module.zero_grad(set_to_none=True)``, which would detach the
    views; :meth:`step` checks and raises rather than stepping on stale gradients).

    Where torch has no fused Adam kernel for the device and dtype, the flat buffer is stepped
    by ``torch.optim.Adam`` itself (slower, same update).

    Args:
        params: The parameters (all on one device, one floating dtype).
        lr: Learning rate. betas, eps: Adam's constants (torch's defaults).
        fused: Use the fused kernel (``None``: when it runs here; ``False``: ``torch.optim.Adam``).
    """

    def __init__(self, params: Any, *, lr: float, betas: tuple[float, float] = ADAM_BETAS,
                 eps: float = ADAM_EPS, fused: bool | None = None) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ConfigError("FlatAdam got no trainable parameters")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ConfigError("FlatAdam got the same parameter twice (tied weights?); pass each once")
        first = self.params[0]
        if any(p.device != first.device or p.dtype != first.dtype for p in self.params):
            raise ConfigError("FlatAdam needs all parameters on one device with one dtype")
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.flat)
        self._grad_views = []
        offset = 0
        for p in self.params:
            size = p.numel()
            p.data = self.flat[offset:offset + size].view_as(p)
            view = self.grad[offset:offset + size].view_as(p)
            p.grad = view
            self._grad_views.append(view)
            offset += size
        self.lr, self.eps = float(lr), float(eps)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self._fused = _has_fused_adam(self.flat) if fused is None else bool(fused)
        if self._fused:
            self.exp_avg = torch.zeros_like(self.flat)
            self.exp_avg_sq = torch.zeros_like(self.flat)
            self._step_t = torch.zeros((), dtype=torch.float32, device=self.flat.device)
        else:
            leaf = torch.nn.Parameter(self.flat)  # shares the buffer: the optimiser steps it in place
            leaf.grad = self.grad
            self._fallback = torch.optim.Adam([leaf], lr=self.lr, betas=(self.beta1, self.beta2), eps=self.eps)

    @property
    def capturable(self) -> bool:
        """Whether a step can be captured in a CUDA graph: the fused kernel keeps its step count on the device."""
        return self._fused and bool(self.params)

    def release(self) -> None:
        """Give every parameter storage of its own again and drop the gradients.

        Call when training is done, so the network is an ordinary module (its state dict
        saves each tensor alone, another optimiser can take it over). The optimiser must
        not step afterwards.
        """
        with torch.no_grad():
            for p in self.params:
                p.data = p.data.clone()
                p.grad = None
        self.params, self._grad_views = [], []

    def zero_grad(self) -> None:
        """Clear the gradients (one fill of the flat buffer; the views stay attached)."""
        self.grad.zero_()

    def step(self) -> None:
        """One Adam step on every parameter.

        Raises:
            RuntimeError: a parameter's ``.grad`` is no longer a view of the flat buffer (it
                was set to None or replaced), so this step would ignore its gradient.
        """
        for p, view in zip(self.params, self._grad_views):
            if p.grad is not view:
                raise RuntimeError(
                    "a parameter's .grad was detached from FlatAdam's buffer (module.zero_grad(set_to_none=True)?); "
                    "use FlatAdam.zero_grad() instead")
        if not self._fused:
            self._fallback.step()
            return
        self._step_t.add_(1.0)
        torch._fused_adam_([self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [self._step_t],
                           lr=self.lr, beta1=self.beta1, beta2=self.beta2, weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False)


def _has_fused_adam(t: torch.Tensor) -> bool:
    """Whether torch's fused Adam kernel runs for ``t``'s device and dtype (probed once per optimiser)."""
    fused = getattr(torch, "_fused_adam_", None)
    if fused is None:
        return False
    probe = [torch.zeros(1, dtype=t.dtype, device=t.device) for _ in range(4)]
    try:
        fused([probe[0]], [probe[1]], [probe[2]], [probe[3]], [], [torch.ones((), device=t.device)],
              lr=0.0, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return True


def per_row_loss(out: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Each row's training loss: cross-entropy of the logits (classification), else the squared
    error of the single output. LossVal, retraining and the benchmarks' plain training share it."""
    if task == "classification":
        return F.cross_entropy(out, target, reduction="none")
    return (out[:, 0] - target) ** 2


CUDA_GRAPHS_ENV = "LOSSVAL_CUDA_GRAPHS"
"""Environment variable: ``0`` (or ``false``, ``no``, ``off``) runs CUDA training steps one kernel at a time."""


def use_cuda_graphs(device: torch.device, optimizer: Any, n_batches: int) -> bool:
    """Whether training steps on ``device`` should replay a captured CUDA graph (:class:`BatchSteps`).

    Yes on CUDA with a :class:`FlatAdam` whose step can be captured and more batches per epoch than
    :data:`BatchSteps.WARMUP_STEPS`, unless :data:`CUDA_GRAPHS_ENV` turns it off. The CPU never does:
    there a step is compute-bound, and the plain loop keeps its values bit for bit.
    """
    if device.type != "cuda" or not isinstance(optimizer, FlatAdam) or not optimizer.capturable:
        return False
    if os.environ.get(CUDA_GRAPHS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return n_batches > BatchSteps.WARMUP_STEPS


def batch_steps_for(loss_fn: Callable[[torch.Tensor], torch.Tensor], optimizer: Any, *, n: int, bsz: int,
                    device: torch.device) -> BatchSteps | None:
    """:class:`BatchSteps` for ``n`` rows in batches of ``bsz`` where :func:`use_cuda_graphs` says so, else ``None``
    (the caller keeps its own step-by-step loop: the CPU's, whose values stay bit for bit)."""
    n_batches = -(-n // bsz)
    if not use_cuda_graphs(device, optimizer, n_batches):
        return None
    # graph=False only where a test forces BatchSteps onto the CPU: the same steps, run eagerly.
    return BatchSteps(loss_fn, optimizer, n_batches=n_batches, bsz=bsz, device=device, graph=device.type == "cuda")


def pad_batches(perm: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches of ``perm`` (consecutive chunks of ``size``) as an index matrix.

    Returns:
        ``(idx (n_batches, size), live (n_batches, size))``. A shorter last batch is padded
        with one of its own rows, marked not live. Live entries, read row by row, are
        ``perm`` itself, so ``matrix.reshape(-1)[:n]`` lists per-row results in ``perm`` order.
    """
    n = perm.numel()
    n_batches = -(-n // size)
    flat = perm.new_empty(n_batches * size)
    flat[:n] = perm
    flat[n:] = perm[(n_batches - 1) * size]
    live = torch.arange(n_batches * size, device=perm.device) < n
    return flat.view(n_batches, size), live.view(n_batches, size)


_CAPTURE_STREAMS: dict[int, Any] = {}
_CAPTURE_LOCK = threading.Lock()  # fits in two threads must not capture on the shared stream at once


def _capture_stream(device: torch.device) -> Any:
    """One side stream per CUDA device for every capture (its warm-up steps and the capture itself).

    cuBLAS keeps a workspace (64 MB on an H200) for each stream it has run on, for the life of
    the process: a new stream per fit made every fit leave one behind (measured 2026-12-04:
    two per fit, memory growing by 130 MB a fit), until torch's pool of streams came round again.
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _CAPTURE_STREAMS:
        _CAPTURE_STREAMS[index] = torch.cuda.Stream(device=index)
    return _CAPTURE_STREAMS[index]


class BatchSteps:
    """An epoch of training steps over equal-sized batches, replayed from one captured CUDA graph.

    A small network at batch 32 is launch-bound on a GPU: a step of LossVal's 3-layer MLP is
    about 58 kernel launches, each costing the host more than the GPU's work (measured on an
    H200: 1.2 ms per step, slower than the 2-core CPU). Here each step reads its batch from
    static device buffers through a step counter that lives on the device, so one captured
    graph serves every step of every epoch: one launch per step.

    A step minimises ``dot(loss_fn(idx), coef)`` over the batch: per-row coefficients cover a
    weighted loss (LossVal's), a mean (``1 / batch rows``) and padding (``0``: a padded row
    contributes exact zeros to the gradient). The last, shorter batch of an epoch is padded
    (:func:`pad_batches`), so every step has one shape.

    The first :data:`WARMUP_STEPS` steps of the first epoch run eagerly on a side stream (torch
    needs a few before capture); they are real steps. With ``graph=False`` every step runs
    eagerly, on any device: the same code, which is how the CPU tests check it. If capture
    fails, a warning says so and the steps run eagerly.

    Args:
        loss_fn: ``idx (bsz,) -> per-row loss (bsz,)``, differentiable in the network's parameters.
        optimizer: The network's :class:`FlatAdam` (with ``graph``, one whose :attr:`~FlatAdam.capturable`).
        n_batches, bsz: Shape of every epoch.
        device: Where the buffers live (the network's device).
        graph: Capture and replay (CUDA only).
    """

    WARMUP_STEPS = 3

    def __init__(self, loss_fn: Callable[[torch.Tensor], torch.Tensor], optimizer: FlatAdam, *, n_batches: int,
                 bsz: int, device: torch.device, graph: bool) -> None:
        if graph and (device.type != "cuda" or not optimizer.capturable):
            raise ValueError("BatchSteps(graph=True) needs CUDA and a fused FlatAdam")
        self.loss_fn, self.optimizer = loss_fn, optimizer
        self.n_batches, self.bsz = int(n_batches), int(bsz)
        self.graph = bool(graph) and self.n_batches > self.WARMUP_STEPS
        self.idx = torch.zeros((self.n_batches, self.bsz), dtype=torch.long, device=device)
        self.coef = torch.zeros((self.n_batches, self.bsz), device=device)
        self.losses = torch.zeros((self.n_batches, self.bsz), device=device)
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self._captured: Any = None

    @property
    def replayed(self) -> bool:
        """Whether the steps run from a captured CUDA graph (False before the first epoch, or after a failed capture)."""
        return self._captured is not None

    def _step(self) -> None:
        b = self.counter
        row_loss = self.loss_fn(self.idx.index_select(0, b).view(-1))
        self.optimizer.zero_grad()
        torch.dot(row_loss, self.coef.index_select(0, b).view(-1)).backward()
        self.optimizer.step()
        with torch.no_grad():
            self.losses.index_copy_(0, b, row_loss.detach().view(1, -1))
            self.counter.add_(1)

    def _capture(self) -> int:
        """Run the warm-up steps, capture one step; returns how many steps ran."""
        with _CAPTURE_LOCK:
            return self._capture_locked(_capture_stream(self.idx.device))

    def _capture_locked(self, side: Any) -> int:
        side.wait_stream(torch.cuda.current_stream(self.idx.device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                self._step()
        torch.cuda.current_stream(self.idx.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            # Recorded, not run: the counter stays at WARMUP_STEPS. "thread_local": CUDA work of
            # other threads (a Prefect task runner's) does not break this capture.
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                self._step()
        except (RuntimeError, TypeError) as exc:  # TypeError: a torch too old for capture_error_mode
            warnings.warn(f"capturing the training step in a CUDA graph failed ({exc}); running it step by step "
                          f"instead (set {CUDA_GRAPHS_ENV}=0 to skip the attempt)", RuntimeWarning, stacklevel=4)
            self.graph = False
            return self.WARMUP_STEPS
        self._captured = graph
        return self.WARMUP_STEPS

    def run_mean_epoch(self, perm: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Train one epoch on the consecutive batches of ``perm``, each step on its batch's mean loss.

        ``weight`` (per row, ``(n,)``) multiplies each row's loss inside the mean, as
        ``(loss * weight).mean()`` does. Returns each row's loss at its step, in ``perm`` order ``(n,)``.
        """
        idx, live = pad_batches(perm, self.bsz)
        coef = live / live.sum(dim=1, keepdim=True)
        losses = self.run_epoch(idx, coef * weight[idx] if weight is not None else coef)
        return losses.reshape(-1)[:perm.numel()]

    def run_epoch(self, idx: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """Train one epoch on the batches ``idx`` ``(n_batches, bsz)`` with coefficients ``coef`` (same shape).

        Returns:
            Each entry's row loss at its step, ``(n_batches, bsz)`` (a new tensor; padding included).
        """
        with torch.no_grad():
            self.idx.copy_(idx)
            self.coef.copy_(coef)
            self.counter.zero_()
        done = 0
        if self.graph and self._captured is None:
            done = self._capture()
        for _ in range(done, self.n_batches):
            if self._captured is not None:
                self._captured.replay()
            else:
                self._step()
        return self.losses.clone()


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
    spelt = DEVICE_NAME.fullmatch(name)
    if spelt is None:
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
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
        count = torch.cuda.device_count()
        if spelt.group(1) is not None and int(spelt.group(1)) >= count:
            raise ConfigError(f"device={device!r} was requested but this machine has {count} visible CUDA "
                              f"device(s), cuda:0 to cuda:{count - 1} (CUDA_VISIBLE_DEVICES may hide others).")
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device='mps' was requested but MPS is not available; use 'auto' or 'cpu'.")
        return torch.device("mps")
    return torch.device("cpu")  # the one spelling left


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
        act = ACTIVATIONS[activation]
    except KeyError:
        raise ConfigError(
            f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None
    layers: list[nn.Module] = []
    fan_in = n_inputs
    for _ in range(n_layers - 1):
        layers += [nn.Linear(fan_in, width), act()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_outputs))
    return nn.Sequential(*layers)


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """torch's CPU generator seeded with ``seed`` inside the block (for a network's initial weights, made on the
    CPU), and the caller's state put back after.

    ``torch.manual_seed`` would also reseed every CUDA (and MPS) generator, which ``fork_rng(devices=[])`` does
    not save: the caller's GPU random draws would restart from ``seed`` after each fit.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """torch's default dtype set to float32 inside the block and put back after.

    Every tensor lossval makes is float32 (the data, the network, the weights and their Adam
    state); a caller's ``torch.set_default_dtype(torch.float64)`` would otherwise build the
    network and the weights in float64 and the first step would fail (float vs double), and MPS
    has no float64 at all. The setting is process-wide, as :func:`cpu_threads`'s is.
    """
    previous = torch.get_default_dtype()
    if previous == torch.float32:
        yield
        return
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block and put back after (``None``: unchanged).

    The setting is process-wide: fits running at once in threads of one process share it.
    """
    if n is None or n == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ProgressBar:
    """Progress on stderr: a one-line bar on a terminal, a plain line every ``every_s`` seconds elsewhere.

    Off a terminal (CI, cron, ``nohup``, a log file) a long fit would otherwise say nothing for
    minutes; a fit shorter than ``every_s`` prints nothing there.

    Args:
        total: Number of steps.
        label: Text before the bar.
        enabled: Report at all (``verbose``).
        stream: Where to write (default ``sys.stderr``).
        every_s: Seconds between plain lines when the stream is not a terminal.
    """

    def __init__(self, total: int, *, label: str, enabled: bool = True, stream: TextIO | None = None,
                 every_s: float = 30.0) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(enabled) and bool(isatty())
        self.plain = bool(enabled) and not self.enabled
        self.every_s = float(every_s)
        self.start = time.perf_counter()
        self.last_line = self.start
        self.done = 0

    def update(self, n: int = 1, *, info: str = "") -> None:
        """Advance by ``n`` steps and redraw (a terminal) or, when ``every_s`` has passed, write a line."""
        self.done += n
        if not (self.enabled or self.plain):
            return
        now = time.perf_counter()
        frac = min(self.done / self.total, 1.0)
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        if self.plain:
            if now - self.last_line >= self.every_s and self.done < self.total:
                self.last_line = now
                self.stream.write(f"{self.label}: {self.done}/{self.total} after {elapsed:.0f} s, "
                                  f"about {eta:.0f} s left {info}".rstrip() + "\n")
                self.stream.flush()
            return
        filled = int(round(24 * frac))
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
