"""The cleaning flow: ingest -> split -> value -> prune -> retrain -> gate -> track -> promote."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import re
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

import lossval
from lossval.config import PipelineConfig, check_metric_limits, load_config, mask_secrets, mask_uri, unused_for_task
from lossval.errors import GateFailed, LossvalError
from lossval.io import file_sha256, read_json, sweep_orphaned_temp_files, write_json
from lossval.manifest import MANIFEST_NAME, begin_run, complete_run, discard_run, relocate, sweep_stale_runs
from tasks._paths import Workspace
from tasks.gate import GATE_VERSION, gate, shared_failures
from tasks.gx import check_suite_builds, check_suite_columns
from tasks.ingest import ingest, publish_snapshot, read_history
from tasks.prune import describe_pruning, lowest_value_rows, prune
from tasks.retrain import retrain
from tasks.split import split
from tasks.track import log_manifest, promote, track, tracking_uri
from tasks.value import effective_lossval_options, valuation_key, value_cached

__all__ = ["clean_dataset", "run_cleaning", "snapshot_history", "older_snapshot", "shrank_from"]

ONE_DAY_S = 24 * 3600  # no write of lossval's takes this long


def _timed(record: dict, name: str, start: float, timings: dict) -> dict:
    timings[name] = time.perf_counter() - start
    return record


@flow(name="lossval-clean", log_prints=True)
def clean_dataset(config_path: str, workspace: str = "lossval-workspace") -> dict:
    """Clean one dataset as configured in ``config_path``; returns the run summary.

    Raises:
        GateFailed: the pruned data or the metrics failed the gate (the flow run ends Failed;
            ``challenger`` is set, ``champion`` is not).
    """
    config = load_config(config_path)
    return run_cleaning(config, workspace=workspace, config_path=config_path)


def run_cleaning(config: PipelineConfig, *, workspace: str, config_path: str | None = None,
                 skip_unchanged: bool = False) -> dict:
    """The flow body (callable from other flows with an already-validated config).

    ``config_path``: the config's file, named in errors about the config found during the run.

    ``skip_unchanged`` (the nightly and arrival flows' default): once the data is ingested, when the
    champion was registered by a run of this run's key (same snapshot, curated files, config and
    lossval version; :func:`tasks.champion.champion_of_run_key`), nothing more is done and nothing is
    written: the run would only repeat that one. Returns ``{"status": "unchanged", "dataset",
    "snapshot_hash", "champion": {...}}`` then. Likewise when a run of this key was refused by the gate
    and the champion is still the one it was compared with (:func:`tasks.champion.refused_again`):
    :class:`GateFailed` is raised again with that run's manifest as its summary (``repeated: True``).

    The stages write into ``runs/<run_id>.partial/``; once the data outputs and their manifest
    are written the folder is renamed to ``runs/<run_id>/`` (see :mod:`lossval.manifest`). Any
    failure before that removes the partial folder, so a failed run leaves no outputs behind.
    Tracking comes after: when MLflow is unreachable the manifest records it and the flow
    fails with that message, the data outputs staying complete and verifiable.
    """
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:  # its tasks need a flow run; Prefect's own error would not say so
        raise LossvalError("run_cleaning runs inside a Prefect flow: call it from your @flow, or call "
                           "clean_dataset(config_path, workspace=...), which is the flow.")
    log = get_run_logger()
    ws = Workspace.at(workspace)
    started = dt.datetime.now(dt.timezone.utc)
    fr_id = str(flow_run.id or "local")
    run_id = f"{config.dataset}-{started:%Y%m%dT%H%M%SZ}-{fr_id[:8]}"
    for stale in sweep_stale_runs(ws.root / "runs"):
        log.warning("removed %s, the unfinished folder of a run that was killed", stale.name)
    # values/, snapshots/, runs/ and locks/ hold only lossval's files: a temp file there whose writer cannot be
    # checked (another host, the naming before writers were recorded) is abandoned after a day.
    for orphan in sweep_orphaned_temp_files(ws.root / "values", ws.root / "snapshots", ws.root / "runs",
                                            ws.locks_dir, stale_after_s=ONE_DAY_S):
        log.warning("removed %s, the temporary file of a write that was killed", orphan.relative_to(ws.root))
    staging = begin_run(ws.root / "runs", run_id)
    try:
        summary = _clean_data(config, ws=ws, staging=staging, run_id=run_id, started=started, fr_id=fr_id,
                              config_path=config_path, skip_unchanged=skip_unchanged)
        if summary.get("status") == "unchanged":
            _discard(staging)
            champion = summary["champion"]
            log.info("dataset %s: unchanged since run %s, whose model (version %s) is champion: same snapshot %s, "
                     "files, config and lossval version, so nothing was run again", config.dataset,
                     champion["run_id"], champion["version"], summary["snapshot_hash"])
            return summary
        run_dir = complete_run(staging, ws.run_dir(run_id))
    except BaseException:
        _discard(staging)
        raise
    checked = summary.pop("_gate")
    held_back = summary["stages"]["prune"].get("held_back")  # for the lowest-value table; the stages leave the summary
    tracking_error = _track_and_promote(summary, config, ws=ws, run_dir=run_dir, started=started, gate=checked)
    _publish_prefect_artifacts(summary, held_back=held_back)
    rows = summary["rows"]
    model = summary["model"] or {"name": "-", "version": "- (not registered)"}
    log.info("run %s: %d train rows, %d kept, %d quarantined; gate %s; model %s v%s",
             run_id, rows["train"], rows["kept"], rows["quarantine"], "passed" if checked["passed"] else "FAILED",
             model["name"], model["version"])
    if tracking_error is not None:  # Prefect keeps this message too (the state message): worded as for MLflow
        def message(failures: list[str]) -> str:
            gate_note = ("" if checked["passed"] else " The gate also refused promotion; failed checks: "
                         + "; ".join(failures) + ".")
            return f"{tracking_error}{gate_note} Run folder: {run_dir}"

        shared = message(shared_failures(checked, private=not config.tracking.log_quarantine))
        full = message(list(checked["failures"]))  # for the user's own terminal only, as GateFailed's
        raise LossvalError(shared, local_message=None if full == shared else full) from None
    summary["run_dir"] = str(run_dir)
    if not checked["passed"]:
        raise _refusal(config, f"{config.dataset}: nothing promoted to champion; failed checks: ", checked,
                       f" Run folder: {run_dir}", summary=summary)
    if summary["model"].get("refused"):
        raise GateFailed(f"{config.dataset}: nothing promoted to champion; {summary['model']['refused']}. "
                         f"Run folder: {run_dir}", summary=summary)
    return summary


def _refusal(config: PipelineConfig, head: str, record: dict, tail: str, *, summary: dict) -> GateFailed:
    """The :class:`GateFailed` of a refusal: ``head``, the gate ``record``'s failures, what to do, ``tail``.

    Prefect stores the message as the flow run's state message and logs it, so with ``tracking.log_quarantine``
    false its failures are worded as for MLflow (:func:`tasks.gate.shared_failures`); the full wording then goes
    to ``local_message``, for the user's own terminal only.
    """
    todo = " ".join(record["remedies"])

    def message(failures: list[str]) -> str:
        return head + "; ".join(failures) + (f". What to do: {todo}" if todo else ".") + tail

    shared = message(shared_failures(record, private=not config.tracking.log_quarantine))
    full = message(list(record["failures"]))
    return GateFailed(shared, summary=summary, local_message=None if full == shared else full)


def _repeatable(config: PipelineConfig) -> bool:
    """Whether a rerun would repeat an earlier run of its key bit for bit: valued and retrained on this machine's
    CPU, the device the valuation key holds (CUDA results differ in the last digits; with a valuation deployment
    the key holds no resolved device, as the values are made elsewhere)."""
    return effective_lossval_options(config).get("device") == "cpu"


def _discard(staging: Path) -> None:
    """Remove a run's staging folder, and ``runs/`` too when it is left empty (a first run refused)."""
    discard_run(staging)
    try:
        staging.parent.rmdir()
    except OSError:
        pass  # other runs' folders are there (or appeared meanwhile)


