"""Pipeline configuration: a YAML file, validated into frozen dataclasses with clear errors.

Every key is optional except ``data`` and ``target``. Unknown keys are errors (a typo would
otherwise silently fall back to a default). Relative paths are resolved against the config
file's folder, and ``~`` is expanded. See ``examples/config.yaml`` for every key with its default.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import inspect
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lossval._files import broken_link, data_stem, leads_to_nothing, read_as_data_of
from lossval.errors import ConfigError
from lossval.suites import GATE_PARAMETERS, SUITES_DIR, check_suite, read_suite, suite_file

__all__ = [
    "PipelineConfig",
    "ValidationConfig",
    "PruningConfig",
    "RetrainConfig",
    "GateConfig",
    "TrackingConfig",
    "load_config",
    "config_warnings_to",
    "read_yaml",
    "config_from_dict",
    "unused_for_task",
    "resolve_config_path",
    "mask_uri",
    "mask_secrets",
]

# The validation / pruning keys each strategy / policy reads (the others are left unread: unused_keys).
_STRATEGY_KEYS = {"file": ("path",), "column": ("column",), "stratified": ("fraction",),
                  "latest": ("timestamp_column", "fraction")}
_POLICY_KEYS = {"fraction": ("fraction",), "threshold": ("threshold",), "two_means": (),
                "mixture": ("min_probability",)}
_STRATEGIES = tuple(_STRATEGY_KEYS)
_POLICIES = tuple(_POLICY_KEYS)
_LOSSVAL_KEYS = {
    "n_layers": int, "width": int, "activation": str, "epochs": int, "batch_size": int, "lr": float,
    "weight_lr": (float, str), "sinkhorn_schedule": str, "distance_power": float, "normalize_masses": bool,
    "nonnegative": bool, "blur": (float, str), "scaling": float, "label_cost": (float, str),
    "val_subsample": int, "average_last": int, "loss_weighting": str, "weight_eps_ratio": (float, str),
    "weight_warmup_epochs": (int, str),
    "standardize": bool, "clip_outliers": bool, "average_duplicates": bool,
    "ce_epsilon": float, "device": str, "cpu_threads": int,
}


@dataclass(frozen=True)
class ValidationConfig:
    """How the trusted validation split is chosen.

    Attributes:
        strategy: ``file`` (rows of ``path``), ``column`` (rows whose boolean ``column`` is true),
            ``stratified`` (random ``fraction``, stratified by class), ``latest`` (the most recent
            ``fraction`` of rows by ``timestamp_column``).
    """

    strategy: str = "stratified"
    path: str | None = None
    column: str | None = None
    timestamp_column: str | None = None
    fraction: float = 0.2


@dataclass(frozen=True)
class PruningConfig:
    """Pruning policy and its parameters (see :mod:`lossval.pruning`)."""

    policy: str = "two_means"
    max_prune_fraction: float = 0.2
    fraction: float = 0.1
    threshold: float | None = None
    min_probability: float = 0.5
    # A file of row ids (a `row_id` column, e.g. a copy of quarantine.parquet cut down to the rows a reviewer put
    # back) never quarantined, whatever their value: tasks.prune, lossval.pruning.prune(keep=...).
    keep_ids: str | None = None

    def policy_params(self) -> dict[str, Any]:
        """The keys this policy reads, with their values: the arguments of :func:`lossval.pruning.make_policy`."""
        return {key: getattr(self, key) for key in _POLICY_KEYS[self.policy]}


@dataclass(frozen=True)
class RetrainConfig:
    """Retraining: ``prune`` (train on kept rows) or ``soft`` (all rows, values as sample weights).

    ``calibrate``: fit each classifier's temperature on the validation split before scoring it.
    """

    mode: str = "prune"
    epochs: int = 30
    calibrate: bool = True


@dataclass(frozen=True)
class GateConfig:
    """Promotion gate: a GX suite on the pruned data, metric non-regression, and the comparison with the champion."""

    suite: str | None = None  # default: expectations/pruned_data.json shipped with lossval
    metric_tolerance: float = 0.01
    refuse_when_all_worse: bool = True  # refuse when some metric got worse and none improved (primary tied or worse)
    # Per test metric, the most "after" may be worse than "before", in the metric's units (e.g.
    # {"log_loss": 0.1}); empty = no limit beyond the two rules above.
    metric_limits: dict[str, float] = field(default_factory=dict)
    # The registered champion, scored on this run's test rows: "after" may be worse by at most
    # metric_tolerance, and its columns, kinds, task and classes must be the champion's.
    compare_with_champion: bool = True
    allow_schema_change: bool = False  # a meant change of columns, task, target or classes: promote anyway


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking. ``uri=None`` means ``sqlite:///<workspace>/mlflow.db``."""

    uri: str | None = None
    experiment: str = "lossval"
    registered_model: str | None = None  # default: lossval-<dataset>
    # Log quarantine.parquet (the pruned rows, whole) with the run, so a reviewer with only the
    # MLflow UI sees every removed row. False keeps data rows out of the tracking store and Prefect's
    # artifacts: no quarantine, no data columns in the lowest-value table, no model input example, no
    # GX samples of unexpected values.
    log_quarantine: bool = True


