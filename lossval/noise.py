"""Loss-distribution noise model: a two-component Beta mixture on per-row losses.

Rows with wrong labels are fitted late and badly, so their training loss stays high.
Following Arazo et al. (ICML 2019, "Unsupervised label noise modeling and loss
correction"), the per-row losses are normalised into (0, 1) and modelled as a mixture
of two Beta distributions; the component with the larger mean is the "noisy" one and
its posterior responsibility is each row's probability of being noisy.

The mixture is fitted by EM whose M-step is a weighted method of moments (closed form,
no inner optimisation). Everything is deterministic: the initial split is at the
median rank, and ``seed`` only breaks ties among equal losses.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> losses = np.concatenate([rng.gamma(2.0, 0.1, 900), rng.gamma(20.0, 0.1, 100)])
>>> p_noisy = BetaMixture().fit(losses).predict_proba(losses)
>>> bool(p_noisy[900:].mean() > 0.9 and p_noisy[:900].mean() < 0.1)
True
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from lossval._checks import as_finite_1d, is_integer, tensor_to_numpy
from lossval.errors import ConfigError, InputError

__all__ = ["normalize_losses", "BetaMixture", "loss_noise_probability"]

_MIN_ROWS = 4
# Smallest component variance the M-step accepts; keeps alpha, beta finite.
_MIN_VARIANCE = 1e-8
# m(1-m)/v must exceed 1 for positive alpha, beta; keep a margin so they stay > 0.
_MIN_MOMENT_RATIO = 1.0 + 1e-6
_MIN_WEIGHT = 1e-12


def _as_finite_1d(values: Any, *, name: str) -> np.ndarray:
    return as_finite_1d(values, name=name, purpose="fitting the noise model", allow_empty=True)


def _is_number(value: Any) -> bool:
    """A real number (numpy too), not a bool or text, and not NaN."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and not math.isnan(value))


def _check_percentiles(lower_percentile: float, upper_percentile: float) -> None:
    if not (_is_number(lower_percentile) and _is_number(upper_percentile)
            and 0.0 <= lower_percentile < upper_percentile <= 100.0):
        raise ConfigError(
            "need 0 <= lower_percentile < upper_percentile <= 100; got "
            f"lower_percentile={lower_percentile!r}, upper_percentile={upper_percentile!r}"
        )


def _check_eps(eps: float) -> None:
    if not (_is_number(eps) and 0.0 < eps < 0.5):
        raise ConfigError(f"eps must be in (0, 0.5); got {eps}")


def _loss_bounds(
    losses: np.ndarray, lower_percentile: float, upper_percentile: float, *, name: str, min_range: float = 0.0
) -> tuple[float, float]:
    """Robust (low, high) bounds for min-max scaling, falling back to min/max.

    The percentiles are used when they lie more than ``min_range`` apart; else (more than the trimmed
    share of rows share one loss, or lie within ``min_range`` of each other) the full range is.

    Raises:
        InputError: If all losses are equal (nothing to scale), or their range overflows float64.
    """
    smallest, largest = float(losses.min()), float(losses.max())
    if not math.isfinite(largest - smallest):  # the scaling would divide by inf: NaN, or every row at one end
        raise InputError(
            f"the values of {name} span more than float64 holds (from {smallest!r} to {largest!r}); the scaling "
            "into (0, 1) needs their range: rescale them first (divide by a power of ten)."
        )
    low, high = np.percentile(losses, [lower_percentile, upper_percentile])
    if not high - low > min_range:
        low, high = float(losses.min()), float(losses.max())
    if not high > low:
        raise InputError(
            f"all {losses.size} values of {name} are equal ({float(losses[0])!r}); a loss "
            "distribution with no spread cannot separate clean from noisy rows."
        )
    return float(low), float(high)


def _scale_into_unit(losses: np.ndarray, low: float, high: float, eps: float) -> np.ndarray:
    """Clip to [low, high] and map linearly onto [eps, 1 - eps] (order-preserving)."""
    unit = (np.clip(losses, low, high) - low) / (high - low)
    return eps + (1.0 - 2.0 * eps) * unit


