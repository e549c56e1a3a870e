"""The shape of an expectation suite file, checked before anything runs.

A suite is JSON: ``{"name": ..., "meta": {...}, "expectations": [{"type", "kwargs", "meta"}, ...]}``
(see ``expectations/`` and :mod:`tasks.gx`, which builds it with Great Expectations). Great
Expectations itself is forgiving in ways that make a gate check less than it was asked to: a
misspelt ``"expectations"`` key is an empty suite, an ``only_for`` that names no task drops its
expectation for every task. This module refuses those, naming the file and the entry, without
importing Great Expectations (config loading stays fast).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lossval.errors import ConfigError

__all__ = ["SUITES_DIR", "DEFAULT_GATE_SUITE", "SUITE_KEYS", "EXPECTATION_KEYS", "TASK_KINDS", "GATE_PARAMETERS",
           "check_suite", "read_suite", "suite_file"]

def _suites_dir() -> Path:
    checkout = Path(__file__).resolve().parent.parent / "expectations"
    # A source checkout (editable install) reads expectations/ itself; a wheel installs it as lossval/expectations/.
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "expectations"


SUITES_DIR = _suites_dir()
"""The suites shipped with lossval."""
DEFAULT_GATE_SUITE = "pruned_data"

SUITE_KEYS = frozenset({"name", "meta", "expectations", "notes", "id"})
EXPECTATION_KEYS = frozenset({"type", "kwargs", "meta", "notes", "id", "description"})
TASK_KINDS = ("classification", "regression")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
GATE_PARAMETERS = frozenset({"target", "min_rows", "classes"})
"""What the promotion gate fills in (``tasks.gate``): the target column, the least kept rows, the classes."""


def suite_file(suite: str | Path | None) -> Path:
    """The file of a suite: a ``.json`` path as given, else the shipped suite of that name (None: the gate's default)."""
    suite = DEFAULT_GATE_SUITE if suite is None else suite
    return Path(suite) if str(suite).endswith(".json") else SUITES_DIR / f"{suite}.json"


def read_suite(path: str | Path) -> Any:
    """The parsed JSON of a suite file (ConfigError naming the file when it is missing or not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("expectation suite not found.", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"expectation suite cannot be read ({exc}).", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expectation suite is not valid JSON: {exc}", source=str(path)) from None


def check_suite(spec: Any, *, source: str, parameters: set[str] | frozenset[str]) -> dict:
    """Refuse a suite that would check less than it says; return it unchanged when sound.

    Args:
        spec: The parsed suite JSON.
        source: The suite file, for messages.
        parameters: Names the caller fills in: ``${name}`` placeholders and ``{"$PARAMETER": name}``.

    Raises:
        ConfigError: not an object; unknown top-level or expectation keys; ``expectations``
            missing, not a list or empty; an expectation without a string ``type``, with
            ``kwargs``/``meta`` that are not objects, or with an ``only_for`` that is not a task
            kind; a placeholder or parameter the caller does not provide.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"an expectation suite is a JSON object with an 'expectations' list, not a "
                          f"{type(spec).__name__}.", source=source)
    unknown = sorted(set(spec) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in the suite; it may hold {sorted(SUITE_KEYS)} "
                          "(a misspelt 'expectations' would check nothing).", source=source)
    expectations = spec.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise ConfigError("the suite's 'expectations' must be a non-empty list: an empty suite checks nothing.",
                          source=source)
    for i, entry in enumerate(expectations):
        where = f"expectations[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object with 'type' and 'kwargs', got {entry!r:.80}.", source=source)
        where += f" ({entry.get('type')!r})" if isinstance(entry.get("type"), str) else ""
        bad_keys = sorted(set(entry) - EXPECTATION_KEYS)
        if bad_keys:
            raise ConfigError(f"{where} has unknown key(s) {bad_keys}; it may hold {sorted(EXPECTATION_KEYS)}.",
                              source=source)
        if not isinstance(entry.get("type"), str) or not entry["type"]:
            raise ConfigError(f"{where} needs a 'type' such as 'expect_column_values_to_not_be_null'.", source=source)
        for part in ("kwargs", "meta"):
            if part in entry and not isinstance(entry[part], dict):
                raise ConfigError(f"{where}: '{part}' must be an object, got {entry[part]!r:.80}.", source=source)
        only_for = (entry.get("meta") or {}).get("only_for")
        if only_for is not None and only_for not in TASK_KINDS:
            raise ConfigError(f"{where}: meta.only_for must be one of {list(TASK_KINDS)} (or left out for both), "
                              f"got {only_for!r}; otherwise the expectation would run for no task.", source=source)
        _check_names(entry.get("kwargs") or {}, where=where, source=source, parameters=parameters)
    _check_names(spec.get("name", ""), where="the suite name", source=source, parameters=parameters)
    return spec


def _check_names(obj: Any, *, where: str, source: str, parameters: set[str] | frozenset[str]) -> None:
    if isinstance(obj, str):
        for name in _PLACEHOLDER.findall(obj):
            if name not in parameters:
                raise ConfigError(f"{where} uses ${{{name}}}; the known names are {sorted(parameters)}.", source=source)
    elif isinstance(obj, list):
        for item in obj:
            _check_names(item, where=where, source=source, parameters=parameters)
    elif isinstance(obj, dict):
        if set(obj) == {"$PARAMETER"} and obj["$PARAMETER"] not in parameters:
            raise ConfigError(f"{where} uses the parameter {obj['$PARAMETER']!r}; the known ones are "
                              f"{sorted(parameters)}.", source=source)
        for value in obj.values():
            _check_names(value, where=where, source=source, parameters=parameters)
