"""Great Expectations checks, from the suites in ``expectations/``.

Suites are JSON files. Strings ``${name}`` are filled in before the suite is built (column
names such as the target), ``{"$PARAMETER": "name"}`` values are GX expectation parameters
given at validation time (row-count minimum, class set), and an expectation whose ``meta``
has ``"only_for": "classification"`` is skipped for other tasks. Each expectation loaded from a file keeps its
position in the file's ``expectations`` list in ``meta.lossval_entry`` (:data:`ENTRY`), so that messages and
``gate.json`` name the entry as ``expectations[i]``. Validation runs through a
Checkpoint on an in-memory (ephemeral) context, so nothing is written into the project.
GX is imported here, inside the task that needs it (the import takes ~4 s).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from lossval.errors import ConfigError
from lossval.suites import SUITES_DIR, check_suite, read_suite, suite_file
from tasks._scoped import quieted_loggers

__all__ = ["SUITES_DIR", "load_suite", "validate_frame", "range_expectations", "range_margin", "unranged_columns",
           "check_suite_builds", "check_suite_columns", "RANGE_WHY", "ENTRY", "entry_name", "observed_is_data",
           "WITHHELD", "without_range_bounds"]
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
RANGE_WHY = "feature range as in the validation split"  # meta.why of range_expectations(), read by the gate
ENTRY = "lossval_entry"  # meta key: the expectation's index in its suite file's "expectations" list
# Expectations whose GX observed value is no value of the data: a count of rows or columns, the column names, a type,
# a share of non-null rows. Any other's (a column's max, min, mean, median, quantiles, stdev or sum, its distinct or
# most common values, its count of unique values, a custom check's) comes from the rows' values.
_OBSERVED_NOT_DATA = frozenset({
    "expect_table_row_count_to_be_between", "expect_table_row_count_to_equal",
    "expect_table_row_count_to_equal_other_table",
    "expect_table_column_count_to_be_between", "expect_table_column_count_to_equal",
    "expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set", "expect_column_to_exist",
    "expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list", "expect_column_type_to_be",
    "expect_column_proportion_of_non_null_values_to_be_between"})
#: What ``tracking.log_quarantine: false`` logs in place of such an observed value.
WITHHELD = "withheld: tracking.log_quarantine is false; the run folder's gate.json has it"


def observed_is_data(expectation_type: str) -> bool:
    """Whether GX's observed value of this expectation type is a value of the rows (a column's max, its distinct
    values, ...): then ``tracking.log_quarantine: false`` keeps it out of the tracking store. An unknown type's is."""
    return expectation_type not in _OBSERVED_NOT_DATA


def load_suite(suite: str | Path, params: dict[str, Any], *, task_kind: str | None = None) -> dict:
    """Read a suite JSON (a name in ``expectations/`` or a path) and fill in ``${...}`` placeholders."""
    path = suite_file(suite)
    spec = check_suite(read_suite(path), source=str(path), parameters=frozenset(params))

    def fill(obj: Any) -> Any:
        if isinstance(obj, str):
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in params:
                    raise ConfigError(f"suite uses ${{{m.group(1)}}} but no such parameter is known.", source=str(path))
                return str(params[m.group(1)])
            return _PLACEHOLDER.sub(sub, obj)
        if isinstance(obj, list):
            return [fill(x) for x in obj]
        if isinstance(obj, dict):
            return {k: fill(v) for k, v in obj.items()}
        return obj

    expectations = [fill({**e, "meta": {**(e.get("meta") or {}), ENTRY: i}})
                    for i, e in enumerate(spec.get("expectations", []))
                    if (e.get("meta") or {}).get("only_for") in (None, task_kind)]
    return {"name": spec.get("name", path.stem), "expectations": expectations, "meta": spec.get("meta", {})}


#: ``range_expectations``' margin for ``n`` reference rows: ``max(margin, RANGE_MARGIN_ROWS / n)``.
RANGE_MARGIN_ROWS = 40.0


