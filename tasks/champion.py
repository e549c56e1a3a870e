"""The gate's comparison with the current champion: the same columns, and no worse on this run's test rows.

Without it each night's gate compares "after" only with "before", both trained on that night's
export: a bad export (labels scrambled by a broken join, a truncated table, a column gone)
can still pass and replace a champion trained on good data. Here the registered champion is
scored on the run's own test rows with its own encoder and network (the artifacts of the
registered model, loaded by lossval's code, never MLflow's model loader, which would put the
model's copy of lossval on ``sys.path``).

Refused, unless ``gate.allow_schema_change``: a feature column added or removed, a column
read as another kind (numeric / categorical), another task, target or set of classes than
the champion's, class labels of another type (``"0"`` for ``0``), and a champion that cannot
score the run's test rows. These change what the model takes or returns, so callers of ``@champion``
would break. Refused always: the primary metric below the champion's by more than
``gate.metric_tolerance``, when the champion can score the rows.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml

from lossval.config import PipelineConfig, mask_uri
from lossval.encoding import TabularEncoder
from lossval.errors import LossvalError, UnseenLevelsWarning
from lossval.retrain import evaluate
from tasks.retrain import encode_rows
from tasks.track import _scoped_process_state, mlflow_client, registered_model_name, tracking_uri

__all__ = ["schema_changes", "compare_with_champion", "unusable_model", "champion_of_run_key", "RunKeyLookup", "refused_again"]


def schema_changes(champion: TabularEncoder, current: TabularEncoder) -> list[str]:
    """What differs between the champion's encoder and this run's, in words (empty: nothing)."""
    changes = []
    if champion.task_ != current.task_:
        changes.append(f"task {champion.task_} -> {current.task_}")
    old, new = list(champion.feature_columns_), list(current.feature_columns_)
    added, removed = [c for c in new if c not in old], [c for c in old if c not in new]
    if added:
        changes.append(f"feature column(s) added: {added}")
    if removed:
        changes.append(f"feature column(s) removed: {removed}")
    def kinds(enc: TabularEncoder) -> dict[str, str]:
        return {**{c: "numeric" for c in enc.numeric_columns_}, **{c: "categorical" for c in enc.categorical_columns_}}

    kind_old, kind_new = kinds(champion), kinds(current)
    flips = [f"{c!r} {kind_old[c]} -> {kind_new[c]}" for c in new if c in kind_old and c in kind_new
             and kind_old[c] != kind_new[c]]
    if flips:
        changes.append("column(s) read as another kind: " + ", ".join(flips))
    if champion.target != current.target:
        changes.append(f"target {champion.target!r} -> {current.target!r}")
    classes_old = [] if champion.classes_ is None else [str(c) for c in champion.classes_]
    classes_new = [] if current.classes_ is None else [str(c) for c in current.classes_]
    if champion.task_ == current.task_ == "classification":
        kind_old, kind_new = _label_kinds(champion.classes_), _label_kinds(current.classes_)
        if classes_old != classes_new:
            gained, lost = sorted(set(classes_new) - set(classes_old)), sorted(set(classes_old) - set(classes_new))
            changes.append("classes changed" + (f": new {gained}" if gained else "") + (f", gone {lost}" if lost else ""))
        elif kind_old != kind_new:  # 0/1 -> "0"/"1": the same text, but callers get other values back
            changes.append(f"class labels {'/'.join(kind_old)} -> {'/'.join(kind_new)} "
                           f"(the model would return {current.classes_[0]!r} for {champion.classes_[0]!r})")
    return changes


def _label_kinds(classes: Any) -> list[str]:
    """The kinds of Python value the labels are (``bool``, ``int``, ``float``, ``str``...), sorted."""
    import numbers

    def kind(c: Any) -> str:
        if isinstance(c, (bool, np.bool_)):
            return "bool"
        if isinstance(c, numbers.Integral):
            return "int"
        if isinstance(c, numbers.Real):
            return "float"
        return type(c).__name__
    return sorted({kind(c) for c in classes})


def compare_with_champion(config: PipelineConfig, workspace: str, *, encoder: TabularEncoder, test: pd.DataFrame,
                          after: dict[str, float]) -> dict[str, Any]:
    """Compare this run with the registered champion, if there is one.

    Args:
        config: The run's config (registered model name, tracking URI, gate settings).
        workspace: The run's workspace (default tracking store).
        encoder: This run's fitted encoder.
        test: This run's test rows (features and target, as the data holds them).
        after: This run's "after" test metrics.

    Returns:
        ``{"champion": version or None, "failures": [...], "schema_changes": [...],
        "metrics": champion's test metrics or None, "note": why nothing was compared, or None,
        "worse": this run scored worse than the champion, beyond the tolerance, "worse_rules": the rules of
        :func:`tasks.gate.metric_findings` that fired against it (``primary``, ``limit:<metric>``, ``all_worse``)}``.
        A tracking store that does not answer is a failure: nothing is promoted uncompared.
    """
    record: dict[str, Any] = {"champion": None, "failures": [], "schema_changes": [], "metrics": None, "note": None,
                              "worse": False, "worse_rules": []}
    uri = tracking_uri(config, workspace)
    if _no_store_yet(uri):
        record["note"] = "no tracking database yet: no champion"
        return record
    name = registered_model_name(config)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            found = _download_champion(uri, name, Path(tmp))
        except _Unreachable as exc:
            # A refusal, not a pass: a store that answers again a moment later (a busy database, a blip of
            # the server) would otherwise let promotion replace a champion nobody compared with.
            record["failures"].append(
                f"the champion of {name} could not be read to compare with ({exc}). Rerun once the tracking store "
                "answers; gate.compare_with_champion: false promotes without comparing")
            return record
        except _Unusable as exc:  # its files are gone, or not a lossval model's
            record["champion"] = exc.version
            record["failures"].append(_unreadable(name, exc.version, str(exc)))
            return record
        if found is None:
            record["note"] = f"{name} has no champion yet"
            return record
        version, artifacts = found
        record["champion"] = version
        from lossval.serving import LossvalPyfunc

        try:
            champion = LossvalPyfunc().load(**artifacts)
        except Exception as exc:  # noqa: BLE001 (an encoder or network this lossval cannot read)
            record["failures"].append(_unreadable(name, version, f"{type(exc).__name__}: {str(exc).strip()[:300]}"))
            return record
    changes = schema_changes(champion.encoder, encoder)
    record["schema_changes"] = changes
    if changes and not config.gate.allow_schema_change:
        record["failures"].append(
            f"schema differs from the champion ({name} version {version}): " + "; ".join(changes)
            + ". Callers of @champion would break; if the change is meant, set gate.allow_schema_change: true for "
            "this run")
    if champion.encoder.task_ != encoder.task_ or champion.encoder.target != encoder.target:
        scores, why = None, "it predicts another target or task"
    else:
        scores, why = _score(champion, test, target=config.target)
    if scores is None:
        note = f"the champion ({name} version {version}) cannot score this run's test rows: {why}"
        if config.gate.allow_schema_change:
            record["note"] = note + " (gate.allow_schema_change: promoted without comparing metrics)"
        elif not changes:  # no schema change named, yet uncompared: never promote past a champion unscored
            record["failures"].append(
                note + ". Nothing is promoted uncompared; if this run is meant to replace it anyway, set "
                "gate.allow_schema_change: true for this run")
        else:
            record["note"] = note
        return record
    record["metrics"] = scores
    from tasks.gate import PRIMARY_METRIC, metric_findings

    # The rules "after" meets against "before" (primary metric within the tolerance, gate.metric_limits, and with
    # gate.refuse_when_all_worse some metric better when one is worse), against the champion on the same rows: with
    # the primary rule alone, a run worse on every metric replaced the champion, and such drops added up run by run.
    metric = PRIMARY_METRIC[encoder.task_]
    tol = config.gate.metric_tolerance
    shared = [m for m in after if m in scores]
    findings = metric_findings({"before": {m: scores[m] for m in shared}, "after": {m: after[m] for m in shared}},
                               task=encoder.task_, tolerance=tol, refuse_when_all_worse=config.gate.refuse_when_all_worse,
                               limits={m: v for m, v in config.gate.metric_limits.items() if m in shared})
    against = f"the champion's ({name} version {version}) on this run's test rows"
    for rule, text in findings:
        if rule == "primary":
            record["failures"].append(f"metric {metric} worse than {against}: after {after[metric]:.4f} vs champion "
                                      f"{scores[metric]:.4f} (tolerance {tol})")
        else:  # a metric worse than its limit, or no metric better than the champion's (champion -> this run)
            record["failures"].append(f"against {against} (champion -> this run): {text}")
    record["worse"] = bool(findings)
    record["worse_rules"] = [rule for rule, _ in findings]  # which gate key would let it pass: the remedy names it
    return record


class _Unreachable(Exception):
    """The tracking server or database did not answer."""


class _Unusable(Exception):
    """The champion's files could not be fetched or are not a lossval model's."""

    def __init__(self, message: str, version: str) -> None:
        super().__init__(message)
        self.version = version


def _unreadable(name: str, version: str, reason: str) -> str:
    return (f"the champion ({name} version {version}) could not be read to compare with ({reason}). If it is gone "
            "for good (a moved or cleaned workspace), set gate.compare_with_champion: false for one run to promote "
            "without comparing")


def _download_champion(uri: str, name: str, dst: Path) -> tuple[str, dict[str, str]] | None:
    """``(version, {"encoder", "weights", "network": local path})`` of ``name@champion``, or None when it has none.

    Raises:
        _Unreachable: the tracking store did not answer.
        _Unusable: the champion's files could not be fetched, or it is not a lossval model.
    """
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_client(uri) as client:
            try:
                version = client.get_model_version_by_alias(name, "champion")
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                    return None
                raise
    except Exception as exc:  # noqa: BLE001 (LossvalError from the client; a broken database's own errors)
        raise _Unreachable(str(exc) if isinstance(exc, LossvalError) else f"{type(exc).__name__}: {exc}") from None
    number = str(version.version)
    try:
        return number, _download_model_files(uri, str(version.source), dst)
    except _Unusable as exc:
        raise _Unusable(str(exc), number) from None


def _download_model_files(uri: str, source: str, dst: Path) -> dict[str, str]:
    """``{"encoder", "weights", "network": local path}`` of the lossval model logged at ``source``.

    Raises:
        _Unusable: its files could not be fetched (gone, unreadable), or it is not a lossval model.
    """
    from mlflow.artifacts import download_artifacts

    source = source.rstrip("/")
    try:
        with _scoped_process_state():  # no progress bars, short HTTP retries
            mlmodel = Path(download_artifacts(artifact_uri=f"{source}/MLmodel", dst_path=str(dst), tracking_uri=uri))
            listed = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"].get("artifacts") or {}
            if not {"encoder", "weights", "network"} <= set(listed):
                raise _Unusable(f"not a lossval model: its artifacts are {sorted(listed)}", "")
            download_artifacts(artifact_uri=f"{source}/artifacts", dst_path=str(dst), tracking_uri=uri)
            paths = {key: dst / listed[key]["path"] for key in ("encoder", "weights", "network")}
            missing = sorted(str(p.relative_to(dst)) for p in paths.values() if not p.is_file())
            if missing:
                raise _Unusable(f"{source} lacks {', '.join(missing)}", "")
    except _Unusable:
        raise
    except Exception as exc:  # noqa: BLE001 (MLflow, OSError, YAML: the files at its source are not usable)
        raise _Unusable(f"{type(exc).__name__} reading {source}: {str(exc).strip()[:300]}", "") from None
    return {key: str(path) for key, path in paths.items()}


class RunKeyLookup(NamedTuple):
    """:func:`champion_of_run_key`'s answer: the champion when a run of the key registered it, else why not."""

    champion: dict[str, str | None] | None
    #: why a run goes ahead, in words ("" when ``champion`` is set)
    reason: str
    #: the tracking store did not answer: the run goes ahead, and its gate refuses unless the store answers then
    unreachable: bool = False


