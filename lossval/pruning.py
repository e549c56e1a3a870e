"""Pruning policies: turn per-row values (higher = more valuable) into keep/drop.

A policy flags candidate rows; :func:`prune` then applies two safety rails that every
policy honours:

1. **Class protection** (when ``labels`` are given): each class keeps at least
   ``min_rows_per_class`` rows, namely its highest-valued ones.
2. **Cap**: at most ``floor(max_prune_fraction * n)`` rows are dropped; when more are
   flagged, the most droppable are dropped first (lowest value; for the mixture policy
   highest P(noisy), then lowest value), ties broken by row position.

Everything is deterministic. Each dropped row gets a short human-readable reason that
names the policy and its threshold.

>>> import numpy as np
>>> values = np.array([0.90, 0.80, 0.05, 0.85, 0.02, 0.95])
>>> decision = prune(values, policy=TwoMeansPolicy(), max_prune_fraction=0.5)
>>> decision.keep.tolist()
[True, True, False, True, False, True]
>>> decision.reasons[2]
'value 0.0500 below two-means threshold 0.4250 (two_means policy)'
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from lossval._checks import as_finite_1d, column_name_hint, is_integer, warn_unaligned
from lossval.errors import ConfigError, InputError

__all__ = [
    "two_means_threshold",
    "format_value",
    "max_pruned",
    "PruneDecision",
    "PrunePolicy",
    "FractionPolicy",
    "ThresholdPolicy",
    "TwoMeansPolicy",
    "MixturePolicy",
    "prune",
    "make_policy",
]


# --------------------------------------------------------------------------- helpers
def _as_finite_1d(values: Any, *, name: str) -> np.ndarray:
    columns = getattr(values, "columns", None)
    if columns is not None and getattr(values, "ndim", None) == 2:  # a DataFrame: df[["value"]] is common
        if len(columns) != 1:
            shown = ", ".join(repr(c) for c in columns[:5]) + (", ..." if len(columns) > 5 else "")
            column = "value" if name == "values" else name  # its column in a values.parquet
            raise InputError(f"{name} is a DataFrame of {len(columns)} columns ({shown or 'none'}), but pruning "
                             f"takes one number per row: pass the column that holds the {name}, as a Series "
                             f"(df[{column!r}]) or a one-column DataFrame (df[[{column!r}]]).")
        values = values.iloc[:, 0]
    return as_finite_1d(values, name=name, purpose="pruning", allow_empty=False)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_fraction(x: Any, *, name: str) -> None:
    if not (_is_real(x) and 0.0 <= float(x) <= 1.0):
        raise ConfigError(f"{name} must be a number in [0, 1]; got {x!r}")


def _floor_count(fraction: float, n: int) -> int:
    """``floor(fraction * n)``, forgiving float round-off (0.29 * 100 -> 29, not 28)."""
    return min(n, math.floor(fraction * n * (1.0 + 1e-12)))


def max_pruned(max_prune_fraction: float, n: int) -> int:
    """The most rows of ``n`` that pruning may drop under ``max_prune_fraction`` (the cap :func:`prune` applies)."""
    return _floor_count(float(max_prune_fraction), int(n))


def format_value(x: float) -> str:
    """A value as reasons and summaries show it: four decimals for ordinary magnitudes, scientific otherwise."""
    if x == 0.0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4f}"
    return f"{x:.4e}"


def _value_order(values: np.ndarray) -> np.ndarray:
    """Row indices from lowest to highest value, ties by row position."""
    return np.lexsort((np.arange(values.size), values))


# ------------------------------------------------------------------------ two-means
def two_means_threshold(values: Any) -> float:
    """Threshold of the globally optimal 1-D 2-means split.

    In one dimension the optimal k-means clusters are contiguous in sorted order, so
    every split point of the sorted values is scored with prefix sums (O(n) after an
    O(n log n) sort) and the one with the smallest within-cluster sum of squares wins.
    Only splits between distinct values are considered, so identical values always
    share a cluster (an optimal split never separates them anyway). If several splits
    are equally good (to 1e-12 relative), the lowest threshold wins (fewest rows
    flagged).

    Args:
        values: Row values, shape ``(n,)``, finite.

    Returns:
        The midpoint between the largest value of the lower cluster and the smallest
        of the upper one. The lower cluster is exactly ``values < threshold``.
        ``-inf`` when there is no split (one row, or all values equal).

    Raises:
        InputError: If ``values`` is not 1-D, is empty, or has NaN/inf.

    >>> two_means_threshold([1.0, 1.0, 2.0, 10.0, 11.0])
    6.0
    >>> two_means_threshold([3.0, 3.0, 3.0])
    -inf
    """
    arr = _as_finite_1d(values, name="values")
    ordered = np.sort(arr)
    n = ordered.size
    if n < 2 or ordered[0] == ordered[-1]:
        return -math.inf
    # Scale by a power of two (exact) into (-2, 2), so sums of squares cannot overflow near the
    # float64 limit, then centre so the prefix sums do not lose precision on large offsets.
    unit = math.ldexp(1.0, math.frexp(max(abs(float(ordered[0])), abs(float(ordered[-1]))))[1] - 1)
    centred = ordered / unit - (ordered / unit).mean()
    prefix = np.cumsum(centred)
    lower_sizes = np.arange(1, n, dtype=np.float64)
    lower_sums = prefix[:-1]
    upper_sums = prefix[-1] - lower_sums
    # Within-cluster SSE = total SSE - between-cluster term; maximise the latter.
    between = lower_sums**2 / lower_sizes + upper_sums**2 / (n - lower_sizes)
    valid = ordered[:-1] < ordered[1:]
    between = np.where(valid, between, -np.inf)
    best = float(between.max())
    tolerance = 1e-12 * max(float(centred @ centred), np.finfo(float).tiny)
    split = int(np.flatnonzero(between >= best - tolerance)[0])  # lower = ordered[: split + 1]
    low, high = float(ordered[split]), float(ordered[split + 1])
    threshold = low / 2.0 + high / 2.0
    if not low < threshold:
        # Adjacent floats: the midpoint rounded down onto the lower value.
        threshold = high
    return threshold


# ------------------------------------------------------------------------- decision
@dataclass(frozen=True, eq=False, repr=False)
class PruneDecision:
    """What :func:`prune` decided.

    Attributes:
        keep: Bool array, shape ``(n,)``; ``False`` for dropped rows.
        reasons: Length-``n`` list; ``None`` for kept rows, a short reason naming the
            policy and its threshold for dropped rows.
        threshold: Value threshold to draw in plots: the configured threshold
            (threshold policy), the two-means threshold, the value of the highest
            flagged row (fraction policy); ``None`` for the mixture policy (its cut is
            on P(noisy), not on value) or when nothing was flagged by two-means /
            fraction.
        policy: Policy name (``"fraction"``, ``"threshold"``, ``"two_means"``,
            ``"mixture"``).
        n_candidates: Rows the policy flagged before class protection and the cap.
        capped: True if ``max_prune_fraction`` or class protection reduced the drop set.
        n_protected: Flagged rows that class protection kept (0 without ``labels``).
        cap_hit: True if more flagged rows were left after class protection than
            ``max_prune_fraction`` allows (of all rows, or of a class's rows), so the cap
            chose which of them go.
        class_cap_hit: True if only a class's share of the cap held flagged rows back (a
            class had more flagged rows than ``max_prune_fraction`` of its rows, and the cap
            on all rows did not bind).
        capped_classes: The labels of the classes whose share of the cap held flagged rows
            back, in label order (empty without ``labels``).
        n_kept_together: Rows that would have gone but were kept with the rest of their
            ``groups`` group, which the cap, the fraction count or class protection split.
        held_back: Length-``n`` list; for a row the policy flagged that is kept, what
            held it back: ``"class protection"``, ``"max_prune_fraction"`` (the cap, of all rows
            or of its class), ``"reviewed"`` (it would have gone, and ``keep`` held it) or
            ``"identical copies"`` (kept with its ``groups`` group); ``None`` for every other row.
        n_reviewed: Rows that would have been dropped and were kept because ``keep`` held them.
    """

    keep: np.ndarray
    reasons: list[str | None]
    threshold: float | None
    policy: str
    n_candidates: int
    capped: bool
    n_protected: int = 0
    cap_hit: bool = False
    class_cap_hit: bool = False
    capped_classes: tuple = ()
    n_kept_together: int = 0
    held_back: list[str | None] = field(default_factory=list)
    n_reviewed: int = 0

    @property
    def n_dropped(self) -> int:
        """Number of dropped rows."""
        return int((~self.keep).sum())

    @property
    def dropped_indices(self) -> np.ndarray:
        """Positions of dropped rows, ascending, shape ``(n_dropped,)``."""
        return np.flatnonzero(~self.keep)

    def __repr__(self) -> str:  # a summary: the per-row arrays can be millions long
        threshold = "None" if self.threshold is None else f"{self.threshold:.6g}"
        return (f"PruneDecision(policy={self.policy!r}, rows={len(self.keep)}, dropped={self.n_dropped}, "
                f"threshold={threshold}, n_candidates={self.n_candidates}, capped={self.capped}, "
                f"n_protected={self.n_protected}, cap_hit={self.cap_hit})")


# ------------------------------------------------------------------------- policies
class PrunePolicy:
    """Base of the pruning policies; subclasses flag rows and word the reasons."""

    name: ClassVar[str] = ""
    needs_noise_prob: ClassVar[bool] = False

    def _flag(
        self, values: np.ndarray, noise_prob: np.ndarray | None
    ) -> tuple[np.ndarray, float | None]:
        """Flagged rows (bool ``(n,)``) and the value threshold for plots."""
        raise NotImplementedError

    def _drop_order(self, values: np.ndarray, noise_prob: np.ndarray | None) -> np.ndarray:
        """All row indices, most droppable first (used by the cap)."""
        return _value_order(values)

    def _reason(self, value: float, noise_prob: float | None, threshold: float | None) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class FractionPolicy(PrunePolicy):
    """Drop the lowest-valued ``floor(fraction * n)`` rows (ties by row position).

    Args:
        fraction: Share of rows to flag, in ``[0, 1]``.
    """

    fraction: float
    name: ClassVar[str] = "fraction"

    def __post_init__(self) -> None:
        _check_fraction(self.fraction, name="fraction")

    def _flag(self, values, noise_prob):
        count = _floor_count(float(self.fraction), values.size)
        flagged = np.zeros(values.size, dtype=bool)
        if count == 0:
            return flagged, None
        lowest = _value_order(values)[:count]
        flagged[lowest] = True
        return flagged, float(values[lowest[-1]])

    def _reason(self, value, noise_prob, threshold):
        return (
            f"value {format_value(value)} in the lowest {self.fraction:.2%} "
            f"(fraction policy, cut-off value {format_value(threshold)})"
        )


@dataclass(frozen=True)
class ThresholdPolicy(PrunePolicy):
    """Drop rows whose value is strictly below ``threshold``.

    Args:
        threshold: Value cut-off (not NaN).
    """

    threshold: float
    name: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        if not (_is_real(self.threshold) and not math.isnan(self.threshold)):
            raise ConfigError(f"threshold must be a number (not NaN); got {self.threshold!r}")

    def _flag(self, values, noise_prob):
        return values < self.threshold, float(self.threshold)

    def _reason(self, value, noise_prob, threshold):
        return f"value {format_value(value)} below threshold {format_value(threshold)} (threshold policy)"


@dataclass(frozen=True)
class TwoMeansPolicy(PrunePolicy):
    """Drop the lower cluster of :func:`two_means_threshold` (nothing if no split)."""

    name: ClassVar[str] = "two_means"

    def _flag(self, values, noise_prob):
        threshold = two_means_threshold(values)
        if not math.isfinite(threshold):
            return np.zeros(values.size, dtype=bool), None
        return values < threshold, threshold

    def _reason(self, value, noise_prob, threshold):
        return f"value {format_value(value)} below two-means threshold {format_value(threshold)} (two_means policy)"


@dataclass(frozen=True)
class MixturePolicy(PrunePolicy):
    """Drop rows whose P(noisy) is at least ``min_probability``.

    P(noisy) comes from the loss noise model (:mod:`lossval.noise`) and is passed to
    :func:`prune` as ``noise_prob``. Under the cap, rows go highest P(noisy) first,
    then lowest value, then by row position.

    Args:
        min_probability: P(noisy) at or above which a row is flagged, in ``[0, 1]``.
    """

    min_probability: float = 0.5
    name: ClassVar[str] = "mixture"
    needs_noise_prob: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_fraction(self.min_probability, name="min_probability")

    def _flag(self, values, noise_prob):
        return noise_prob >= self.min_probability, None

    def _drop_order(self, values, noise_prob):
        return np.lexsort((np.arange(values.size), values, -noise_prob))

    def _reason(self, value, noise_prob, threshold):
        return (
            f"P(noisy) {noise_prob:.4f} >= {float(self.min_probability):.4f} "
            f"(mixture policy); value {format_value(value)}"
        )


_POLICIES: dict[str, type[PrunePolicy]] = {
    "fraction": FractionPolicy,
    "threshold": ThresholdPolicy,
    "two_means": TwoMeansPolicy,
    "mixture": MixturePolicy,
}


def make_policy(name: str, **params: Any) -> PrunePolicy:
    """Build a policy from its name and parameters (e.g. from a config file).

    Args:
        name: ``"fraction"``, ``"threshold"``, ``"two_means"`` or ``"mixture"``
            (case-insensitive; ``-`` is read as ``_``).
        **params: The policy's parameters, e.g. ``fraction=0.1``.

    Returns:
        The policy instance.

    Raises:
        ConfigError: Unknown name (the message lists the valid ones), unknown or
            missing parameters, or out-of-range values.

    >>> make_policy("fraction", fraction=0.1)
    FractionPolicy(fraction=0.1)
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in _POLICIES:
        raise ConfigError(
            f"unknown pruning policy {name!r}; valid names: {', '.join(sorted(_POLICIES))}"
        )
    cls = _POLICIES[key]
    accepted = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"pruning policy {key!r} got unknown parameter(s) {unknown}; "
            f"it accepts: {accepted if accepted else 'no parameters'}"
        )
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in params]
    if missing:
        example = ", ".join(f"{name}=..." for name in missing)
        raise ConfigError(f"pruning policy {key!r} needs {', '.join(missing)}: pass {cls.__name__}({example}) "
                          f"(or make_policy({key!r}, {example})) as the policy")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"pruning policy {key!r}: {exc}; it accepts: {accepted}") from exc