@dataclass(frozen=True)
class PipelineConfig:
    """The whole run configuration."""

    data: str
    target: str
    dataset: str = ""
    task: str = "auto"
    id_column: str | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()  # feature columns kept categorical even when they look numeric
    numeric: tuple[str, ...] = ()  # feature columns encoded as numbers however much text they hold (text is refused)
    test_fraction: float = 0.2
    test_path: str | None = None  # a curated test file; when set, no test rows are taken from the data
    seed: int = 0
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    lossval: dict[str, Any] = field(default_factory=dict)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # "<flow name>/<deployment name>" of the valuation deployment (e.g. on a GPU work pool); None = in-process
    valuation_deployment: str | None = None

    def set_aside_paths(self) -> tuple[str, ...]:
        """The curated validation (``validation.path``, strategy ``file``) and ``test_path`` paths on disk: a folder
        of them inside the data folder (``data/holdout.parquet/``) is left out of the data, not refused
        (``set_aside`` of :func:`lossval.io.list_data_files` and :func:`lossval.io.read_table`)."""
        paths = (self.validation.path if self.validation.strategy == "file" else None, self.test_path)
        return tuple(p for p in paths if p and "://" not in p)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable), with every value as configured (for hashing).

        The ``features`` lists are top-level keys here, as the dataclass holds them: a config file
        would refuse them there (:meth:`file_dict` is the file's shape). Run keys and value caches
        hash this shape, so it stays as it is.
        """
        return dataclasses.asdict(self)

    def file_dict(self) -> dict[str, Any]:
        """The config as a config file holds it, every key with its value: ``include``, ``exclude``,
        ``categorical`` and ``numeric`` in the ``features`` section, the rest as in :meth:`to_dict`.

        :func:`config_from_dict` (or :func:`load_config` of it written as JSON or YAML) gives back an
        equal config, so the logged config is one a run can be started from.
        """
        raw = self.to_dict()
        raw["features"] = {k: None if raw[k] is None else list(raw[k]) for k in _FEATURE_KEYS}
        for k in _FEATURE_KEYS:
            del raw[k]
        return {k: raw[k] for k in _TOP_KEYS}  # in the file's order: dataset, data, target, ..., features, ...

    def public_dict(self) -> dict[str, Any]:
        """:meth:`file_dict` with passwords in URIs masked: what the run manifest and logs may show (the
        ``config/config.json`` artifact loads as a config, a masked password aside)."""

        def mask(obj: Any) -> Any:
            if isinstance(obj, str):
                return mask_secrets(obj)
            if isinstance(obj, dict):
                return {k: mask(v) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [mask(v) for v in obj]
            return obj

        return mask(self.file_dict())

    def numeric_features(self) -> list[str]:
        """``numeric`` without the target, the id column and columns that are no features
        (:func:`lossval.io.numeric_features`): the columns whose ``NA`` words a CSV read gives as missing values.

        The validation strategy's marker or timestamp column is no feature either (``tasks.value.feature_exclusions``)
        where the strategy reads it."""
        from lossval.io import numeric_features

        return numeric_features(self.numeric, target=self.target, id_column=self.id_column,
                                exclude=[*self.exclude, *self._split_columns()], include=self.include)

    def _split_columns(self) -> dict[str, str]:
        """The validation strategy's own columns that it reads (``column``, ``latest``), by their config key."""
        v = self.used_only().validation
        return {c: key for c, key in ((v.column, "validation.column"), (v.timestamp_column,
                                                                      "validation.timestamp_column")) if c}

    def fingerprint(self, *sections: str) -> str:
        """Hash of the given top-level sections (all when none), 16 hex chars; for cache keys."""
        d = self.to_dict()
        if d["pruning"]["keep_ids"] is None:  # added 2026-12-07: unset, the keys stay what they were
            del d["pruning"]["keep_ids"]
        if sections:
            d = {k: d[k] for k in sections}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def unused_keys(self, task: str | None = None) -> dict[str, str]:
        """Keys whose value this config's other choices leave unread, each with the reason.

        ``task`` is the task the run resolved (``auto`` decides from the data); without it only
        ``self.task`` is used. Every key still has a value (its default, or what the file set), so
        MLflow's params show ``pruning.fraction`` under policy ``two_means``; this says which to ignore.
        """
        out: dict[str, str] = {}
        if self.test_path:
            out["test_fraction"] = "test_path is set"
        for section, chooser, readers, choice in (("validation", "strategy", _STRATEGY_KEYS, self.validation.strategy),
                                                  ("pruning", "policy", _POLICY_KEYS, self.pruning.policy)):
            for key in dict.fromkeys(k for keys in readers.values() for k in keys):  # in order, each once
                if key not in readers[choice]:
                    out[f"{section}.{key}"] = f"{section}.{chooser} is {choice}"
        if (task or self.task) == "regression":
            out["retrain.calibrate"] = "the task is regression (only classifiers are calibrated)"
        return out

    def default_of(self, dotted: str) -> Any:
        """The default of key ``dotted`` (``test_fraction``, ``pruning.fraction``); ``dataclasses.MISSING`` when it
        has none."""
        section, _, key = dotted.rpartition(".")
        owner = type(getattr(self, section)) if section else PipelineConfig
        return next(f.default for f in dataclasses.fields(owner) if f.name == key)

    def used_only(self, task: str | None = None) -> PipelineConfig:
        """This config with every key of :meth:`unused_keys` put back to its default: for cache and run keys.

        A key the other choices leave unread (``validation.fraction`` under strategy ``file``,
        ``pruning.fraction`` under policy ``mixture``) must not make a new values cache or a new
        registered version of the same model. Keys are reset rather than dropped, so a config that
        sets no unused key is keyed exactly as before.
        """
        top: dict[str, Any] = {}
        sections: dict[str, dict[str, Any]] = {}
        for dotted in self.unused_keys(task):
            section, _, key = dotted.rpartition(".")
            (sections.setdefault(section, {}) if section else top)[key] = self.default_of(dotted)
        replaced = {name: dataclasses.replace(getattr(self, name), **keys) for name, keys in sections.items()}
        return dataclasses.replace(self, **top, **replaced)

    def flat_params(self) -> dict[str, str]:
        """``section.key -> text`` for MLflow params, with credentials in URIs masked.

        Values read as in the config file: lists as JSON (``[]``, ``["ts"]``), an unset value
        as ``null``, booleans as ``true``/``false``, a mapping as one JSON param, keys sorted
        (``gate.metric_limits``: ``{}``, ``{"accuracy": 0.02}``), so a key is one param, one column
        in MLflow's compare view, set or not. Sections are split into their keys; the ``lossval``
        section holds only the options a config changes (``{}`` when none).
        """

        def text(value: Any) -> str:
            if isinstance(value, (dict, list, tuple, bool)) or value is None:
                return mask_secrets(json.dumps(list(value) if isinstance(value, tuple) else value, default=str,
                                               sort_keys=True, ensure_ascii=False))
            return mask_secrets(str(value))

        out: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict) and value:  # a section: a param per key
                out.update({f"{key}.{k}": text(v) for k, v in value.items()})
            else:
                out[key] = text(value)
        return out