def run_key(config: PipelineConfig, values_key: str) -> str:
    """What makes two runs' registered models the same one: values, pruning, retraining, gate (and its
    suite's content and :data:`tasks.gate.GATE_VERSION`), lossval's version, and whether data rows may be logged to MLflow: a version
    registered with an input example of data rows is not reused once ``tracking.log_quarantine`` is off."""
    rows = "" if config.tracking.log_quarantine else "-norows"
    used = config.used_only()  # a key the config's choices leave unread registers no new version
    return (f"{values_key}-{used.fingerprint('pruning', 'retrain', 'gate')}-{_suite_hash(config)}{_keep_hash(config)}"
            f"-v{lossval.__version__}-g{GATE_VERSION}{rows}")


def _keep_hash(config: PipelineConfig) -> str:
    """``-k`` and the content (12 hex) of ``pruning.keep_ids``' files; empty without it. The config names the file
    by path, and a reviewer adds ids to the same file: another list is another pruning."""
    if config.pruning.keep_ids is None:
        return ""
    from lossval.io import data_sha256

    return f"-k{data_sha256(config.pruning.keep_ids)[:12]}"


def _suite_hash(config: PipelineConfig) -> str:
    """The gate suite's content (12 hex): the config names it by path, and a stricter file is another gate."""
    from lossval.suites import suite_file

    return file_sha256(suite_file(config.gate.suite))[:12]