# ---------------------------------------------------------------------------- prune
def _check_labels(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct labels, and the integer class index per row, shape ``(n,)``."""
    import pandas as pd  # isna: NaN, None and pd.NA alike

    arr = np.asarray(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
    if arr.ndim == 2 and arr.shape[1] == 1:  # one column, as LossVal.fit takes its targets
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.size != n:
        # labels="label" (a column name) said only "got shape ()": say what was passed, and what to pass
        given = f"{type(labels).__name__} {labels!r}"[:200] if arr.ndim == 0 else f"shape {arr.shape}"
        raise InputError(f"labels must be 1-D with one label per row ({n}); got {given}{column_name_hint(labels)}")
    missing = np.flatnonzero(pd.isna(arr))
    if missing.size:
        raise InputError(
            f"labels has {missing.size} missing value(s) (NaN, None or NA), first at row {int(missing[0])}; "
            "fill or drop them."
        )
    try:
        classes, class_index = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise InputError(
            f"labels must be of one sortable type (e.g. all int or all str): {exc}"
        ) from exc
    fractions = arr[np.mod(arr, 1) != 0] if arr.dtype.kind == "f" else arr[:0]
    if fractions.size or (arr.dtype.kind in "iuf" and n >= 20 and classes.size > n // 2):
        # A regression target passed as labels: each value would be its own class, protected, so nothing is pruned.
        raise InputError(
            f"labels look like a regression target, not class labels: {classes.size} distinct values in {n} rows"
            + (f" (e.g. {float(fractions[0])!r})" if fractions.size else "")
            + ". labels are for classification (class protection and the per-class cap); for a regression "
            "target pass labels=None."
        )
    return classes, class_index.reshape(-1)


def _protected_rows(values: np.ndarray, class_index: np.ndarray, per_class: int) -> np.ndarray:
    """Bool ``(n,)``: each class's ``per_class`` highest-valued rows (ties by position)."""
    order = np.lexsort((np.arange(values.size), -values, class_index))
    sorted_classes = class_index[order]
    starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, values.size]))
    rank_in_class = np.arange(values.size) - group_start
    protected = np.zeros(values.size, dtype=bool)
    protected[order[rank_in_class < per_class]] = True
    return protected