# scheme://user:password@ anywhere in a text (error messages quote URLs); the password is masked.
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<password>[^\s/]+)@")


def mask_uri(uri: str) -> str:
    """Replace the password of ``scheme://user:password@host`` with ``***``."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return mask_secrets(uri)
    if parts.password is None:
        return mask_secrets(uri)
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def mask_secrets(text: str) -> str:
    """Mask the password of every ``scheme://user:password@`` in ``text`` (URIs, error messages).

    >>> mask_secrets("API request to http://ann:s3cret@db:5000/api failed")
    'API request to http://ann:***@db:5000/api failed'
    """
    return _CREDENTIALS.sub(lambda m: f"{m['head']}:***@", text)


def read_yaml(path: str | Path, *, what: str) -> Any:
    """Parse a YAML file, with errors that name the file and, for syntax errors, the line.

    Args:
        path: The file.
        what: What the file is, for messages (``"config file"``, ``"datasets file"``).

    Raises:
        ConfigError: missing file, not UTF-8 text, or invalid YAML.
    """
    import yaml

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"is a folder, not a {what}: pass the YAML file.", source=str(p))
    if not p.is_file():
        link = None if p.exists() else broken_link(p)
        if link is not None:  # the link is there; what it points at is not ("not found" sent users to the link)
            leads = leads_to_nothing(link)
            if link == p:
                raise ConfigError(f"is a broken symbolic link{leads} {what}, or give its path instead.", source=str(p))
            raise ConfigError(f"cannot be read: the folder {link} on its path is a broken symbolic link{leads} folder "
                              f"that holds the {what}, or give the path without the link.", source=str(p))
        raise ConfigError(f"{what} not found.", source=str(p))
    try:
        return yaml.load(p.read_text(encoding="utf-8"), Loader=_unique_keys_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML{where}: {problem}.", source=str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"not a UTF-8 text file; is it a YAML {what}?", source=str(p)) from None


def _unique_keys_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses a key repeated in one mapping (YAML keeps the last, silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN202
            seen: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag != "tag:yaml.org,2002:str":  # merge keys (<<), numbers, lists: as PyYAML does
                    continue
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping (the first would be ignored)",
                        key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or out-of-range values;
            the message names the file and the key.
    """
    p = Path(path)
    raw = read_yaml(p, what="config file")
    if raw is None:
        raise ConfigError("the config file is empty; it needs at least 'data' and 'target' (see examples/config.yaml).",
                          source=str(p))
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping of keys to values.", source=str(p))
    return config_from_dict(raw, base_dir=p.parent, source=str(p))


def _check_keys(section: str, raw: dict[str, Any], allowed: set[str], source: str | None) -> None:
    unknown = sorted(set(raw) - allowed, key=str)
    if unknown:
        import difflib

        where = f" in section '{section}'" if section else ""
        # A high cutoff: a typo ('polcy', 'epoch') gets a hint, a different name ('lr_weights') none rather than a wrong one.
        near = {str(k): difflib.get_close_matches(str(k), sorted(allowed), n=1, cutoff=0.75) for k in unknown}
        hints = []
        for k in unknown:  # a valid key in the wrong place ('seed' under 'lossval:'): say where it belongs
            homes = [h for h, keys in _key_homes().items() if h != section and k in keys]
            if homes:
                places = " or ".join("at the top level" if not h else f"in section '{h}'" for h in homes)
                hints.append(f"{k!r} belongs {places}, not{where or ' at the top level'}: move it.")
            elif near[str(k)]:
                hints.append(f"did you mean {near[str(k)][0]!r} for {k!r}?")
        hint = " ".join(hints)
        raise ConfigError(f"unknown key(s) {unknown}{where}; " + (hint + " " if hint else "")
                          + f"valid keys are {sorted(allowed)}.", source=source)


