"""Retraining: the same MLP family trained on all rows, on kept rows, or with row weights,
and the test metrics that the gate compares.

A classifier can be calibrated after training (:func:`fit_temperature`): one temperature,
fitted on the trusted validation split, divides its logits. Accuracy does not change (the
argmax is the same); log-loss does: a model trained on pruned rows is often overconfident.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from lossval._checks import finite_number, is_integer
from lossval._robust import mean_and_std, power_of_two_unit
from lossval._torchutil import (FlatAdam, batch_steps_for, cpu_threads, float32_default, make_mlp, per_row_loss,
                                resolve_device, seeded_init)
from lossval.errors import ConfigError, InputError

__all__ = ["TabularModel", "fit_model", "fit_temperature", "evaluate", "METRICS", "HIGHER_IS_BETTER",
           "TEMPERATURE_RANGE", "MIN_CALIBRATION_ROWS"]

METRICS = {"classification": ("accuracy", "macro_f1", "log_loss"), "regression": ("rmse", "mae", "r2")}
HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "log_loss": False, "rmse": False, "mae": False, "r2": True}
TEMPERATURE_RANGE = (0.25, 20.0)  # a fitted temperature stays in here (a perfectly separated split would drive it to 0)
MIN_CALIBRATION_ROWS = 20  # fewer validation rows (or one class): no calibration, temperature 1


class TabularModel(nn.Module):
    """An MLP over encoded features that returns class probabilities or targets in original units.

    Args:
        n_inputs: Encoded features.
        n_outputs: Classes (classification) or 1 (regression).
        task: ``classification`` or ``regression``.
        y_mean, y_scale: Target standardisation undone in ``forward`` (regression).
    """

    def __init__(self, n_inputs: int, n_outputs: int, *, task: str, y_mean: float = 0.0, y_scale: float = 1.0,
                 n_layers: int = 3, width: int = 64) -> None:
        super().__init__()
        self.task = task
        self.n_layers, self.width = n_layers, width  # the shape, which the state dict alone does not say
        activation = "relu" if task == "classification" else "tanh"
        self.net = make_mlp(n_inputs, n_outputs, n_layers=n_layers, width=width, activation=activation)
        # Divides the logits in forward (classification); 1 = uncalibrated. Saved with the weights.
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_load_state_dict_pre_hook(_temperature_of_older_models)
        self.float()  # float32 whatever the caller's torch default dtype (loading a model for serving, too)
        # The target's standardisation stays in float64, and so does undoing it: in float32 a target around 1.7e9
        # was predicted on a grid of 128 (r2 -0.05 for 0.99), and a spread of 1e-46 stored as 0. Weights saved with
        # float32 ones load into these (copied, as precise as they were).
        self.register_buffer("y_mean", torch.tensor(float(y_mean), dtype=torch.float64))
        self.register_buffer("y_scale", torch.tensor(float(y_scale), dtype=torch.float64))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (classification) or standardised predictions (regression), ``(n, n_outputs)``."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(n, C)`` or predictions ``(n, 1)`` in target units."""
        out = self.net(x)
        if self.task == "classification":
            return torch.softmax(out / self.temperature, dim=1)
        return out.to(self.y_mean.dtype) * self.y_scale + self.y_mean  # float64 (on the CPU, where models are served)