def _valuation_notes(report: str) -> dict:
    """From the valuation's ``valuation.json``: LossVal's mean batch objective per epoch (weighted
    loss times the squared Sinkhorn term; MLflow plots it as ``epoch_loss``), the training and
    validation values it clipped as outliers per column, its identical rows, and the VALUES_VERSION
    it was computed under (read once here; tracking tags the run with it)."""
    data = read_json(report)
    return {"values_version": str(data.get("values_version", "unknown")), "history_loss": [float(v) for v in (data.get("history") or {}).get("loss", [])],
            "clipped": {str(k): int(v) for k, v in (data.get("clipped") or {}).items()},
            "clipped_validation": {str(k): int(v) for k, v in (data.get("clipped_validation") or {}).items()},
            "duplicate_rows": int(data.get("duplicate_rows") or 0)}


def snapshot_history(ws: Workspace, dataset: str) -> list[dict]:
    """The dataset's snapshot history (``snapshots/<dataset>/history.json``), oldest first; [] when none or damaged
    (a damaged one is not this run's problem: publishing moves it aside and starts anew)."""
    return read_history(ws.snapshot_dir(dataset) / "history.json") or []


def older_snapshot(history: list[dict], snapshot_hash: str) -> dict[str, str] | None:
    """When ``snapshot_hash`` is in ``history`` but not its newest entry: when it came, and which is newest; else None.

    A stale export (yesterday's file delivered again, a restored backup) then rolls the dataset back.
    """
    seen = [h for h in history if h.get("snapshot_hash") == snapshot_hash]
    if not seen or history[-1].get("snapshot_hash") == snapshot_hash:
        return None
    return {"first_ingested_at": str(seen[0].get("ingested_at")), "newest_snapshot": str(history[-1].get("snapshot_hash")),
            "newest_ingested_at": str(history[-1].get("ingested_at"))}


SHRINK_WARNING = 0.5
"""A snapshot with fewer rows than this share of the dataset's previous one is warned about (a truncated export?)."""


def shrank_from(history: list[dict], rows: int) -> int | None:
    """The previous snapshot's row count (``history``'s newest) when ``rows`` is under :data:`SHRINK_WARNING` of it."""
    previous = history[-1].get("rows") if history else None
    return int(previous) if isinstance(previous, int) and rows < SHRINK_WARNING * previous else None


def shrink_warning(config: PipelineConfig, rows: int, previous: int) -> str:
    """What a run says when its data shrank (:func:`shrank_from`); the test split shrinks with it only when the test
    rows come from the data, not from ``test_path``."""
    smaller = "" if config.test_path else " The gate compares with the champion on this run's (smaller) test split."
    return (f"dataset {config.dataset}: {rows} rows, down from {previous} in its previous snapshot; a truncated or "
            f"partial export?{smaller}")