def _key_homes() -> dict[str, set[str]]:
    """Every config key by the section it belongs to ("" = the top level)."""
    homes = {"": set(_TOP_KEYS), "features": set(_FEATURE_KEYS), "lossval": set(_LOSSVAL_KEYS)}
    for name, cls in (("validation", ValidationConfig), ("pruning", PruningConfig), ("retrain", RetrainConfig),
                      ("gate", GateConfig), ("tracking", TrackingConfig)):
        homes[name] = {f.name for f in dataclasses.fields(cls)}
    return homes


_TOP_KEYS = ("dataset", "data", "target", "task", "id_column", "features", "validation", "test_fraction", "test_path",
             "seed", "lossval", "pruning", "retrain", "gate", "tracking", "valuation_deployment")
_FEATURE_KEYS = ("include", "exclude", "categorical", "numeric")

_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _typed(section: str, key: str, value: Any, kind: Any, source: str | None) -> Any:
    name = f"{section}.{key}" if section else key
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is None:
        return None
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if float in kinds and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-8 (no dot) as text
    if bool not in kinds and isinstance(value, bool):
        raise ConfigError(f"'{name}' must be {' or '.join(k.__name__ for k in kinds)}, got a boolean.", source=source)
    if not isinstance(value, kinds):
        quote = (f" YAML read it as a number: quote it ({key}: \"{value}\") if it names a column or file."
                 if kinds == (str,) and isinstance(value, (int, float)) else "")
        raise ConfigError(
            f"'{name}' must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__} {value!r}.{quote}",
            source=source,
        )
    return value


def _section(raw: Any, cls: type, name: str, source: str | None, types: dict[str, Any]) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"section '{name}' must be a mapping, got {type(raw).__name__}.", source=source)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(name, raw, set(fields), source)
    for k, v in raw.items():
        f = fields[k]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        if v is None and default is not None:  # only keys whose default is "none" may be null
            _needs_value(f"{name}.{k}", default, source)
    return cls(**{k: _typed(name, k, v, types[k], source) for k, v in raw.items()})


def _refuse_same_files(paths: dict[str, str | None], source: str | None, *,
                       as_written: dict[str, str | None] | None = None) -> None:
    """Refuse two of data / validation / test naming one file or folder, or a file in another's folder (rows valued or
    scored against themselves); ``as_written``: the same paths before symlinks were resolved."""
    seen: dict[Path, str] = {}
    for key, path in paths.items():
        if path is None or "://" in path:
            continue
        real = Path(path).resolve()  # ./ and .., and symlinks where they exist
        if real in seen:
            raise ConfigError(f"'{key}' and '{seen[real]}' are the same file ({path}); each must hold its own rows: "
                              "validation and test rows set aside from the data, and from each other.", source=source)
        seen[real] = key
    # A curated file inside the data folder is read as data too. Checked on the paths as written (made absolute, not
    # resolved): a symlink in the folder is read through, whatever it points at.
    written = as_written or paths
    for key, path in written.items():
        for other, folder in written.items():
            if other != key and path and folder and "://" not in path + folder and read_as_data_of(folder, path):
                raise ConfigError(f"'{key}' ({path}) lies in the '{other}' folder ({folder}), which reads every data "
                                  "file in it: its rows would be valued as data as well. Move it out of that folder.",
                                  source=source)


def torch_seed(seed: int) -> int:
    """The part of a config ``seed`` torch uses: its low 32 bits (torch's CPU generator keeps no more).

    Configs may hold seeds up to 2**64 (the splits use every bit); LossVal accepts [0, 2**32) so
    that two seeds it is given never give the same values, and gets this.
    """
    return int(seed) % 2**32


def check_metric_limits(limits: dict[str, float], task: str, *, source: str | None = None,
                        inferred: bool = False) -> None:
    """Refuse a ``gate.metric_limits`` metric that a ``task`` run does not report (before any work, not at the gate).

    Raises:
        ConfigError: names the metric and the task's own metrics.
    """
    from lossval.retrain import METRICS

    other = [name for name in limits if name not in METRICS.get(task, limits)]
    if other:
        how = " (the task was inferred from the target; set 'task' to say it)" if inferred else ""
        raise ConfigError(f"'gate.metric_limits' names {other}, which a {task} run does not report{how}; use "
                          f"{', '.join(METRICS[task])}.", source=source)


def _metric_limits(raw: dict[Any, Any], source: str | None) -> dict[str, float]:
    """``gate.metric_limits``: known test metric names to finite numbers >= 0."""
    import difflib

    from lossval.retrain import HIGHER_IS_BETTER, METRICS

    limits: dict[str, float] = {}
    for name, limit in raw.items():
        if name not in HIGHER_IS_BETTER:
            near = difflib.get_close_matches(str(name), sorted(HIGHER_IS_BETTER), n=1)
            raise ConfigError(f"'gate.metric_limits' names {name!r}, which is not a test metric"
                              + (f" (did you mean {near[0]!r}?)" if near else "") + "; classification runs report "
                              f"{', '.join(METRICS['classification'])}, regression runs {', '.join(METRICS['regression'])}.",
                              source=source)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= float(limit) < math.inf:
            raise ConfigError(f"'gate.metric_limits.{name}' must be a finite number >= 0 (how much worse "
                              f"\"after\" may be, in {name}'s units), got {limit!r}.", source=source)
        limits[str(name)] = float(limit)
    return limits