# MLflow's answers for "no such registered model" and "no such alias": the store answered, there is no champion.
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def champion_of_run_key(config: PipelineConfig, workspace: str, run_key: str) -> RunKeyLookup:
    """The champion, when a run of ``run_key`` registered it and its files still load; else why not.

    A run of the same key (same data, curated files, config and lossval version) would reuse that
    version and promote it again: the nightly flow skips such a dataset. No champion either when the
    run folder of the latest run that gated it is gone (a run then writes this data's kept rows and
    quarantine again), and when the store does not answer or the model has no champion: the run
    then goes ahead and meets it. ``reason`` says which, for the log.

    Returns:
        ``champion``: ``{"version", "run_id" (lossval's run id), "run_dir", "mlflow_run_id", "snapshot"}`` of the
        latest run that gated the champion version (:func:`tasks.track.promote` retags a reused version).
    """
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(config, workspace)
    name = registered_model_name(config)
    if _no_store_yet(uri):
        return RunKeyLookup(None, f"no champion yet (no MLflow store at {mask_uri(uri)})")
    try:
        with mlflow_client(uri) as client:
            try:
                version = client.get_model_version_by_alias(name, "champion")
            except MlflowException as exc:
                if exc.error_code in _NOT_FOUND:
                    return RunKeyLookup(None, f"no champion yet ({name} has no @champion)")
                raise
    except LossvalError as exc:
        return RunKeyLookup(None, f"the champion could not be looked up: {str(exc).rstrip('.')}", unreachable=True)
    tags = version.tags or {}
    if tags.get("lossval_run_key") != run_key:
        return RunKeyLookup(None, f"the champion (version {version.version}) came from another run key: the data, "
                                  "curated validation or test files, config or lossval version differ")
    unusable = unusable_model(uri, str(version.source))
    if unusable:
        return RunKeyLookup(None, f"the champion (version {version.version}) is this data's, but its model cannot "
                                  f"be loaded ({unusable})")
    run_dir = tags.get("run_dir")
    if not run_dir or not (Path(run_dir) / "manifest.json").is_file():
        # its run folder was deleted or is elsewhere: a run makes this data's outputs again
        return RunKeyLookup(None, f"the champion (version {version.version}) is this data's, but the folder of the "
                                  f"run that gated it ({run_dir or 'not recorded'}) has no manifest.json")
    return RunKeyLookup({"version": str(version.version), "run_id": tags.get("lossval_run_id"), "run_dir": run_dir,
                         "mlflow_run_id": _last_gated(tags), "snapshot": tags.get("snapshot")}, "")