def _temperature_of_older_models(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Weights saved before calibration existed have no ``temperature``: they load as uncalibrated (1)."""
    state_dict.setdefault(prefix + "temperature", torch.tensor(1.0))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature ``T`` that minimises the log-loss of ``softmax(logits / T)`` on ``(logits, y)``.

    Deterministic, in float64: a grid of 61 values spaced evenly in log T over
    :data:`TEMPERATURE_RANGE`, then 41 between the best one's neighbours (steps under 0.4%).
    1.0 when there are fewer than :data:`MIN_CALIBRATION_ROWS` rows or a single class: too
    little to fit it on.

    Args:
        logits: ``(n, C)`` raw outputs of a classifier.
        y: ``(n,)`` class indices.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if z.ndim != 2 or len(y) != z.shape[0] or len(y) < MIN_CALIBRATION_ROWS or len(np.unique(y)) < 2:
        return 1.0
    rows = np.arange(len(y))

    def nll(temps: np.ndarray) -> np.ndarray:
        out = np.empty(len(temps))
        step = max(1, (1 << 24) // z.size)  # temperatures at a time: at most 16M float64 values (128 MB) in flight
        for i in range(0, len(temps), step):
            scaled = z[None, :, :] / temps[i:i + step, None, None]  # (T, n, C)
            top = scaled.max(axis=2, keepdims=True)
            log_norm = top[:, :, 0] + np.log(np.exp(scaled - top).sum(axis=2))
            out[i:i + step] = (log_norm - scaled[:, rows, y]).mean(axis=1)
        return out

    # The log-loss is convex in 1/T: a coarse grid (steps of 7.6%) finds the best cell, a fine one
    # (41 values between its neighbours, steps under 0.4%) the temperature.
    coarse = np.exp(np.linspace(np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1]), 61))
    best = int(np.argmin(nll(coarse)))
    fine = np.exp(np.linspace(np.log(coarse[max(best - 1, 0)]), np.log(coarse[min(best + 1, len(coarse) - 1)]), 41))
    return float(fine[int(np.argmin(nll(fine)))])


# Largest target mean or spread the model's float32 output (x std + mean) is trusted with: room for predictions
# a hundred spreads out before float32 overflows.
_TARGET_LIMIT = 1e30


def fit_model(X: np.ndarray, y: np.ndarray, *, device: str = "auto", **settings: Any) -> TabularModel:
    """Train a :class:`TabularModel` (see :func:`_fit_model` for the arguments).

    On the CPU it trains with one torch thread, as LossVal does (``cpu_threads``): as fast on
    an idle machine, far faster on a busy one, and the same weights whatever the load.

    Raises:
        ConfigError: ``epochs``, ``batch_size`` or ``seed`` is not an integer in its range, or ``lr`` not a
            positive finite number (a bool is neither), named.
    """
    settings = _checked_settings(settings)
    with cpu_threads(1 if resolve_device(device).type == "cpu" else None), float32_default():
        return _fit_model(X, y, device=device, **settings)


def _checked_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with ``epochs``, ``batch_size`` and ``seed`` as Python ints (torch takes no numpy integer as a
    seed) and ``lr`` as a float; ConfigError, naming it, for one that would train wrong or fail deep inside torch."""
    from lossval.valuation import MAX_EPOCHS

    wanted = {"epochs": (1, MAX_EPOCHS, f"an integer between 1 and {MAX_EPOCHS}"),
              "batch_size": (1, None, "a positive integer"),
              "seed": (0, 2**64 - 1, "an integer in [0, 2**64)")}
    for name, (low, high, what) in wanted.items():
        value = settings.get(name, low)  # left out: _fit_model's default, which is valid
        if not (is_integer(value) and low <= value and (high is None or value <= high)):
            raise ConfigError(f"fit_model's {name} must be {what}, got {value!r}")
    # As LossVal's lr: 0 or below, NaN or inf trained silently (NaN weights), a bool or text as a number.
    if "lr" in settings and not (finite_number(settings["lr"]) and settings["lr"] > 0):
        raise ConfigError(f"fit_model's lr must be a positive number, got {settings['lr']!r}")
    lr = {"lr": float(settings["lr"])} if "lr" in settings else {}
    return {**settings, **{k: int(settings[k]) for k in wanted if k in settings}, **lr}


def _fit_model(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    n_classes: int | None = None,
    sample_weight: np.ndarray | None = None,
    calibrate_on: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.003,
    seed: int = 0,
    device: str = "auto",
) -> TabularModel:
    """Train a :class:`TabularModel`.

    Args:
        X: Encoded features ``(n, d)``.
        y: Class indices ``(n,)`` in ``[0, n_classes)`` or float targets.
        task: ``classification`` or ``regression``.
        n_classes: Number of classes (classification).
        sample_weight: Optional non-negative per-row weights ``(n,)`` (soft cleaning).
        calibrate_on: ``(X, y)`` of trusted rows (the validation split) to fit the model's
            temperature on after training (:func:`fit_temperature`); classification only.
        epochs, batch_size, lr, seed: Training settings (Adam).
        device: As in :func:`lossval._torchutil.resolve_device`.

    Returns:
        The trained model, in eval mode, on the CPU (ready to save or log).
    """
    if len(y) == 0 or np.shape(X)[0] != len(y):
        raise InputError(f"fit_model needs at least one training row and one target per row; got {np.shape(X)[0]} "
                         f"row(s) and {len(y)} target(s).")
    dev = resolve_device(device)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32), device=dev)
    if task == "classification":
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
        y_mean, y_scale, n_out = 0.0, 1.0, int(n_classes or int(yt.max()) + 1)
    else:
        yf = np.asarray(y, dtype=np.float64)
        mean, std = mean_and_std(yf)  # numpy's std is 0 for a target of magnitude 1e-160: it went unscaled
        y_mean, y_scale, n_out = float(mean), float(std) or 1.0, 1
        if not (np.isfinite(yf).all() and np.isfinite(y_mean) and np.isfinite(y_scale)):
            bad = np.flatnonzero(~np.isfinite(yf))
            what = (f"row {int(bad[0])} is {float(yf[bad[0]])!r} ({len(bad)} non-finite)" if len(bad)
                    else f"largest |y| {np.abs(yf).max():.3g}")
            raise InputError(f"the regression target must be finite and small enough to standardise in float64 "
                             f"({what}); drop non-finite rows or rescale it.")
        if max(abs(y_mean), y_scale) > _TARGET_LIMIT:
            raise InputError(f"the regression target reaches |y| {np.abs(yf).max():.3g}: the model predicts in float32 "
                             f"(largest about 3.4e38), so its predictions would overflow; divide the target by a "
                             f"power of ten (to below {_TARGET_LIMIT:.0e}) and run again.")
        yt = torch.as_tensor((yf - y_mean) / y_scale, dtype=torch.float32, device=dev)
    w = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (len(y),) or not np.isfinite(sw).all():
            bad = np.flatnonzero(~np.isfinite(sw)) if sw.shape == (len(y),) else []
            raise InputError(f"sample_weight must be {len(y)} finite numbers; got shape {sw.shape}"
                             + (f", {len(bad)} non-finite, first at row {int(bad[0])}" if len(bad) else "") + ".")
        sw = np.clip(sw, 0.0, None)
        if sw.mean() > 0:
            sw = sw / sw.mean()
        else:
            warnings.warn("every sample weight is 0 or negative: training with equal weights instead", UserWarning,
                          stacklevel=2)
            sw = np.ones_like(sw)
        w = torch.as_tensor(sw, dtype=torch.float32, device=dev)
    with seeded_init(seed):
        model = TabularModel(Xt.shape[1], n_out, task=task, y_mean=y_mean, y_scale=y_scale)
    model.net.to(dev)  # training reads the network alone (raw); the float64 target buffers stay on the CPU (MPS has no float64)
    opt = FlatAdam(model.parameters(), lr=lr)
    gen = torch.Generator()  # on the CPU whatever the device: a seed gives the same batches on CPU and CUDA
    gen.manual_seed(seed)
    model.train()
    n = Xt.shape[0]

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        return per_row_loss(model.raw(Xt[idx]), yt[idx], task)

    steps = batch_steps_for(loss_of, opt, n=n, bsz=min(batch_size, n), device=dev)  # CUDA: one graph per step
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(dev, non_blocking=True)
        if steps is not None:
            steps.run_mean_epoch(perm, w)  # the same weighted mean loss per batch
            continue
        for idx in torch.split(perm, batch_size):
            per_row = loss_of(idx)
            loss = (per_row * w[idx]).mean() if w is not None else per_row.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    opt.release()
    model = model.eval().cpu()
    if calibrate_on is not None and task == "classification":
        with torch.no_grad():
            logits = model.raw(torch.as_tensor(np.asarray(calibrate_on[0], dtype=np.float32))).numpy()
        model.temperature.fill_(fit_temperature(logits, calibrate_on[1]))
    return model


def evaluate(model: TabularModel, X: np.ndarray, y: np.ndarray, *, task: str, n_classes: int | None = None) -> dict[str, float]:
    """Test metrics: accuracy, macro-F1, log-loss (classification) or RMSE, MAE, R^2 (regression)."""
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy().astype(np.float64)
    if task == "classification":
        y = np.asarray(y, dtype=np.int64)
        k = int(n_classes or out.shape[1])
        pred = out.argmax(axis=1)
        f1s = []
        for c in range(k):
            tp = np.sum((pred == c) & (y == c))
            denom = np.sum(pred == c) + np.sum(y == c)
            if np.sum(y == c) > 0 or np.sum(pred == c) > 0:
                f1s.append(2 * tp / denom if denom else 0.0)
        proba = np.clip(out[np.arange(len(y)), y], 1e-12, 1.0)
        return {"accuracy": float(np.mean(pred == y)), "macro_f1": float(np.mean(f1s)),
                "log_loss": float(-np.mean(np.log(proba)))}
    y = np.asarray(y, dtype=np.float64)
    # The residuals and the target each in units of a power of two near their own size (exact): squares of a 1e-170
    # target underflowed, so its rmse read 0 and its r2 0 whatever the predictions; and in the target's units alone,
    # predictions of magnitude 1 against such a target overflowed (rmse inf).
    resid = y - out[:, 0]
    unit, y_unit = float(power_of_two_unit(resid)), float(power_of_two_unit(y))
    resid, y = resid / unit, y / y_unit
    ss_res, ss_tot = float(np.sum(resid**2)), float(np.sum((y - y.mean()) ** 2))
    with np.errstate(over="ignore"):  # an r2 below about -1e308 reads -inf
        r2 = 1.0 - ss_res / ss_tot * (np.float64(unit) / y_unit) ** 2 if ss_res else 1.0
    return {"rmse": float(np.sqrt(np.mean(resid**2))) * unit, "mae": float(np.mean(np.abs(resid))) * unit,
            "r2": float(r2) if ss_tot > 0 else 0.0}