def _needs_value(name: str, default: Any, source: str | None) -> None:
    """A key given as null whose default is not null: name it and its default."""
    raise ConfigError(f"'{name}' needs a value (default {default!r}); remove the key to use the default.", source=source)


DATASET_NAME_RE = re.compile(r"(?!\.+$)[A-Za-z0-9_.\-]+")
"""Dataset names (config, datasets file, landing folders, locks): folder-safe, never only dots."""


def _check_lossval_options(opts: dict[str, Any], source: str | None) -> None:
    """The ``lossval:`` options as ``LossVal`` checks them, now rather than after Prefect has started."""
    if not opts:
        return
    from lossval._torchutil import DEVICE_NAME
    from lossval.valuation import LossVal

    defaults = LossVal().get_params()
    # null is a setting of its own where the constructor takes None (val_subsample: all rows; weight_lr: = lr;
    # weight_eps_ratio: plain Adam); elsewhere it is a missing value.
    nullable = {name for name, p in inspect.signature(LossVal).parameters.items() if "None" in str(p.annotation)}
    for k, v in opts.items():
        if v is None and defaults.get(k) is not None and k not in nullable:
            _needs_value(f"lossval.{k}", defaults[k], source)
    try:
        LossVal(**{k: v for k, v in opts.items() if k != "device"})._check_params()
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"section 'lossval': {exc}", source=source) from None
    device = opts.get("device")
    # Only the spelling here: whether the device exists is for the machine that values (a GPU worker).
    if isinstance(device, str) and not DEVICE_NAME.fullmatch(device.lower()):
        raise ConfigError(f"'lossval.device' {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps.",
                          source=source)




def _tracking_uri(uri: str | None, base: Path) -> str | None:
    """``tracking.uri`` with a database or folder path given relative to the config (or with ``~``) made absolute.

    ``sqlite:///mlflow.db`` and a plain ``mlruns`` folder would otherwise be found from wherever
    the run was started, so a nightly deployment and a manual run would log to different stores.
    Server URIs and MLflow's named stores (``databricks``) are left as they are.
    """
    if not uri:
        return uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and uri[len(prefix):] not in ("", ":memory:") and not uri.startswith(prefix + "/"):
        path = Path(os.path.expanduser(uri[len(prefix):]))
        return prefix + str(path if path.is_absolute() else (base / path).resolve())
    if ":" in uri.split("/", 1)[0] or uri in ("databricks", "databricks-uc"):  # a scheme (http:, file:, C: aside)
        return uri
    path = Path(os.path.expanduser(uri))  # a local folder: MLflow's file store
    return str(path if path.is_absolute() else (base / path).resolve())


def _suite_path(suite: str, base: Path, source: str | None) -> str:
    """A gate suite: a .json path (relative to the config), a name beside the config, or a shipped suite's name."""
    if suite.endswith(".json") or "/" in suite or os.sep in suite:
        suite = os.path.expanduser(suite)
        path = Path(suite) if Path(suite).is_absolute() else (base / suite).resolve()
        return str(path if path.suffix == ".json" else path.with_name(path.name + ".json"))
    beside = (base / f"{suite}.json").resolve()
    if beside.is_file():
        return str(beside)
    if (SUITES_DIR / f"{suite}.json").is_file():
        return suite  # tasks.gx.load_suite reads it from expectations/
    raise ConfigError(f"'gate.suite' {suite!r}: no {beside} and no shipped suite of that name "
                      f"({sorted(p.stem for p in SUITES_DIR.glob('*.json'))}).", source=source)


def resolve_config_path(path: str, base: str | Path) -> str:
    """A path written in a config file (the pipeline config, the datasets file) as lossval reads it.

    ``~`` and ``~user`` are expanded to a home folder (the shell does that on a command line, YAML does not); a
    relative path is taken from ``base``, the config file's folder. ``$VARS`` are not expanded; a URL
    (``s3://...``) is returned as written.
    """
    if "://" in str(path):
        return str(path)
    path = os.path.expanduser(str(path))
    return path if Path(path).is_absolute() else str((Path(base) / path).resolve())


def _fraction(name: str, value: float, source: str | None, *, low_open: bool = False, high: float = 1.0) -> None:
    if not math.isfinite(value) or not (0.0 < value if low_open else 0.0 <= value) or value > high:
        raise ConfigError(f"'{name}' must be in {'(' if low_open else '['}0, {high:g}], got {value}.", source=source)


def config_from_dict(raw: dict[str, Any], *, base_dir: str | Path = ".", source: str | None = None) -> PipelineConfig:
    """Validate a config mapping (as read from YAML) into a :class:`PipelineConfig`.

    Args:
        raw: The mapping.
        base_dir: Folder that relative paths are resolved against.
        source: File name for error messages.
    """
    _check_keys("", raw, set(_TOP_KEYS), source)
    for key in ("data", "target"):
        if raw.get(key) is None or raw.get(key) == "":  # a column named 0 is there: its type is checked below
            raise ConfigError(f"'{key}' is required.", source=source)
    base = Path(base_dir)

    def resolve(p: str | None) -> str | None:
        return None if p is None else resolve_config_path(p, base)

    features = raw.get("features") or {}
    if not isinstance(features, dict):
        raise ConfigError("'features' must be a mapping with 'include', 'exclude', 'categorical' and/or 'numeric' "
                          "lists.", source=source)
    _check_keys("features", features, set(_FEATURE_KEYS), source)
    for k in _FEATURE_KEYS:
        v = features.get(k)
        if v is not None and not (isinstance(v, list) and all(isinstance(c, str) for c in v)):
            odd = next((c for c in v if not isinstance(c, str)), None) if isinstance(v, list) else None
            hint = (f" YAML read one item as {odd!r}: quote column names that contain ': ' or read as another type "
                    "(numbers, yes/no, null), e.g. [\"Unnamed: 0\", \"2021\"]." if odd is not None else "")
            raise ConfigError(f"'features.{k}' must be a list of column names.{hint}", source=source)
    if features.get("include") == []:  # an empty list would read as "every column", the opposite of what it says
        raise ConfigError("'features.include' is an empty list: name the feature columns, or leave the key out to use "
                          "every column but the target, the id column and features.exclude.", source=source)
    both = [c for c in features.get("numeric") or () if c in set(features.get("categorical") or ())]
    if both:
        raise ConfigError(f"column(s) {both} are in both 'features.numeric' and 'features.categorical'; a column is "
                          "encoded one way: remove it from one of the two lists.", source=source)

    validation = _section(raw.get("validation"), ValidationConfig, "validation", source,
                          {"strategy": str, "path": str, "column": str, "timestamp_column": str, "fraction": float})
    if validation.strategy not in _STRATEGIES:
        raise ConfigError(f"'validation.strategy' must be one of {list(_STRATEGIES)}, got {validation.strategy!r}.", source=source)
    need = {"file": "path", "column": "column", "latest": "timestamp_column"}.get(validation.strategy)
    if need and not getattr(validation, need):
        raise ConfigError(f"validation strategy '{validation.strategy}' needs 'validation.{need}'.", source=source)
    _fraction("validation.fraction", validation.fraction, source, low_open=True, high=0.9)
    validation = dataclasses.replace(validation, path=resolve(validation.path))

    pruning = _section(raw.get("pruning"), PruningConfig, "pruning", source,
                       {"policy": str, "max_prune_fraction": float, "fraction": float, "threshold": float,
                        "min_probability": float, "keep_ids": str})
    if pruning.policy not in _POLICIES:
        raise ConfigError(f"'pruning.policy' must be one of {list(_POLICIES)}, got {pruning.policy!r}.", source=source)
    _fraction("pruning.max_prune_fraction", pruning.max_prune_fraction, source)
    _fraction("pruning.fraction", pruning.fraction, source)
    _fraction("pruning.min_probability", pruning.min_probability, source)
    if pruning.keep_ids is not None:
        from lossval.io import read_row_id_list

        pruning = dataclasses.replace(pruning, keep_ids=resolve(pruning.keep_ids))
        # Read now, not after valuation: a missing file, no id column or an empty id is refused in a second. The
        # prune stage reads it again (a reviewer may add ids while a long valuation runs).
        id_column = raw.get("id_column")
        read_row_id_list(pruning.keep_ids, id_column=id_column if isinstance(id_column, str) else None)
    if pruning.policy == "threshold" and pruning.threshold is None:
        raise ConfigError("pruning policy 'threshold' needs 'pruning.threshold'.", source=source)
    if pruning.threshold is not None and not math.isfinite(pruning.threshold):
        raise ConfigError(f"'pruning.threshold' must be a finite number, got {pruning.threshold}.", source=source)

    retrain = _section(raw.get("retrain"), RetrainConfig, "retrain", source, {"mode": str, "epochs": int,
                                                                                "calibrate": bool})
    if retrain.mode not in ("prune", "soft"):
        raise ConfigError(f"'retrain.mode' must be 'prune' or 'soft', got {retrain.mode!r}.", source=source)
    from lossval.valuation import MAX_EPOCHS

    if not 1 <= retrain.epochs <= MAX_EPOCHS:
        raise ConfigError(f"'retrain.epochs' must be between 1 and {MAX_EPOCHS}, got {retrain.epochs}.", source=source)
    gate = _section(raw.get("gate"), GateConfig, "gate", source,
                    {"suite": str, "metric_tolerance": float, "refuse_when_all_worse": bool, "metric_limits": dict,
                     "compare_with_champion": bool, "allow_schema_change": bool})
    if not (math.isfinite(gate.metric_tolerance) and gate.metric_tolerance >= 0):
        raise ConfigError(f"'gate.metric_tolerance' must be a finite number >= 0, got {gate.metric_tolerance}.",
                          source=source)
    gate = dataclasses.replace(gate, metric_limits=_metric_limits(gate.metric_limits, source))
    if gate.suite is not None:
        gate = dataclasses.replace(gate, suite=_suite_path(gate.suite, base, source))
        # Its shape now, not after valuation: a misspelt key or task name would gate on less.
        path = suite_file(gate.suite)
        check_suite(read_suite(path), source=str(path), parameters=GATE_PARAMETERS)
    tracking = _section(raw.get("tracking"), TrackingConfig, "tracking", source,
                        {"uri": str, "experiment": str, "registered_model": str, "log_quarantine": bool})
    if not tracking.experiment.strip():
        raise ConfigError("'tracking.experiment' must be a non-empty name.", source=source)
    model = tracking.registered_model
    if model is not None and (not model.strip() or any(c in model for c in "/:'\"%")):
        raise ConfigError(f"'tracking.registered_model' {model!r} must be a non-empty name without '/', ':', '%' or "
                          "quotes.", source=source)
    tracking = dataclasses.replace(tracking, uri=_tracking_uri(tracking.uri, base))

    lossval_opts = raw.get("lossval") or {}
    if not isinstance(lossval_opts, dict):
        raise ConfigError("'lossval' must be a mapping of LossVal options.", source=source)
    _check_keys("lossval", lossval_opts, set(_LOSSVAL_KEYS), source)
    lossval_opts = {k: _typed("lossval", k, v, _LOSSVAL_KEYS[k], source) for k, v in lossval_opts.items()}
    _check_lossval_options(lossval_opts, source)

    scalars = {"dataset": str, "data": str, "target": str, "task": str, "id_column": str, "test_fraction": float,
               "test_path": str, "seed": int, "valuation_deployment": str}
    for k in ("task", "test_fraction", "seed"):
        if k in raw and raw[k] is None:
            _needs_value(k, getattr(PipelineConfig, k), source)
    values = {k: _typed("", k, raw[k], t, source) for k, t in scalars.items() if k in raw}
    # The splits use every bit; torch (valuation, retraining) keeps the low 32 bits: see torch_seed().
    if not 0 <= values.get("seed", 0) < 2**64:
        raise ConfigError(f"'seed' must be an integer in [0, 2**64), got {values['seed']}.", source=source)
    remote = values.get("valuation_deployment")
    if remote is not None and not re.fullmatch(r"[^/\s]+/[^/\s]+", remote):
        raise ConfigError(f"'valuation_deployment' must be '<flow name>/<deployment name>' (e.g. lossval-value/gpu), "
                          f"got {remote!r}.", source=source)
    if values.get("task", "auto") not in ("auto", "classification", "regression"):
        raise ConfigError(f"'task' must be auto, classification or regression, got {values['task']!r}.", source=source)
    _fraction("test_fraction", values.get("test_fraction", 0.2), source, low_open=True, high=0.9)
    if values.get("id_column") is not None and values.get("id_column") == values.get("target"):
        raise ConfigError(f"'id_column' and 'target' are both {values['target']!r}: row ids name rows, the target is "
                          "what the model learns; point one of them at another column.", source=source)
    if values.get("task", "auto") != "auto":
        check_metric_limits(gate.metric_limits, values["task"], source=source)
    else:  # whichever task the target turns out to be, a limit naming both kinds' metrics fails
        from lossval.retrain import METRICS

        if all(set(gate.metric_limits) - set(names) for names in METRICS.values()):
            raise ConfigError(f"'gate.metric_limits' names metrics of both tasks ({sorted(gate.metric_limits)}); a "
                              "run reports one task's: classification "
                              f"{', '.join(METRICS['classification'])}, regression {', '.join(METRICS['regression'])}.",
                              source=source)
    data = resolve(values.pop("data"))
    if values.get("test_path"):
        values["test_path"] = resolve(values["test_path"])
    def absolute(p: Any) -> str | None:  # as resolve() reads it (~ expanded), symlinks left as written
        return None if not p or "://" in str(p) else os.path.abspath(os.path.join(base, os.path.expanduser(str(p))))

    _refuse_same_files({"data": data, "validation.path": validation.path if validation.strategy == "file" else None,
                        "test_path": values.get("test_path")}, source,
                       as_written={"data": absolute(raw.get("data")), "test_path": absolute(raw.get("test_path")),
                                   "validation.path": absolute((raw.get("validation") or {}).get("path"))
                                   if validation.strategy == "file" else None})
    named = values.pop("dataset", None)
    dataset = named or data_stem(Path(str(data)).name)  # loans.csv.gz: "loans"
    if not DATASET_NAME_RE.fullmatch(dataset):
        whence = "" if named else " (taken from the data file's name, as no 'dataset' is set: set one)"
        raise ConfigError(f"'dataset' {dataset!r}{whence} may only hold ASCII letters, digits, '.', '_' and '-', and not "
                          "only dots (it names folders in the workspace).", source=source)
    config = PipelineConfig(
        data=str(data), dataset=dataset, include=tuple(features["include"]) if features.get("include") else None,
        exclude=tuple(features.get("exclude") or ()), categorical=tuple(features.get("categorical") or ()),
        numeric=tuple(features.get("numeric") or ()),
        validation=validation, lossval=lossval_opts,
        pruning=pruning, retrain=retrain, gate=gate, tracking=tracking, **values,
    )
    _warn_unused(raw, config, source)
    return config


def _warn_unused(raw: dict[str, Any], config: PipelineConfig, source: str | None) -> None:
    """Warn about each key the file sets that the config's other choices leave unread (a setting that does nothing).

    Not an error: keeping ``pruning.fraction`` while trying policy ``two_means`` is a fair way to
    work, but the user should not believe it applies. Said once per process: ``lossval run`` reads
    its config several times (its checks, the tracking warm-up, the flow); within
    :func:`config_warnings_to` (a nightly or new-data flow run) once per block, to its ``say``.
    """
    unused = config.unused_keys()
    set_keys = [k for k, value in raw.items() if value is not None and not isinstance(value, dict)]
    set_keys += [f"{section}.{k}" for section, body in raw.items() if isinstance(body, dict)
                 for k, value in body.items() if value is not None]
    for key in (k for k in set_keys if k in unused and not _at_default(raw, config, k)):
        if _first_time(source, key, unused[key]):
            _say(_unused_message(source, key, unused[key]))
    roles = {**{c: f"the {key}" for c, key in config._split_columns().items()}, config.target: "the target",
             config.id_column: "the id column"}
    # The encoder leaves these out whatever include says (exclude wins): a column listed there would silently be no
    # feature. The target is refused by the encoder, so it is not said here too.
    dropped = [c for c in config.include or () if c != config.target and (c in roles or c in config.exclude)]
    if dropped and _first_time(source, "features.include", repr(dropped)):
        named = ", ".join(f"{c!r} ({roles.get(c, 'in features.exclude')})" for c in dropped)
        one = len(dropped) == 1
        _say(f"{source + ': ' if source else ''}'features.include' names {named}, which "
             f"{'is' if one else 'are'} left out of the features all the same: the model does not use "
             f"{'it' if one else 'them'}. Remove {'it' if one else 'them'} from features.include (or, for an "
             "excluded column you meant to use, from features.exclude).")
    features = set(config.numeric_features())
    idle = [c for c in config.numeric if c not in features]
    if idle:  # the encoder reads no numeric declaration of a column that is no feature
        named = ", ".join(f"{c!r} ({roles.get(c, 'excluded' if c in config.exclude else 'not in features.include')})"
                          for c in idle)
        if not _first_time(source, "features.numeric", named):
            return
        one = len(idle) == 1
        _say(f"{source + ': ' if source else ''}'features.numeric' names {named}, which "
             f"{'is no feature' if one else 'are no features'}: declaring {'it' if one else 'them'} numeric "
             f"has no effect. Remove {'it' if one else 'them'} from features.numeric.")