def range_margin(n: int, margin: float = 0.25) -> float:
    """How far (in units of the reference's min-max spread) the range is widened on each side, for ``n`` rows.

    A few rows span less than their distribution does: with 10 validation rows and a 25% margin,
    38% of columns whose kept rows come from the very same normal distribution had more than 5%
    of them outside (20,000 simulated draws; 7% at 20 rows, none at 50). ``max(margin, 40 / n)``
    keeps that under 0.1% per column from 10 rows up for normal, Student-t(5), lognormal
    (sigma 0.5), exponential and uniform columns, and is ``margin`` itself from 160 rows up.
    """
    return max(margin, RANGE_MARGIN_ROWS / max(n, 1))


def range_expectations(reference: pd.DataFrame, columns: list[str], *, margin: float = 0.25,
                       mostly: float = 0.95) -> list[dict]:
    """Numeric columns of the checked data must mostly lie in the reference's range, widened by :func:`range_margin`.

    Columns with fewer than two distinct values in the reference (a flag that is 0 in every
    validation row, say) have no spread to measure a range by and are not checked; see
    :func:`unranged_columns`.
    """
    out = []
    for col in columns:
        s = reference[col]
        if s.dtype.kind not in "iuf":
            continue
        s = s.dropna()
        if s.nunique() < 2:
            continue
        lo, hi = float(s.min()), float(s.max())
        pad = range_margin(len(s), margin) * (hi - lo)
        out.append({"type": "expect_column_values_to_be_between",
                    "kwargs": {"column": col, "min_value": lo - pad, "max_value": hi + pad, "mostly": mostly},
                    "meta": {"why": RANGE_WHY}})
    return out


def without_range_bounds(record: dict) -> dict:
    """A ``gate.json`` record with the bounds of lossval's range checks (:func:`range_expectations`) withheld, in its
    ``checks`` and in GX's result: the validation split's min and max, widened by a known margin, give those of its
    rows back. What leaves the run folder when ``tracking.log_quarantine`` is false; a suite's own bounds stay."""
    ranged = {(c.get("column"), c.get("min_value"), c.get("max_value")) for c in record.get("checks") or []
              if c.get("source") == "range check"}

    def check(c: dict) -> dict:
        if c.get("source") != "range check":
            return c
        return {k: WITHHELD if k in ("min_value", "max_value") else v for k, v in c.items()}

    def result(r: dict) -> dict:  # GX keeps no meta: a range check is known by its column and bounds (as rounded)
        kwargs = r.get("kwargs")
        if r.get("expectation_type") != "expect_column_values_to_be_between" or not isinstance(kwargs, dict):
            return r
        if (kwargs.get("column"), _plain(kwargs.get("min_value")), _plain(kwargs.get("max_value"))) not in ranged:
            return r
        return {**r, "kwargs": {k: WITHHELD if k in ("min_value", "max_value") else v for k, v in kwargs.items()}}

    out = {**record, "checks": [check(c) for c in record.get("checks") or []]} if "checks" in record else dict(record)
    gx = record.get("gx")
    if isinstance(gx, dict) and isinstance(gx.get("validation_results"), list):
        out["gx"] = {**gx, "validation_results": [
            {**v, "expectations": [result(r) for r in v.get("expectations") or []]} if isinstance(v, dict) else v
            for v in gx["validation_results"]]}
    return out


def unranged_columns(reference: pd.DataFrame, columns: list[str]) -> list[str]:
    """The numeric ``columns`` that :func:`range_expectations` leaves unchecked: under two distinct values in
    ``reference``."""
    return [c for c in columns if reference[c].dtype.kind in "iuf" and reference[c].dropna().nunique() < 2]