def normalize_losses(
    losses: Any,
    *,
    lower_percentile: float = 5.0,
    upper_percentile: float = 95.0,
    eps: float = 1e-4,
) -> np.ndarray:
    """Robust min-max scaling of losses into the open unit interval.

    The bounds are the ``lower_percentile`` and ``upper_percentile`` percentiles of the
    losses (the full min/max if those coincide); losses are clipped to the bounds and
    mapped linearly onto ``[eps, 1 - eps]``, so a Beta density is finite everywhere.
    The result is invariant to positive scaling and shifting of the losses.

    Args:
        losses: Per-row losses, shape ``(n,)``, any real scale.
        lower_percentile: Percentile (0-100) mapped to ``eps``.
        upper_percentile: Percentile (0-100) mapped to ``1 - eps``.
        eps: Margin kept from 0 and 1, in ``(0, 0.5)``.

    Returns:
        Float array of shape ``(n,)`` with values in ``[eps, 1 - eps]``, same order as
        the input.

    Raises:
        InputError: If ``losses`` is not 1-D, is empty, has NaN/inf, or all values are
            equal.
        ConfigError: If the percentiles or ``eps`` are out of range.

    >>> u = normalize_losses([0.0, 1.0, 2.0, 3.0, 4.0], lower_percentile=0, upper_percentile=100)
    >>> u.round(3).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> bool(u.min() > 0.0 and u.max() < 1.0)
    True
    """
    _check_percentiles(lower_percentile, upper_percentile)
    _check_eps(eps)
    arr = _as_finite_1d(losses, name="losses")
    if arr.size == 0:
        raise InputError("losses is empty; pass one loss per training row.")
    low, high = _loss_bounds(arr, lower_percentile, upper_percentile, name="losses")
    return _scale_into_unit(arr, low, high, eps)


def _log_beta_function(alpha: float, beta: float) -> float:
    return math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)


def _moments_to_beta(mean: float, variance: float) -> tuple[float, float]:
    """Method-of-moments Beta parameters, with mean and variance clamped to be valid."""
    mean = min(max(mean, 1e-6), 1.0 - 1e-6)
    max_variance = mean * (1.0 - mean) / _MIN_MOMENT_RATIO
    variance = min(max(variance, _MIN_VARIANCE), max_variance)
    common = mean * (1.0 - mean) / variance - 1.0
    return mean * common, (1.0 - mean) * common