def _clean_data(config: PipelineConfig, *, ws: Workspace, staging: Path, run_id: str, started: dt.datetime,
                fr_id: str, config_path: str | None = None, skip_unchanged: bool = False) -> dict:
    """ingest -> split -> value -> prune -> retrain -> gate into ``staging``; writes the manifest there.

    Returns:
        The manifest (paths as they will be once ``staging`` is renamed to ``runs/<run_id>/``),
        plus the gate record under ``"_gate"``; with ``skip_unchanged``, when the champion is this
        run key's, ``{"status": "unchanged", ...}`` right after ingest (see :func:`run_cleaning`).
    """
    timings: dict[str, float] = {}
    # The gate's suite is built now (milliseconds): a misspelt expectation type or argument is refused before
    # valuation and retraining, not after them.
    check_suite_builds(config.gate.suite, target=config.target, task_kind=config.task)
    t = time.perf_counter()
    snap = _timed(ingest(config.data, dataset=config.dataset, target=config.target, id_column=config.id_column,
                         workspace=str(ws.root), stage_dir=str(staging), categorical=list(config.categorical),
                         numeric=config.numeric_features(), set_aside=list(config.set_aside_paths())),
                  "ingest", t, timings)
    check_suite_columns(config.gate.suite, snap["columns"], target=config.target, task_kind=config.task)
    task_kind = config.task
    if task_kind == "auto":
        import pandas as pd

        from lossval.valuation import infer_task

        task_kind = infer_task(pd.read_parquet(snap["snapshot"], columns=[config.target])[config.target],
                               source=config.data)
        # Keys set for a task this data is not (retrain.calibrate of a regression): the config's load could not
        # tell, as task: auto decides from the data. Said once per run, in the load's words.
        for message in unused_for_task(config, task_kind, source=config_path):
            get_run_logger().warning("%s", message)
        # Decided once, from the whole snapshot: the stages after this one must not guess again from
        # their own rows (an integer target whose rare values sit only in the validation rows would
        # read as classes in one stage and as a number in another).
        config = dataclasses.replace(config, task=task_kind)
        # a metric the task does not report: refused now, not by the gate after the whole run
        check_metric_limits(config.gate.metric_limits, task_kind, source=config_path, inferred=True)
    key = valuation_key(snap["snapshot_hash"], config)
    rkey = run_key(config, key)  # hashes the gate suite's file: once
    if skip_unchanged:
        from tasks.champion import champion_of_run_key, refused_again

        same = champion_of_run_key(config, str(ws.root), rkey)
        if same.champion is not None:
            return {"status": "unchanged", "dataset": config.dataset, "snapshot_hash": snap["snapshot_hash"],
                    "champion": same.champion}
        # a store the lookup just found unreachable is not asked again (a second wait for MLflow's request timeout)
        before = refused_again(config, str(ws.root), rkey) if _repeatable(config) and not same.unreachable else None
        if before is not None:  # said before "runs: ...", which a night that runs nothing must not log
            champion = (f"the champion (version {before['champion']}) is the one it was compared with"
                        if before["champion"] else "there is still no champion")
            raise _refusal(
                config, f"{config.dataset}: nothing promoted to champion; run {before['run_id']} was refused on this "
                f"same data and config, and {champion}, so it was not run again "
                f"(rerun_unchanged / force runs it); failed checks: ", before["gate"],
                f" Run folder: {before['run_dir']}", summary={**before, "repeated": True})
        if same.unreachable:  # the run's data outputs are still worth having; its gate refuses unless the store answers
            get_run_logger().warning("dataset %s runs: %s. Its data outputs will be complete; unless the store answers "
                                     "by the time the run is gated and tracked, nothing is promoted.", config.dataset, same.reason)
        else:
            get_run_logger().info("dataset %s runs: %s", config.dataset, same.reason)
    history = snapshot_history(ws, config.dataset)
    rollback = older_snapshot(history, snap["snapshot_hash"])
    if rollback:
        get_run_logger().warning(
            "dataset %s: this data (snapshot %s, first ingested %s) is older than the newest snapshot cleaned here "
            "(%s, ingested %s). If the champion was trained on that newer data, promoting this run's model rolls it "
            "back to older data; if that newer data's run was refused, this may be the champion's own data again. "
            "Check the export if a rollback is not meant.", config.dataset, snap["snapshot_hash"],
            rollback["first_ingested_at"], rollback["newest_snapshot"], rollback["newest_ingested_at"])
    shrank = shrank_from(history, snap["rows"])
    if shrank:
        get_run_logger().warning(shrink_warning(config, snap["rows"], shrank))
    t = time.perf_counter()
    parts = _timed(split(snap["snapshot"], config=config, task_kind=task_kind, run_dir=str(staging)), "split", t, timings)
    t = time.perf_counter()
    if config.valuation_deployment:  # its own deployment, e.g. on a GPU work pool (flows/value_remote.py)
        from flows.value_remote import value_on_deployment

        vals = value_on_deployment(parts["paths"]["train"], parts["paths"]["validation"], key=key, config=config,
                                   workspace=str(ws.root))
    else:
        vals = value_cached(parts["paths"]["train"], parts["paths"]["validation"], key=key, config=config,
                            workspace=str(ws.root))
    _timed(vals, "value", t, timings)
    # What the stages below read of the shared values/<key>/ folder, hashed before they read it: another run that
    # values the same key again may rewrite it meanwhile, and the manifest must name the files this run used.
    used = {name: file_sha256(vals[name], own_output=True) for name in ("values", "encoder")}
    notes = _valuation_notes(vals["report"])  # read now too: the report is rewritten with the values
    t = time.perf_counter()
    pruned = _timed(prune(parts["paths"]["train"], vals["values"], config=config, task_kind=task_kind,
                          run_dir=str(staging), encoder=vals["encoder"]), "prune", t, timings)
    t = time.perf_counter()
    trained = _timed(retrain(parts["paths"]["train"], pruned["paths"]["kept"], parts["paths"]["test"], vals["values"],
                             vals["encoder"], config=config, run_dir=str(staging),
                             validation=parts["paths"]["validation"]), "retrain", t, timings)
    t = time.perf_counter()
    checked = _timed(gate(pruned["paths"]["kept"], parts["paths"]["validation"], vals["encoder"], trained["metrics"],
                          config=config, rows_train=parts["rows"]["train"], run_dir=str(staging),
                          test=parts["paths"]["test"], workspace=str(ws.root)), "gate", t, timings)
    snapshot = publish_snapshot(snap, dataset=config.dataset, workspace=str(ws.root))

    final = ws.run_dir(run_id)
    written = {"snapshot": snapshot, **parts["paths"], **pruned["paths"], "values": vals["values"],
               "encoder": vals["encoder"], "model_state": trained["model_state"],
               "metrics": trained["metrics_path"], "gate": checked["result_path"]}
    outputs = relocate(written, staging, final)
    # `lossval verify` compares these: the run folder's own files, and the shared snapshot, values and encoder this run
    # read (values/<key>/ is keyed by settings, not content: a later run that values again may rewrite it)
    sha256 = {name: file_sha256(path, own_output=True) for name, path in written.items()}
    rewritten = [name for name, digest in used.items() if sha256[name] != digest]
    if rewritten:
        get_run_logger().warning(
            "%s: rewritten by another run while this run used it (another run of the same settings valued again); "
            "this run's manifest records the files it read, so `lossval verify` reports them changed",
            ", ".join(str(vals[name]) for name in rewritten))
    sha256.update(used)
    rows = {"snapshot": snap["rows"], **parts["rows"], "kept": pruned["rows_kept"], "quarantine": pruned["rows_pruned"]}
    stages = {
        "ingest": {"rows": snap["rows"], "snapshot": snapshot, "seconds": timings["ingest"]},
        "split": {"rows": parts["rows"], "paths": relocate(parts["paths"], staging, final),
                  "rows_train": parts["rows"]["train"], "rows_validation": parts["rows"]["validation"],
                  "rows_test": parts["rows"]["test"], "strategy": config.validation.strategy, "seconds": timings["split"]},
        "value": {"values": vals["values"], "encoder": vals["encoder"], "device": vals["device"],
                  "valuation_seconds": vals["seconds"], "cached": bool(vals.get("cached")), "seconds": timings["value"],
                  "history_loss": notes["history_loss"], "clipped_values": sum(notes["clipped"].values()),
                  "clipped_validation_values": sum(notes["clipped_validation"].values()),
                  "clipped": notes["clipped"], "clipped_validation": notes["clipped_validation"],
                  "duplicate_rows": notes["duplicate_rows"], "values_version": notes["values_version"]},
        "prune": {**pruned, "paths": relocate(pruned["paths"], staging, final), "seconds": timings["prune"]},
        "retrain": {**relocate(trained, staging, final), "seconds": timings["retrain"]},
        "gate": {"passed": checked["passed"], "n_failures": len(checked["failures"]), "suite": checked["suite"],
                 "seconds": timings["gate"]},
    }
    summary = {"run_id": run_id, "dataset": config.dataset, "flow_run_id": fr_id, "snapshot_hash": snap["snapshot_hash"],
               "started": started.isoformat(timespec="seconds"), "task": task_kind, "status": "complete",
               "outputs": outputs, "sha256": sha256, "rows": rows,
               "pruning": {"policy": pruned["policy"], "threshold": pruned["threshold"], "flagged": pruned["flagged"],
                           "quarantined": pruned["rows_pruned"], "protected": pruned["protected"],
                           "kept_together": pruned["kept_together"], "reviewed": pruned["reviewed"],
                           "keep_ids": pruned["keep_ids"], "cap_hit": pruned["cap_hit"],
                           "class_cap_hit": pruned["class_cap_hit"],
                           "capped_classes": pruned["capped_classes"],
                           "max_prune_fraction": config.pruning.max_prune_fraction,
                           "min_probability": config.pruning.min_probability},
               "older_snapshot": rollback, "shrank_from_rows": shrank,
               "clipped": notes["clipped"], "clipped_validation": notes["clipped_validation"],
               "duplicate_rows": notes["duplicate_rows"], "test_outliers": trained.get("test_outliers", {}),
               "validation_from_data": parts["validation_from_data"], "test_from_data": parts["test_from_data"],
               "metrics": trained["metrics"], "temperature": trained.get("temperature"),
               # where the values and the two models were computed (CUDA results differ in the last digits; with a
               # valuation deployment the values come from another machine)
               "devices": {"valuation": vals["device"], "retrain": trained["device"]},
               "gate": {"passed": checked["passed"], "failures": checked["failures"],
                        # the same with an observed value of the rows withheld: what leaves the run folder when
                        # tracking.log_quarantine is false (the nightly report, its Prefect artifact)
                        "failures_without_values": checked["failures_without_values"],
                        "remedies": checked["remedies"], "champion": checked["champion"]},
               "mlflow": {"status": "pending", "tracking_uri": mask_uri(tracking_uri(config, str(ws.root)))},
               "model": None, "timings": timings, "valuation_seconds": vals["seconds"],
               "valuation_cached": bool(vals.get("cached")), "config": config.public_dict(),
               "versions": _versions(),
               "run_key": rkey,
               "stages": stages}
    write_json(_manifest(summary), staging / MANIFEST_NAME)  # last: a run folder with a manifest is complete
    return {**summary, "_gate": {**checked, "result_path": outputs["gate"]}}