def _plain(value: Any) -> Any:
    """A JSON-ish value for messages: numpy scalars as Python ones (no ``np.float64(...)``), floats to 4 significant
    digits."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return value
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _raised(result: dict) -> str | None:
    """The first line of the error GX met evaluating an expectation (then ``result`` is empty), or None."""
    info = result.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            lines = str(entry.get("exception_message") or "an error").strip().splitlines()
            return lines[0][:200] if lines else "an error"
    return None


def numbers_as_read(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df`` with each of ``columns`` (numeric to the encoder) held as text parsed into numbers.

    One bad CSV cell once made a column text; the encoder reads its values as numbers (and refused
    any that are not), so the range checks compare them as numbers too, not as strings.
    """
    text = [c for c in columns if c in df.columns and df[c].dtype.kind not in "iufb"]
    if not text:
        return df
    return df.assign(**{str(c): pd.to_numeric(df[c].astype(object), errors="coerce") for c in text})


def _bound(value: float) -> str:
    """An expectation's bound for messages: whole numbers as written (100000, not ``1e+05``), others to 4 digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _describe(result: dict, *, withhold: bool = False) -> str:
    """One failed expectation in words; ``withhold``: its observed value, when a value of the rows
    (:func:`observed_is_data`), and a range check's bounds (:func:`range_expectations`) are said to be withheld (what
    the tracking store gets with ``tracking.log_quarantine`` false). The values missing from a ``value_set`` are the
    suite's own, and stay."""
    cfg = result.get("expectation_config", {})
    kwargs = cfg.get("kwargs", {})
    where = f" on column {kwargs['column']!r}" if "column" in kwargs else ""
    found = result.get("result") or {}
    observed = found.get("observed_value")
    missing = found.get("partial_missing_list")
    if observed is None and missing:
        observed = f"missing {_plain(missing)}"
    unexpected = found.get("unexpected_percent")
    detail = f" (observed {_plain(observed)!r})" if observed is not None else ""
    if withhold and found.get("observed_value") is not None and observed_is_data(cfg.get("type", "?")):
        detail = f" (observed value {WITHHELD})"
    mostly = _number(kwargs.get("mostly"))
    if unexpected is not None:
        allowed = f", at most {(1 - mostly) * 100:.4g}% allowed" if mostly is not None else ""
        detail += f" ({unexpected:.1f}% unexpected{allowed})"
    lo, hi = _number(kwargs.get("min_value")), _number(kwargs.get("max_value"))
    if withhold and (cfg.get("meta") or {}).get("why") == RANGE_WHY and (lo is not None or hi is not None):
        detail += f" (expected range {WITHHELD})"  # the validation split's min and max, widened by a known margin
    elif lo is not None and hi is not None:
        detail += f" (expected between {_bound(lo)} and {_bound(hi)})"
    elif lo is not None or hi is not None:
        detail += f" (expected at least {_bound(lo)})" if hi is None else f" (expected at most {_bound(hi)})"
    error = _raised(result)
    if error is not None:
        detail += f" (could not be evaluated: {error})"
    return f"{cfg.get('type', '?')}{where}{detail}"