def _no_store_yet(uri: str) -> bool:
    """A local SQLite store that does not exist yet: no champion, and opening a client would create it."""
    return uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists()


def _last_gated(tags: dict[str, str]) -> str | None:
    """The MLflow run of the latest run that gated a registered version (``gate_run`` once a rerun reused it)."""
    return tags.get("gate_run") or tags.get("source_run")


def refused_again(config: PipelineConfig, workspace: str, run_key: str) -> dict[str, Any] | None:
    """The manifest of the run whose gate refused this run key, when a rerun would be refused the same way; else None.

    That is: the newest version registered for ``run_key`` was last gated ``failed``, the champion
    is still the one that gate compared with (``champion_compared``, written by that same run; no
    tag, no skip), and that run's folder is still there with a manifest of a tracked, registered
    refusal. The same data, files and config then give the same kept rows, model and checks on
    the CPU, bit for bit (the caller asks only there). Returns the manifest plus ``run_dir`` and
    ``champion`` (the current champion version, or None).
    """
    from mlflow.exceptions import MlflowException

    from lossval.io import read_json
    from tasks.track import _alias_version, _version_with_key

    uri = tracking_uri(config, workspace)
    if _no_store_yet(uri):
        return None
    name = registered_model_name(config)
    try:
        with mlflow_client(uri) as client:
            version = _version_with_key(client, name, run_key)
            if version is None:
                return None
            champion = _alias_version(client, name, "champion")
    except (MlflowException, LossvalError):
        return None
    tags = version.tags or {}
    last_gated = _last_gated(tags)
    if tags.get("gate") != "failed" or tags.get("champion_compared") != f"{champion or 'none'}@{last_gated}":
        return None
    manifest_path = Path(tags.get("run_dir") or "") / "manifest.json"
    if not tags.get("run_dir") or not manifest_path.is_file():
        return None
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError, LossvalError):
        return None
    if not _complete_refusal(manifest, last_gated):
        return None
    return {**manifest, "run_dir": str(manifest_path.parent), "champion": champion}