def _versions() -> dict[str, str]:
    """What the values were computed with: a run is reproduced from its config, its seed and these."""
    import torch

    from lossval.valuation import VALUES_VERSION

    return {"lossval": lossval.__version__, "values_version": str(VALUES_VERSION), "torch": torch.__version__,
            "python": platform.python_version()}


def _manifest(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("stages", "run_key")}


def _track_and_promote(summary: dict, config: PipelineConfig, *, ws: Workspace, run_dir: Path, started: dt.datetime,
                       gate: dict) -> LossvalError | None:
    """Log the run to MLflow and promote the model; records the outcome in the manifest.

    Returns:
        ``None``, or the tracking error (MLflow unreachable) for the caller to raise once the
        manifest says so.
    """
    t = time.perf_counter()
    error: LossvalError | None = None
    try:
        tracked = track(config=config, workspace=str(ws.root), run_name=f"{config.dataset} {started:%Y-%m-%d %H:%M:%S}Z",
                        flow_run_id=summary["flow_run_id"], stages=summary["stages"],
                        snapshot_hash=summary["snapshot_hash"], gate=gate, pruning=summary["pruning"],
                        run_key=summary["run_key"], run_dir=str(run_dir), lossval_run_id=summary["run_id"],
                        started=started)
        summary["model"] = promote(config=config, workspace=str(ws.root), model_source=tracked["model_source"],
                                   run_id=tracked["run_id"], run_key=summary["run_key"], gate_passed=gate["passed"],
                                   gate_champion=gate["champion"])
        summary["mlflow"] = {**tracked, "status": "ok"}
    except LossvalError as exc:
        error = exc
        summary["mlflow"] = {**summary["mlflow"], "status": "failed", "error": str(exc)}
    except BaseException as exc:  # stopped (SIGTERM, Ctrl-C) or crashed while logging: the data outputs stay
        why = mask_secrets(str(exc)) or "the process was stopped while logging to MLflow; rerun to log and register this run"
        summary["mlflow"] = {**summary["mlflow"], "status": "failed", "error": f"{type(exc).__name__}: {why}"}
        write_json(_manifest(summary), run_dir / MANIFEST_NAME)
        raise
    summary["timings"]["track_promote"] = time.perf_counter() - t
    if error is None:  # the manifest as the run folder keeps it, with the run: a reviewer sees outputs and checksums
        try:
            log_manifest(config=config, workspace=str(ws.root), run_id=summary["mlflow"]["run_id"],
                         manifest=_manifest(summary))
        except LossvalError as exc:  # the run and its model are logged: a missing copy of the manifest is not a failure
            get_run_logger().warning("the manifest was not logged to MLflow (it is in %s): %s", run_dir, exc)
    write_json(_manifest(summary), run_dir / MANIFEST_NAME)
    summary.pop("stages")
    summary.pop("run_key")
    return error