def _number(value: Any) -> float | int | None:
    """``value`` when it is a number (not a bool, not a ``$PARAMETER`` reference), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _finding(result: dict) -> dict:
    """What failed, for the gate's remedies (:func:`tasks.gate.remedies`; never written): the expectation type, its
    column, its ``meta.why``, its entry in the suite file (None for one lossval added) and its ``min_value`` when the
    suite writes a number there. Unlike :func:`_check`'s, a ``$PARAMETER`` bound stays None: it is lossval's own
    (``min_rows``), not a minimum the user can lower in the suite."""
    cfg = result.get("expectation_config", {})
    kwargs, meta = cfg.get("kwargs") or {}, cfg.get("meta") or {}
    return {"type": cfg.get("type", "?"), "column": kwargs.get("column"), "why": meta.get("why"),
            "error": _raised(result), "entry": meta.get(ENTRY), "min_value": _number(kwargs.get("min_value"))}


def _check(result: dict, params: dict[str, Any]) -> dict:
    """One expectation's verdict for ``gate.json`` (every expectation, passed or not; :func:`_finding` is the
    remedies' record of a failed one): where it comes from (its suite entry, or lossval's range check), what it
    checks (its numeric bounds, ``$PARAMETER`` ones as given in ``params``), and what GX found."""
    cfg = result.get("expectation_config", {})
    kwargs, meta = cfg.get("kwargs") or {}, cfg.get("meta") or {}
    entry = meta.get(ENTRY)
    source = "suite" if entry is not None else "range check" if meta.get("why") == RANGE_WHY else "added"
    out = {"entry": entry, "source": source, "type": cfg.get("type", "?"), "column": kwargs.get("column"),
           "success": bool(result.get("success"))}
    found = result.get("result") or {}
    for key in ("observed_value", "unexpected_percent"):
        if found.get(key) is not None:
            out["observed" if key == "observed_value" else key] = _plain(found[key])
    for key in ("min_value", "max_value"):
        bound = kwargs.get(key)
        if isinstance(bound, dict) and "$PARAMETER" in bound:
            bound = params.get(bound["$PARAMETER"])
        if _number(bound) is not None:
            out[key] = _plain(bound)
    if kwargs.get("mostly") is not None:
        out["mostly"] = kwargs["mostly"]
    error = _raised(result)
    if error is not None:
        out["error"] = error
    return out


def entry_name(expectation: dict) -> str:
    """An expectation as a user finds it: ``expectations[1] (expect_... on column 'x')``, the index in its suite file;
    one lossval added (a range check) is said to be so."""
    kwargs = expectation.get("kwargs") if isinstance(expectation.get("kwargs"), dict) else {}
    what = str(expectation.get("type") or "?") + (f" on column {kwargs['column']!r}" if "column" in kwargs else "")
    entry = (expectation.get("meta") or {}).get(ENTRY)
    if entry is not None:
        return f"expectations[{entry}] ({what})"
    return f"lossval's range check {what}" if (expectation.get("meta") or {}).get("why") == RANGE_WHY else what


def _check_columns(spec: dict, df: pd.DataFrame, suite: str | Path) -> None:
    """A suite expectation on a column the rows lack is the suite's mistake, not a data failure: say so.

    Columns the suite itself checks with ``expect_column_to_exist`` are exempt (a missing one is
    then a finding about the data, reported by that expectation).
    """
    exists = {e["kwargs"].get("column") for e in spec["expectations"]
              if e["type"] == "expect_column_to_exist" and isinstance(e.get("kwargs"), dict)}
    for e in spec["expectations"]:
        kwargs = e.get("kwargs") or {}
        named = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
        named += [c for c in kwargs.get("column_list") or [] if isinstance(c, str)]
        missing = [c for c in named if c not in df.columns and c not in exists]
        if missing:
            raise ConfigError(f"expectation suite {spec['name']!r}: {entry_name(e)} names column(s) {missing}, which "
                              f"the checked rows do not have (they have {list(df.columns)[:12]}); fix that entry's "
                              "column name in the suite file.", source=str(suite_file(suite)))


def validate_frame(df: pd.DataFrame, *, suite: str | Path, params: dict[str, Any], task_kind: str | None = None,
                   extra: list[dict] | None = None) -> dict:
    """Validate ``df`` against a suite through a GX Checkpoint.

    Args:
        df: The rows to check.
        suite: Suite name in ``expectations/`` or a path to a suite JSON.
        params: Values for ``${...}`` placeholders and ``$PARAMETER`` references.
        task_kind: ``classification``/``regression``: filters task-specific expectations.
        extra: Expectations (dicts) added at run time (e.g. feature ranges).

    Returns:
        ``{"success": bool, "failures": [human-readable strings], "failures_without_values": [the same, an observed
        value of the rows withheld (:func:`observed_is_data`)], "failed": [{"type", "column", "why", "error",
        "entry", "min_value"} of each failure, in the same order], "result": JSON-able dict, "suite": name,
        "checks": [each expectation's verdict: {"entry", "source", "type", "column", "success", and "observed",
        "unexpected_percent", "mostly", "error" when there are}]}``.
    """
    with _scoped_gx_side_effects():
        return _validate(df, suite=suite, params=params, task_kind=task_kind, extra=extra)


@contextlib.contextmanager
def _scoped_gx_side_effects() -> Iterator[None]:
    """GX's loggers at WARNING while it runs; the caller's warning display and logger levels put back after.

    GX sets INFO on its own module loggers (a line per ephemeral context), and several of its
    modules call ``logging.captureWarnings(True)`` when imported, which would send the calling
    process's warnings into logging from then on.
    """
    import logging
    import warnings

    shown = warnings.showwarning
    try:
        with quieted_loggers("great_expectations", "great_expectations.data_context.types.base") as quiet:
            import great_expectations  # noqa: F401 (its import sets INFO on its loggers: quieted again below)

            quiet()
            yield
    finally:
        if warnings.showwarning is not shown:
            logging.captureWarnings(False)
            warnings.showwarning = shown


def _build(context: Any, spec: dict, suite: str | Path) -> Any:
    """The GX suite of ``spec`` in ``context``; an expectation GX cannot build is a :class:`ConfigError` naming
    the suite's file."""
    import great_expectations as gx

    gx_suite, whole = None, ""
    try:  # GX logs a traceback at ERROR for an expectation it cannot build: our error below says it in one line
        with quieted_loggers("great_expectations", level=logging.CRITICAL):
            gx_suite = context.suites.add(gx.ExpectationSuite(**spec))
    except Exception as exc:  # GX raises its own types for unknown expectations / bad kwargs
        whole = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if gx_suite is None or len(gx_suite.expectations) != len(spec["expectations"]):
        # GX logs and skips an expectation it cannot build (a misspelt type): never gate on less than asked. Each
        # entry is built alone to say which ones, and why.
        problems = [f"{entry_name(e)}: {problem}" for e in spec["expectations"] for problem in [_unbuildable(e)]
                    if problem is not None]
        if not problems:  # each builds alone: say what GX said of the whole
            problems = [whole or f"GX built {len(gx_suite.expectations)} of its {len(spec['expectations'])} "
                                 "expectations"]
        fix = "that entry" if len(problems) == 1 else "those entries"
        raise ConfigError(f"invalid expectation suite {spec['name']!r}: {'; '.join(problems)}. Fix {fix} in the suite "
                          "file (the type and arguments each expectation takes are listed at "
                          "https://greatexpectations.io/expectations/).", source=str(suite_file(suite)))
    return gx_suite