class BetaMixture:
    """Two-component Beta mixture fitted by EM with a method-of-moments M-step.

    The constructor only stores options (scikit-learn style); :meth:`fit` learns the
    trailing-underscore attributes.

    Args:
        max_iter: Maximum EM iterations (>= 1).
        tol: Stop when the mean per-row log-likelihood changes by less than this.
        lower_percentile: Lower percentile used by :func:`normalize_losses` in :meth:`fit`.
        upper_percentile: Upper percentile used by :func:`normalize_losses` in :meth:`fit`.
        seed: Orders equal losses in the initial median split. Equal losses add the same to
            whichever component they start in, so the fit does not depend on it beyond float
            rounding (tested); it stays so that existing calls keep working.
        min_range: The percentiles bound the scaling only when they lie more than this apart (in
            the losses' units); else the full min/max range does. :meth:`LossVal.noise_probability`
            passes its float-rounding floor, so that when 95% of the rows are fit to rounding, the
            mixture is not fitted on rounding differences stretched over (0, 1).

    Attributes:
        alphas_: Beta ``alpha`` per component, shape ``(2,)``.
        betas_: Beta ``beta`` per component, shape ``(2,)``.
        weights_: Mixture weights, shape ``(2,)``, summing to 1.
        noisy_component_: Index (0 or 1) of the component with the larger mean.
        n_iter_: EM iterations run.
        converged_: Whether the tolerance was reached within ``max_iter``.
        log_likelihood_: Total log-likelihood of the fitted data (normalised scale).
        lower_bound_, upper_bound_: Raw-loss bounds remembered by :meth:`fit`; ``None``
            after :meth:`fit_normalized`.

    Posterior monotonicity: with Beta tails the raw posterior P(noisy | u) can turn
    back at the extremes (e.g. a wide clean component claims the very largest losses).
    :meth:`predict_proba` therefore, by default, makes P(noisy) non-decreasing above
    the noisy component's mean and non-increasing (as the loss falls) below the clean
    component's mean; between the two means it is the plain posterior. On the log-odds
    scale ``f(u) = c + A log u + B log(1-u)`` has at most one turning point, so the
    clamp is computed exactly, not on a grid. The EM E-step uses the same clamped
    posterior as responsibilities: the robust normalisation clips the lowest losses
    onto a point mass near 0, and with the plain posterior a U-shaped "noisy"
    component claims that mass and the fit never recovers (a deliberate departure
    from textbook EM; on data where the plain posterior is already monotone, e.g. a
    true Beta(2, 8) + Beta(8, 2) mixture, the two coincide).
    """

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-6,
        lower_percentile: float = 5.0,
        upper_percentile: float = 95.0,
        seed: int = 0,
        min_range: float = 0.0,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.lower_percentile = lower_percentile
        self.upper_percentile = upper_percentile
        self.seed = seed
        self.min_range = min_range

    # ------------------------------------------------------------------ fitting
    def fit(self, losses: Any) -> BetaMixture:
        """Normalise raw losses (remembering the bounds) and fit the mixture.

        Args:
            losses: Per-row losses, shape ``(n,)`` with ``n >= 4``, any real scale.

        Returns:
            ``self``, fitted.

        Raises:
            InputError: Non-1-D input, fewer than 4 rows, NaN/inf, or all losses equal.
            ConfigError: Invalid constructor options.
        """
        self._check_options()
        arr = _as_finite_1d(losses, name="losses")
        self._check_row_count(arr, name="losses")
        low, high = _loss_bounds(arr, self.lower_percentile, self.upper_percentile, name="losses",
                                 min_range=self.min_range)
        self._fit_unit(_scale_into_unit(arr, low, high, self._eps))
        self.lower_bound_: float | None = low
        self.upper_bound_: float | None = high
        return self

    def fit_normalized(self, u: Any) -> BetaMixture:
        """Fit on values already in the open interval (0, 1); no normalisation.

        Args:
            u: Values in ``(0, 1)``, shape ``(n,)`` with ``n >= 4``.

        Returns:
            ``self``, fitted. :meth:`predict_proba` then takes values on the same
            (0, 1) scale.

        Raises:
            InputError: Non-1-D input, fewer than 4 rows, NaN/inf, values outside
                (0, 1), or all values equal.
            ConfigError: Invalid constructor options.
        """
        self._check_options()
        arr = self._check_unit(u)
        self._check_row_count(arr, name="u")
        if np.all(arr == arr[0]):
            raise InputError(
                f"all {arr.size} values of u are equal ({float(arr[0])!r}); the mixture needs spread."
            )
        self._fit_unit(arr)
        self.lower_bound_ = None
        self.upper_bound_ = None
        return self

    # --------------------------------------------------------------- prediction
    def predict_proba(self, losses: Any, *, monotone: bool = True) -> np.ndarray:
        """P(noisy) per row: posterior of the component with the larger mean.

        Args:
            losses: Raw losses, shape ``(n,)``, on the scale given to :meth:`fit`
                (values outside the remembered bounds are clipped to them). After
                :meth:`fit_normalized`, values in ``(0, 1)`` instead.
            monotone: Apply the tail clamp described in the class docstring.

        Returns:
            Float array of shape ``(n,)`` with values in ``[0, 1]``.

        Raises:
            InputError: Bad input (see :meth:`fit` / :meth:`fit_normalized`).
            RuntimeError: If the mixture is not fitted.
        """
        if not hasattr(self, "lower_bound_"):
            raise RuntimeError("BetaMixture is not fitted; call fit() or fit_normalized() first.")
        if self.lower_bound_ is None:
            unit = self._check_unit(losses)
        else:
            arr = _as_finite_1d(losses, name="losses")
            unit = _scale_into_unit(arr, self.lower_bound_, self.upper_bound_, self._eps)
        return self._noisy_posterior(unit, monotone=monotone)

    # ---------------------------------------------------------------- internals
    _eps = 1e-4

    def _check_options(self) -> None:
        if not (is_integer(self.max_iter) and self.max_iter >= 1):
            raise ConfigError(f"max_iter must be an integer >= 1; got {self.max_iter!r}")
        if not (_is_number(self.tol) and self.tol >= 0.0):
            raise ConfigError(f"tol must be a number >= 0; got {self.tol!r}")
        if not (is_integer(self.seed) and self.seed >= 0):
            raise ConfigError(f"seed must be an integer >= 0; got {self.seed!r}")
        if not (_is_number(self.min_range) and self.min_range >= 0.0):
            raise ConfigError(f"min_range must be a number >= 0; got {self.min_range!r}")
        _check_percentiles(self.lower_percentile, self.upper_percentile)

    @staticmethod
    def _check_row_count(arr: np.ndarray, *, name: str) -> None:
        if arr.size < _MIN_ROWS:
            raise InputError(
                f"{name} has {arr.size} row(s); the Beta mixture needs at least {_MIN_ROWS}. "
                "Use a larger training set or skip the noise model."
            )

    @staticmethod
    def _check_unit(u: Any) -> np.ndarray:
        arr = _as_finite_1d(u, name="u")
        outside = (arr <= 0.0) | (arr >= 1.0)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise InputError(
                f"u must lie strictly inside (0, 1); row {first} is {float(arr[first])!r}. "
                "Normalise raw losses with normalize_losses() or use fit()/predict_proba()."
            )
        return arr

    def _component_log_densities(self, unit: np.ndarray) -> np.ndarray:
        """log(weight_k * Beta_k(u)), shape ``(2, n)``."""
        log_u, log_1mu = np.log(unit), np.log1p(-unit)
        rows = []
        for k in range(2):
            a, b = self.alphas_[k], self.betas_[k]
            rows.append(
                math.log(self.weights_[k])
                + (a - 1.0) * log_u
                + (b - 1.0) * log_1mu
                - _log_beta_function(a, b)
            )
        return np.vstack(rows)

    def _e_step(self, unit: np.ndarray) -> tuple[np.ndarray, float]:
        """Responsibilities ``(2, n)`` and total log-likelihood, in log space.

        The responsibilities are the tail-clamped posterior (see the class docstring):
        without the clamp, rows clipped to the lower bound (a point mass near 0) are
        claimed by a U-shaped "noisy" component, which then never recovers.
        """
        log_joint = self._component_log_densities(unit)
        top = log_joint.max(axis=0)
        log_norm = top + np.log(np.exp(log_joint - top).sum(axis=0))
        self._set_noisy_component()
        p_noisy = self._noisy_posterior(unit, monotone=True)
        resp = np.empty((2, unit.size))
        resp[self.noisy_component_] = p_noisy
        resp[1 - self.noisy_component_] = 1.0 - p_noisy
        return resp, float(log_norm.sum())

    def _set_noisy_component(self) -> None:
        means = self.alphas_ / (self.alphas_ + self.betas_)
        self.noisy_component_ = int(np.argmax(means))

    def _m_step(self, unit: np.ndarray, resp: np.ndarray) -> None:
        alphas, betas, weights = np.empty(2), np.empty(2), np.empty(2)
        for k in range(2):
            r = resp[k]
            total = float(r.sum())
            if total <= _MIN_WEIGHT * unit.size:
                # An emptied component keeps its previous shape; only its weight shrinks.
                alphas[k], betas[k] = self.alphas_[k], self.betas_[k]
            else:
                mean = float(r @ unit) / total
                variance = float(r @ (unit - mean) ** 2) / total
                alphas[k], betas[k] = _moments_to_beta(mean, variance)
            weights[k] = max(total / unit.size, _MIN_WEIGHT)
        self.alphas_, self.betas_ = alphas, betas
        self.weights_ = weights / weights.sum()

    def _initial_responsibilities(self, unit: np.ndarray) -> np.ndarray:
        """Hard split at the median rank; the seed only orders equal values."""
        tie_break = np.random.default_rng(self.seed).permutation(unit.size)
        order = np.lexsort((tie_break, unit))
        resp = np.zeros((2, unit.size))
        half = unit.size // 2
        resp[0, order[:half]] = 1.0
        resp[1, order[half:]] = 1.0
        return resp

    def _fit_unit(self, unit: np.ndarray) -> None:
        n = unit.size
        self.alphas_ = np.ones(2)
        self.betas_ = np.ones(2)
        self._m_step(unit, self._initial_responsibilities(unit))
        previous = -np.inf
        converged = False
        n_iter = 0
        log_likelihood = -np.inf
        for n_iter in range(1, self.max_iter + 1):
            resp, log_likelihood = self._e_step(unit)
            if abs(log_likelihood - previous) / n < self.tol:
                converged = True
                break
            previous = log_likelihood
            self._m_step(unit, resp)
        if not converged:
            _, log_likelihood = self._e_step(unit)
        self._set_noisy_component()
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.log_likelihood_ = log_likelihood

    def _noisy_log_odds(self, unit: np.ndarray) -> np.ndarray:
        noisy, clean = self.noisy_component_, 1 - self.noisy_component_
        a_diff = self.alphas_[noisy] - self.alphas_[clean]
        b_diff = self.betas_[noisy] - self.betas_[clean]
        offset = (
            math.log(self.weights_[noisy])
            - math.log(self.weights_[clean])
            - _log_beta_function(self.alphas_[noisy], self.betas_[noisy])
            + _log_beta_function(self.alphas_[clean], self.betas_[clean])
        )
        return offset + a_diff * np.log(unit) + b_diff * np.log1p(-unit)

    def _log_odds_extreme(
        self, left: np.ndarray, right: np.ndarray, *, largest: bool
    ) -> np.ndarray:
        """Max (or min) of the log-odds over each interval [left, right] (elementwise).

        d/du log-odds = A/u - B/(1-u) vanishes only at u* = A/(A+B), so the extreme
        over an interval is at an end point or at u* clipped into the interval.
        """
        noisy, clean = self.noisy_component_, 1 - self.noisy_component_
        a_diff = self.alphas_[noisy] - self.alphas_[clean]
        b_diff = self.betas_[noisy] - self.betas_[clean]
        has_turn = a_diff * b_diff > 0
        turn = a_diff / (a_diff + b_diff) if has_turn else 0.0
        inner = np.clip(turn, left, right) if has_turn else left
        candidates = np.vstack(
            [self._noisy_log_odds(left), self._noisy_log_odds(right), self._noisy_log_odds(inner)]
        )
        return candidates.max(axis=0) if largest else candidates.min(axis=0)

    def _noisy_posterior(self, unit: np.ndarray, *, monotone: bool) -> np.ndarray:
        log_odds = self._noisy_log_odds(unit)
        if monotone and unit.size:
            means = self.alphas_ / (self.alphas_ + self.betas_)
            noisy_mean = float(means[self.noisy_component_])
            clean_mean = float(means[1 - self.noisy_component_])
            above = unit > noisy_mean
            if above.any():
                # P(noisy) at u above the noisy mean = its running max from the mean up to u.
                log_odds[above] = self._log_odds_extreme(
                    np.full(int(above.sum()), noisy_mean), unit[above], largest=True
                )
            below = unit < clean_mean
            if below.any():
                # Mirror image: below the clean mean, the running min from u up to the mean.
                log_odds[below] = self._log_odds_extreme(
                    unit[below], np.full(int(below.sum()), clean_mean), largest=False
                )
        return 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700.0, 700.0)))