def _publish_prefect_artifacts(summary: dict, *, held_back: dict | None = None) -> None:
    """The run's markdown summary and its lowest-value table (``held_back``: the prune stage's, see
    :func:`tasks.prune.lowest_value_rows`) as Prefect artifacts. With ``tracking.log_quarantine`` false the summary
    words the gate's failures with a value a check observed in the rows withheld
    (:func:`tasks.gate.shared_failures`)."""
    m = summary["metrics"]
    private = not summary["config"]["tracking"]["log_quarantine"]  # no data row, or value of one, outside the run dir
    failures = shared_failures(summary["gate"], private=private)
    lines = [f"# lossval run `{summary['run_id']}`", "",
             f"Dataset **{summary['dataset']}**, snapshot `{summary['snapshot_hash']}`, task {summary['task']}.", "",
             "| rows | train | kept | quarantined | validation | test |", "|---|---|---|---|---|---|",
             f"| | {summary['rows']['train']} | {summary['rows']['kept']} | {summary['rows']['quarantine']} | "
             f"{summary['rows']['validation']} | {summary['rows']['test']} |", ""]
    lines += [f"Pruning: {describe_pruning(summary['pruning'])}", ""]
    lines += ["| metric | before | after |", "|---|---|---|"]
    lines += [f"| {k} | {m['before'][k]:.4f} | {m['after'][k]:.4f} |" for k in m["before"]]
    gate_line = "passed" if summary["gate"]["passed"] else "FAILED: " + "; ".join(failures)
    tracking = summary["mlflow"]
    if summary["model"]:
        lines += ["", f"Gate: **{gate_line}**. Model `{summary['model']['name']}` version {summary['model']['version']}.",
                  "", f"MLflow run `{tracking['run_id']}` at {tracking['tracking_uri']}"]
    else:
        lines += ["", f"Gate: **{gate_line}**. No model registered: MLflow tracking {tracking['status']} "
                  f"({tracking.get('error', '')})."]
    # One key per dataset (artifact keys: lowercase letters, digits and dashes), so a nightly run over several
    # datasets shows each one's latest summary instead of overwriting one.
    slug = re.sub(r"[^a-z0-9-]+", "-", summary["dataset"].lower()).strip("-") or "dataset"
    create_markdown_artifact("\n".join(lines), key=f"lossval-summary-{slug}", description="lossval cleaning run")
    out = summary["outputs"]
    try:  # a review aid: a table that cannot be built must not fail a run whose outputs are written
        table = lowest_value_rows(out["values"], out["kept"], out["quarantine"], target=summary["config"]["target"],
                                  max_data_columns=0 if private else 12,
                                  held_back=held_back, id_column=summary["config"].get("id_column"))
        create_table_artifact(table.round(6).to_dict(orient="records"), key=f"lossval-lowest-values-{slug}",
                              description="20 lowest-value training rows" + ("" if private else
                                                                              ", with their target and first columns"))
    except Exception as exc:  # noqa: BLE001
        get_run_logger().warning("lowest-value table artifact not created: %s: %s", type(exc).__name__, exc)