def _unbuildable(expectation: dict) -> str | None:
    """Why GX cannot build this one expectation, in a phrase per argument; None when it can."""
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import (get_expectation_impl,
                                                          list_registered_expectation_implementations)

    kind = expectation.get("type")
    try:
        with quieted_loggers("great_expectations", level=logging.CRITICAL):
            ExpectationConfiguration(**{"kwargs": {}, **expectation}).to_domain_obj()
        return None
    except ExpectationNotFoundError:
        near = difflib.get_close_matches(str(kind), list_registered_expectation_implementations(), n=1)
        return f"unknown expectation type {kind!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
    except Exception as exc:
        if not callable(getattr(exc, "errors", None)):  # not a pydantic validation error
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fields = list(getattr(get_expectation_impl(kind), "__fields__", {}))
        return _arguments_problem(exc.errors(), expectation.get("kwargs") or {}, fields)


def _arguments_problem(errors: list[dict], kwargs: dict, fields: list[str]) -> str:
    """pydantic (v1)'s errors for an expectation's arguments, one phrase per argument (its first error): an unknown one
    with the nearest argument the expectation takes, a missing one, a bad value with why."""
    first: dict[str, dict] = {}
    for err in errors:
        first.setdefault(".".join(str(part) for part in err.get("loc", ())), err)
    if len(first) > 1:  # a whole-entry check ("min_value and max_value cannot both be None") runs on what survived
        first.pop("__root__", None)  # the field checks: a bad min_value reads as none, so it would be said twice
    said = []
    for loc, err in sorted(first.items(), key=lambda item: item[1].get("type") != "value_error.extra"):
        if err.get("type") == "value_error.extra":
            near = difflib.get_close_matches(loc, [f for f in fields if f not in kwargs], n=1)
            said.append(f"unknown argument {loc!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        elif err.get("type") == "value_error.missing":
            said.append(f"argument {loc!r} is required")
        elif loc == "__root__":
            said.append(str(err.get("msg")))
        elif loc in kwargs:
            said.append(f"{loc} {kwargs[loc]!r} is not a valid value ({err.get('msg')})")
        else:
            said.append(f"{loc}: {err.get('msg')}")
    return ", ".join(said)


def check_suite_builds(suite: str | Path, *, target: str, task_kind: str) -> None:
    """Build the gate's suite now, before any expensive work: an unknown expectation type or a misspelt argument is
    then refused in seconds, naming the file, rather than after valuation and retraining.

    ``task_kind`` ``auto`` builds it for both tasks. Placeholders get stand-in values (the real ones
    come from the pruned rows); columns are checked against the rows at the gate.
    """
    import great_expectations as gx

    with _scoped_gx_side_effects():
        for spec in _stand_in_specs(suite, target=target, task_kind=task_kind):
            _build(gx.get_context(mode="ephemeral"), spec, suite)


def check_suite_columns(suite: str | Path, columns: list[str], *, target: str, task_kind: str) -> None:
    """Refuse a suite that names a column the data lacks, right after ingest: the kept rows hold the same columns
    (plus ``row_id``), so the gate would refuse it only after valuation and retraining.

    ``task_kind`` ``auto`` checks the expectations of both tasks.
    """
    frame = pd.DataFrame(columns=list(dict.fromkeys(["row_id", *columns])))
    for spec in _stand_in_specs(suite, target=target, task_kind=task_kind):
        _check_columns(spec, frame, suite)


def _stand_in_specs(suite: str | Path, *, target: str, task_kind: str) -> list[dict]:
    """The suite as the gate will load it, once per task (both for ``auto``), with stand-ins for the run-time
    parameters (the real ones come from the pruned rows)."""
    kinds = ("classification", "regression") if task_kind == "auto" else (task_kind,)
    return [load_suite(suite, {"target": target, "min_rows": 1, "classes": []}, task_kind=kind) for kind in kinds]


def _validate(df: pd.DataFrame, *, suite: str | Path, params: dict[str, Any], task_kind: str | None,
              extra: list[dict] | None) -> dict:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    spec = load_suite(suite, params, task_kind=task_kind)
    spec["expectations"] += list(extra or [])
    _check_columns(spec, df, suite)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    gx_suite = _build(context, spec, suite)
    asset = context.data_sources.add_pandas("lossval").add_dataframe_asset("frame")
    definition = asset.add_batch_definition_whole_dataframe("whole")
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=f"{spec['name']}-check", data=definition, suite=gx_suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(name=f"{spec['name']}-checkpoint", validation_definitions=[validation]))
    run = checkpoint.run(batch_parameters={"dataframe": df}, expectation_parameters={k: v for k, v in params.items()})
    result = json.loads(json.dumps(run.describe_dict(), default=str))
    failures, withheld, failed, checks = [], [], [], []
    for vr in run.run_results.values():
        for r in vr.to_json_dict().get("results", []):
            checks.append(_check(r, params))
            if not r.get("success"):
                failures.append(_describe(r))
                withheld.append(_describe(r, withhold=True))
                failed.append(_finding(r))
    checks.sort(key=lambda c: (c["entry"] is None, c["entry"] or 0))  # the suite file's order, then lossval's own
    return {"success": bool(run.success), "failures": failures, "failures_without_values": withheld, "failed": failed,
            "result": result,
            "suite": spec["name"], "checks": checks}