_BMM_OPTIONS = ("max_iter", "tol", "lower_percentile", "upper_percentile", "seed", "min_range")


def loss_noise_probability(
    loss_history: Any, *, last_epochs: int | None = None, **bmm_kwargs: Any
) -> np.ndarray:
    """P(noisy) per row from a per-epoch loss history.

    Each row's loss is averaged over the last ``last_epochs`` epochs (smoothing the
    epoch-to-epoch jitter), then a :class:`BetaMixture` is fitted on the averages.

    For the losses of your own model. For a fitted :class:`~lossval.valuation.LossVal`, use its
    ``noise_probability()``: it averages the last 10 epochs, lets identical rows share one P(noisy)
    and returns 0 for every row when all losses lie within float rounding of each other
    (``LOSS_SPREAD_FLOOR``, 1e-6); this function applies none of that, so on losses that differ only
    by rounding it still splits the rows.

    Args:
        loss_history: Per-row loss per epoch, shape ``(n_epochs, n_rows)``; a 1-D array
            is taken as a single epoch.
        last_epochs: How many trailing epochs to average (``1 <= last_epochs <=
            n_epochs``); ``None`` averages all.
        **bmm_kwargs: Options for :class:`BetaMixture` (``max_iter``, ``tol``,
            ``lower_percentile``, ``upper_percentile``, ``seed``).

    Returns:
        Float array of shape ``(n_rows,)`` with P(noisy) in ``[0, 1]``.

    Raises:
        InputError: Bad shape, NaN/inf (names epoch and row), fewer than 4 rows or no
            spread in the averaged losses.
        ConfigError: Bad ``last_epochs`` or an unknown BetaMixture option.

    Warns:
        UserWarning: A 2-D history with more epochs than rows, which is usually one passed
            as ``(n_rows, n_epochs)``; it is still read as ``(n_epochs, n_rows)``.
    """
    return _loss_noise_probability(loss_history, last_epochs=last_epochs, warn_transposed=True, **bmm_kwargs)