def _complete_refusal(manifest: Any, mlflow_run_id: str | None) -> bool:
    """A manifest of a refused run that was tracked and registered (MLflow run ``mlflow_run_id``), with what the
    refusal's report reads."""
    if not isinstance(manifest, dict):
        return False
    gate, rows, mlflow = (manifest.get(k) for k in ("gate", "rows", "mlflow"))
    return (isinstance(gate, dict) and gate.get("passed") is False and isinstance(gate.get("failures"), list)
            and isinstance(gate.get("remedies"), list) and isinstance(rows, dict)
            and {"kept", "quarantine"} <= set(rows) and isinstance(manifest.get("model"), dict)
            and isinstance(mlflow, dict) and mlflow.get("status") == "ok" and mlflow.get("run_id") == mlflow_run_id
            and isinstance(manifest.get("run_id"), str))


def unusable_model(uri: str, source: str) -> str | None:
    """Why the lossval model logged at ``source`` cannot be loaded (its files gone, say), or None when it can be."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _download_model_files(uri, source, Path(tmp))
        except _Unusable as exc:
            return str(exc)
    return None


def _score(champion: Any, test: pd.DataFrame, *, target: str) -> tuple[dict[str, float] | None, str]:
    """``(the champion's test metrics on test, "")``, or ``(None, why)`` when it cannot read the rows or labels."""
    enc = champion.encoder
    missing = [c for c in enc.feature_columns_ if c not in test.columns]
    if missing:
        return None, f"the test rows lack its feature column(s) {missing}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenLevelsWarning)  # new levels encode as no level, as in serving
            X, y = encode_rows(enc, test, target=target, source="test split")
    except LossvalError as exc:
        return None, str(exc)
    n_classes = len(enc.classes_) if enc.classes_ is not None else None
    return evaluate(champion.network, X, y, task=enc.task_, n_classes=n_classes), ""