def prune(
    values: Any,
    *,
    policy: PrunePolicy | str,
    max_prune_fraction: float = 0.2,
    labels: Any = None,
    noise_prob: Any = None,
    min_rows_per_class: int = 1,
    groups: Any = None,
    keep: Any = None,
) -> PruneDecision:
    """Decide which rows to keep.

    Args:
        values: Row values, shape ``(n,)``, finite; higher = more valuable.
        policy: A policy instance, or a name for :func:`make_policy` with default
            parameters (``"two_means"``, ``"mixture"``).
        max_prune_fraction: At most ``floor(max_prune_fraction * n)`` rows are dropped,
            in ``[0, 1]``; with ``labels``, also at most that share of each class's rows
            (under class imbalance the minority's rows look least valuable: an audit's
            95:5 data lost 164 of 192 clean minority rows to a global cap alone).
        labels: Optional class label per row, shape ``(n,)``; enables class protection
            and the per-class cap. Classification only: a regression target (fractional
            values, or more distinct values than half the rows) is refused.
        noise_prob: P(noisy) per row, shape ``(n,)`` in ``[0, 1]``; required by
            :class:`MixturePolicy`, validated but unused by the others.
        min_rows_per_class: With ``labels``, each class keeps at least this many of its
            highest-valued rows (all of them if it has fewer); ``0`` disables.
        groups: Optional group id per row, shape ``(n,)`` (e.g. one id per set of identical
            rows): a group is quarantined or kept whole. Where the cap, the fraction policy's
            count or class protection would split one (ties are otherwise taken by row
            position), the whole group is kept, so fewer rows than the cap allows may go.
            Ids may be of any hashable kind, mixed; a missing id (None, NaN) is a group of its own row.
        keep: Optional bool per row, shape ``(n,)``: rows never dropped, whatever their value (rows a
            reviewer put back). The policy still flags them (its threshold is computed on every
            row), and they are taken out after class protection and the cap, so exactly the rows
            that would have gone and are in ``keep`` stay (held back as ``"reviewed"``); the cap's
            room they leave is not given to rows it held back.

    Returns:
        A :class:`PruneDecision`.

    Raises:
        InputError: Bad ``values``, ``labels`` or ``noise_prob`` (shape, NaN/inf,
            length mismatch, probabilities outside [0, 1]).
        ConfigError: Bad ``policy``, ``max_prune_fraction`` or ``min_rows_per_class``,
            or ``noise_prob`` missing for the mixture policy.
    """
    if isinstance(policy, str):
        policy = make_policy(policy)
    if not isinstance(policy, PrunePolicy):
        raise ConfigError(
            f"policy must be a pruning policy or one of {sorted(_POLICIES)}; got {policy!r}"
        )
    _check_fraction(max_prune_fraction, name="max_prune_fraction")
    if not (is_integer(min_rows_per_class) and min_rows_per_class >= 0):
        raise ConfigError(f"min_rows_per_class must be an integer >= 0; got {min_rows_per_class!r}")

    vals = _as_finite_1d(values, name="values")
    n = vals.size
    _warn_unaligned(values, {"labels": labels, "noise_prob": noise_prob, "groups": groups, "keep": keep})
    probs: np.ndarray | None = None
    if noise_prob is not None:
        probs = _as_finite_1d(noise_prob, name="noise_prob")
        if probs.size != n:
            raise InputError(
                f"noise_prob has {probs.size} rows but values has {n}; they must match."
            )
        outside = (probs < 0.0) | (probs > 1.0)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise InputError(
                f"noise_prob must lie in [0, 1]; row {first} is {float(probs[first])!r}"
            )
    elif policy.needs_noise_prob:
        raise ConfigError(
            f"the {policy.name} policy needs noise_prob (P(noisy) per row): after LossVal(...).fit(...), pass "
            "noise_prob=lv.noise_probability() (or lossval.noise.loss_noise_probability(history) for a loss "
            "history of your own)"
        )
    classes, class_index = _check_labels(labels, n) if labels is not None else (None, None)

    reviewed = _check_keep(keep, n)

    flagged, threshold = policy._flag(vals, probs)
    n_candidates = int(flagged.sum())
    drop = flagged.copy()
    if class_index is not None and min_rows_per_class > 0:
        drop &= ~_protected_rows(vals, class_index, int(min_rows_per_class))
    n_protected = n_candidates - int(drop.sum())
    protection_left = drop.copy()
    budget = _floor_count(float(max_prune_fraction), n)
    order: np.ndarray | None = None
    cap_hit = class_cap_hit = False
    capped_classes: list = []
    if class_index is not None:  # the cap holds for each class too: no class loses more than its share
        order = policy._drop_order(vals, probs)
        for c in np.unique(class_index):
            in_class = class_index == c
            class_budget = _floor_count(float(max_prune_fraction), int(in_class.sum()))
            if int((drop & in_class).sum()) > class_budget:
                cap_hit = class_cap_hit = True
                label = classes[c]
                capped_classes.append(label.item() if isinstance(label, np.generic) else label)
                ranked = order[(drop & in_class)[order]]  # this class's flagged rows, first to go first
                drop[ranked[class_budget:]] = False
    if int(drop.sum()) > budget:
        cap_hit, class_cap_hit = True, False  # the cap on all rows chose, after the classes'
        order = policy._drop_order(vals, probs) if order is None else order
        chosen = order[drop[order]][:budget]
        drop = np.zeros(n, dtype=bool)
        drop[chosen] = True

    cap_left = drop.copy()
    # After the cap: the rows put back are exactly those that would have gone, and the cap's room is not handed to
    # rows it held back (a reviewer who puts two rows back sees two fewer quarantined, no new ones).
    put_back = drop & reviewed
    drop &= ~reviewed
    n_kept_together = 0
    if groups is not None:
        group_ids = np.asarray(groups)
        if group_ids.shape != (n,):
            raise InputError(f"groups must hold one id per row, shape ({n},); got shape {group_ids.shape}.")
        inverse = _group_codes(group_ids)
        dropped_per_group = np.bincount(inverse, weights=drop, minlength=inverse.max(initial=-1) + 1)
        size_per_group = np.bincount(inverse)
        split = (dropped_per_group > 0) & (dropped_per_group < size_per_group)
        if split.any():
            rejoined = drop & split[inverse]
            n_kept_together = int(rejoined.sum())
            drop &= ~rejoined
    reasons: list[str | None] = [None] * n
    for row in np.flatnonzero(drop):
        row_prob = None if probs is None else float(probs[row])
        reasons[int(row)] = policy._reason(float(vals[row]), row_prob, threshold)
    held_back: list[str | None] = [None] * n
    for row in np.flatnonzero(flagged & ~drop):
        held_back[int(row)] = ("class protection" if not protection_left[row] else
                               "max_prune_fraction" if not cap_left[row] else
                               "reviewed" if put_back[row] else "identical copies")
    return PruneDecision(
        keep=~drop,
        reasons=reasons,
        threshold=threshold,
        policy=policy.name,
        n_candidates=n_candidates,
        capped=int(cap_left.sum()) < n_candidates,  # before copies were kept together (n_kept_together says that)
        n_protected=n_protected,
        cap_hit=cap_hit,
        class_cap_hit=class_cap_hit,
        capped_classes=tuple(capped_classes),
        n_kept_together=n_kept_together,
        held_back=held_back,
        n_reviewed=int(put_back.sum()),
    )