def _loss_noise_probability(
    loss_history: Any, *, last_epochs: int | None, warn_transposed: bool, **bmm_kwargs: Any
) -> np.ndarray:
    """:func:`loss_noise_probability`; ``warn_transposed=False`` for callers that know the orientation
    (a fit's own ``loss_history_``, where more epochs than rows is normal)."""
    unknown = sorted(set(bmm_kwargs) - set(_BMM_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown BetaMixture option(s) {unknown}; valid options: {list(_BMM_OPTIONS)}"
        )
    if hasattr(loss_history, "detach") and hasattr(loss_history, "cpu"):  # a torch tensor (GPU, or needing grad)
        loss_history = tensor_to_numpy(loss_history)
    try:
        history = np.asarray(loss_history, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"loss_history must be numeric ({exc})") from exc
    if history.ndim == 1:
        history = history[np.newaxis, :]
    if history.ndim != 2 or history.shape[0] == 0:
        raise InputError(
            f"loss_history must have shape (n_epochs, n_rows) with n_epochs >= 1; "
            f"got shape {np.shape(loss_history)}"
        )
    if warn_transposed and history.shape[1] >= 1 and history.shape[0] > history.shape[1]:
        # Not refused: a long fit on few rows has more epochs than rows.
        warnings.warn(
            f"loss_history has shape {history.shape}, more epochs than rows: it looks transposed. It is read "
            "as (n_epochs, n_rows); if rows are on axis 0, pass loss_history.T.",
            UserWarning,
            stacklevel=3,  # the caller of loss_noise_probability()
        )
    bad = ~np.isfinite(history)
    if bad.any():
        epoch, row = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"loss_history has {int(bad.sum())} non-finite value(s), first at epoch {epoch}, "
            f"row {row}; fix or drop those rows before estimating noise."
        )
    n_epochs = history.shape[0]
    if last_epochs is None:
        last_epochs = n_epochs
    if not (is_integer(last_epochs) and 1 <= last_epochs <= n_epochs):
        raise ConfigError(
            f"last_epochs must be an integer in [1, {n_epochs}] (the number of epochs); "
            f"got {last_epochs!r}"
        )
    mean_loss = history[-last_epochs:].mean(axis=0)
    # The mixture's own checks would name its argument ("losses"); say it in the terms of what was passed.
    if mean_loss.size < _MIN_ROWS:
        shape = f"shape {tuple(np.shape(loss_history))}" + ("" if np.ndim(loss_history) == 1 else
                                                             ", read as (n_epochs, n_rows)")
        raise InputError(
            f"loss_history has {mean_loss.size} row(s) ({shape}); the Beta mixture needs at least {_MIN_ROWS}. "
            + ("If rows are on axis 0, pass loss_history.T; else use " if n_epochs > mean_loss.size else "Use ")
            + "a larger training set or skip the noise model."
        )
    if mean_loss.min() == mean_loss.max():  # not np.ptp: it overflows on a range beyond float64 (refused below)
        over = ("its only epoch" if n_epochs == 1 else "its last epoch" if last_epochs == 1
                else f"its last {last_epochs} epochs")
        raise InputError(
            f"loss_history gives all {mean_loss.size} rows the same loss ({float(mean_loss[0])!r}, averaged over "
            f"{over}); a loss distribution with no spread cannot separate clean from noisy rows."
        )
    return BetaMixture(**bmm_kwargs).fit(mean_loss).predict_proba(mean_loss)