def _unused_message(source: str | None, key: str, why: str) -> str:
    """The warning about a key that is set but left unread (``why``: the choice that leaves it so)."""
    return (f"{source + ': ' if source else ''}'{key}' is set but has no effect: {why}. Remove it, "
            "or change that choice if you meant it to apply.")


def unused_for_task(config: PipelineConfig, task: str, *, source: str | None = None) -> list[str]:
    """The warnings :func:`load_config` could not give a config of ``task: auto``: one per key that the task the run
    resolved (``task``) leaves unread, such as ``retrain.calibrate: false`` of a regression, in the same words.

    Only keys away from their default: a key the file leaves out has its default, and one it writes at its default is
    not warned about at load either (a config lossval wrote out sets every key). Keys the config's own choices leave
    unread were named at load, and a config that sets ``task`` had its task's keys named there: neither is named
    again. The flow says these once per run, as soon as it knows the task.
    """
    named = config.unused_keys()
    out = []
    for key, why in config.unused_keys(task).items():
        section, _, name = key.rpartition(".")
        value = getattr(getattr(config, section) if section else config, name)
        if key not in named and value != config.default_of(key):
            out.append(_unused_message(source, key, why))
    return out


def _first_time(source: str | None, key: str, detail: str) -> bool:
    """Whether this warning about ``key`` of the config ``source`` is not yet said in this process (and now is);
    within :func:`config_warnings_to`, in that block.

    Keyed by the file, not the message: the CLI names the config as typed, the flow by its resolved path.
    """
    seen = (os.path.realpath(source) if source else None, key, detail)
    scope = _WARNINGS_TO.get()
    with _UNUSED_WARNED_LOCK:
        said = _UNUSED_WARNED if scope is None else scope[1]
        if seen in said:
            return False
        said.add(seen)
    return True


def _say(message: str) -> None:
    """A config warning: to the ``say`` of the enclosing :func:`config_warnings_to`, else a Python ``UserWarning``
    (placed, as before, at the call of :func:`config_from_dict`)."""
    scope = _WARNINGS_TO.get()
    if scope is None:
        import warnings

        warnings.warn(message, UserWarning, stacklevel=4)
    else:
        scope[0](message)


@contextlib.contextmanager
def config_warnings_to(say: Callable[[str], None]) -> Iterator[None]:
    """Within the block, the warnings of the configs loaded (keys left unread, ``features.include`` and
    ``features.numeric`` columns that are no features) go to ``say``, each once, instead of Python's warnings.

    For the nightly and new-data flows: a served or long-lived process runs them night after night, and
    each run's log (what an operator reads in Prefect's UI) says what is wrong with its config, not only
    the first run's process stderr. Outside any block a warning is said once per process, as the CLI wants.
    """
    token = _WARNINGS_TO.set((say, set()))
    try:
        yield
    finally:
        _WARNINGS_TO.reset(token)


def _at_default(raw: dict[str, Any], config: PipelineConfig, dotted: str) -> bool:
    """Whether the file writes ``dotted`` at its default value: a config lossval wrote out in full (the run's
    ``config.json``) sets every key, and one left at its default says nothing the user believes applies."""
    section, _, key = dotted.rpartition(".")
    value = raw[section][key] if section else raw[key]
    default = config.default_of(dotted)
    if default is dataclasses.MISSING:
        return False
    return value == default or (isinstance(default, tuple) and isinstance(value, list) and tuple(value) == default)


# The unused-key warnings this process has shown (the tracking warm-up loads the config in a thread).
_UNUSED_WARNED: set[tuple[str | None, str, str]] = set()
_UNUSED_WARNED_LOCK = threading.Lock()
# Where config warnings go within config_warnings_to: its say, and what the block has said.
_WARNINGS_TO: contextvars.ContextVar[tuple[Callable[[str], None], set[tuple[str | None, str, str]]] | None] = (
    contextvars.ContextVar("lossval_config_warnings_to", default=None))