def _warn_unaligned(values: Any, others: dict[str, Any]) -> None:
    """Warn for each other per-row argument that is a pandas object with another row index than ``values``: rows are
    paired by position, so labels taken from a shuffled or filtered frame gave rows other rows' labels (wrong
    per-class caps and class protection) without a word. ``LossVal.fit`` warns the same way."""
    for name, other in others.items():
        warn_unaligned(values, other, "values", name, stacklevel=3)  # prune's caller


def _check_keep(keep: Any, n: int) -> np.ndarray:
    """``prune``'s ``keep``: a bool array of shape ``(n,)`` (all False when None)."""
    if keep is None:
        return np.zeros(n, dtype=bool)
    import pandas as pd  # isna: None, NaN and pd.NA alike

    arr = np.asarray(keep)
    # a nullable boolean column with unreviewed rows left empty was called "of object"; a 1/blank column read from a
    # CSV (float with NaN) "of float64"
    missing = (np.flatnonzero(pd.isna(arr)) if arr.ndim == 1 and (arr.dtype == object or arr.dtype.kind == "f")
               else np.zeros(0, dtype=int))
    if missing.size:
        fill = "keep.fillna(False)" if hasattr(keep, "fillna") else "False"
        raise InputError(f"keep has {missing.size} missing value(s) (None, NaN or NA), first at row {int(missing[0])}; "
                         f"it takes True or False for every row: fill them first ({fill} for rows nobody put back).")
    if arr.shape != (n,) or arr.dtype != bool:
        raise InputError(f"keep must be one bool per row, shape ({n},); got shape {arr.shape} of {arr.dtype}. "
                         "Build it as e.g. np.isin(row_ids, reviewed_ids).")
    return arr


def _group_codes(group_ids: np.ndarray) -> np.ndarray:
    """One integer per row, equal for equal ids. ``np.unique`` sorted the ids, and raised a bare TypeError for ids
    that do not compare (None, or numbers mixed with text); a missing id groups only its own row."""
    import pandas as pd

    try:
        codes, _ = pd.factorize(pd.Series(group_ids, dtype=object), use_na_sentinel=True)
    except TypeError as exc:  # an unhashable id (a list)
        raise InputError(f"groups must hold hashable ids (numbers or text), one per row; {exc}.") from None
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes

