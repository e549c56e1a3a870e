"""The nightly flow: clean every dataset of the datasets file; one failure does not stop the others."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows._log import quiet_expected_errors
from flows.clean import run_cleaning
from flows.runner import SERVER_PROBE_ATTEMPTS, check_tracking_server
from lossval.catalog import CatalogProblem, DatasetEntry, read_catalog_entries, require_flow_parameters
from lossval.config import config_warnings_to
from lossval.errors import GateFailed, InputError, NightlyFailed
from lossval.io import write_json
from lossval.landing import (check_lock_timeout, clear_attempt, dataset_lock, newest_arrival, record_arrival,
                             refuses_file, unfinished_attempts)
from tasks._paths import Workspace
from tasks.track import _cut

__all__ = ["NIGHTLY_FLOW_NAME", "nightly", "clean_entry", "locks_dir"]

NIGHTLY_FLOW_NAME = "lossval-nightly"


def locks_dir(workspace: str | Path) -> Path:
    """``<workspace>/locks``: one lock (and holding log) per dataset, shared by nightly and arrival runs."""
    return Workspace.at(workspace).locks_dir


def newest_landed(workspace: str | Path, name: str) -> dict | None:
    """The arrival record of the file the nightly run cleans for dataset ``name`` (its ``path``),
    or ``None`` while no arrival run has cleaned one: then the nightly run cleans the config's ``data``."""
    newest = newest_arrival(locks_dir(workspace), name)
    return newest if newest is not None and newest.get("path") else None


@flow(name="lossval-clean-dataset", flow_run_name="clean-{name}", log_prints=True)
def clean_entry(name: str, config_path: str, workspace: str, lock_timeout_s: float = 6 * 3600.0,
                skip_unchanged: bool = False) -> dict:
    """Clean one dataset of the datasets file under its dataset lock (a subflow of the nightly run).

    ``skip_unchanged``: stop after ingest when the champion came from a run of the same data and
    config (:func:`flows.clean.run_cleaning`).

    The data is the newest landed file an arrival run cleaned for the dataset, when there is one
    (:func:`newest_landed`), else the config's ``data``: a nightly run must not
    replace a champion trained on newer data with one trained on the config's older file.

    Raises:
        InputError: the newest landed file was removed, or changed since it was cleaned (a delivery being
            written in place); the message says how to go on.
    """
    entry = DatasetEntry(name=name, config_path=config_path, landing=name)
    log = get_run_logger()
    with config_warnings_to(lambda message: log.warning("%s", message)):  # in this run's log, every night
        config = entry.load()  # a broken config fails before waiting for the lock
    # so does a tracking server that does not answer, asked again after a momentary failure (a restart)
    check_tracking_server(config.tracking.uri, source=config_path, attempts=SERVER_PROBE_ATTEMPTS)
    with dataset_lock(locks_dir(workspace), name, timeout=lock_timeout_s, holder=str(flow_run.id or "local"),
                      on_wait=lambda: log.info("dataset %s is locked by another run; waiting", name)):
        unfinished = _clean_unfinished_arrival(name, config, workspace=workspace, config_path=config_path,
                                               skip_unchanged=skip_unchanged)
        if unfinished is not None:
            return unfinished
        newest = newest_landed(workspace, name)
        if newest is None:
            return run_cleaning(config, workspace=workspace, config_path=config_path, skip_unchanged=skip_unchanged)
        landed = Path(newest["path"])
        if not landed.is_file():
            raise InputError(
                f"dataset {name}: its newest landed file {landed} (cleaned by run {newest.get('run_id')}) is gone, "
                "so the nightly run cannot clean the current data. Land the data again, or delete "
                f"{locks_dir(workspace) / (name + '.arrival.json')} to clean the config's 'data' instead.")
        st = landed.stat()
        recorded = (newest.get("size"), newest.get("mtime_ns"))
        if None not in recorded and recorded != (st.st_size, st.st_mtime_ns):
            raise InputError(
                f"dataset {name}: its newest landed file {landed} changed since run {newest.get('run_id')} cleaned it "
                f"({recorded[0]} bytes then, {st.st_size} now): a new delivery is being written in place, or landed "
                "without an arrival run yet. Nothing was cleaned for this dataset; the arrival run cleans the new "
                "file once it has landed (or land it again).")
        log.info("dataset %s: cleaning its newest landed file %s", name, newest.get("relative", landed))
        return run_cleaning(dataclasses.replace(config, data=str(landed)), workspace=workspace,
                            config_path=config_path, skip_unchanged=skip_unchanged)


def _clean_unfinished_arrival(name: str, config: Any, *, workspace: str, config_path: str,
                              skip_unchanged: bool) -> dict | None:
    """Clean the newest landed file whose arrival run did not finish (:func:`lossval.landing.unfinished_attempts`),
    as that run would have, and record it as the dataset's newest; ``None`` when there is none (one gone or changed
    since is dropped, with a warning, and the next newest taken).

    No new event comes for such a file (the watcher reported it), so without this the nightly run would clean the
    older file last recorded, night after night, and look healthy. Called under the dataset lock.
    """
    lock_dir = locks_dir(workspace)
    log = get_run_logger()
    for attempt in unfinished_attempts(lock_dir, name):
        landed = Path(attempt["path"])
        st = landed.stat() if landed.is_file() else None
        if st is None or (st.st_size, st.st_mtime_ns) != (attempt.get("size"), attempt["mtime_ns"]):
            log.warning("dataset %s: %s, whose arrival run (flow run %s) did not finish, is %s since; not cleaning it "
                        "(its next landing gives a new event)", name, attempt.get("relative"),
                        attempt.get("flow_run_id"), "gone" if st is None else "changed")
            clear_attempt(lock_dir, name, relative=attempt["relative"], mtime_ns=attempt["mtime_ns"])
            continue
        return _clean_attempt(name, config, attempt, landed, st, workspace=workspace, config_path=config_path,
                              skip_unchanged=skip_unchanged)
    return None


def _clean_attempt(name: str, config: Any, attempt: dict, landed: Path, st: os.stat_result, *, workspace: str,
                   config_path: str, skip_unchanged: bool) -> dict:
    """:func:`_clean_unfinished_arrival` for one file: cleaned, recorded, its attempt cleared."""
    lock_dir = locks_dir(workspace)
    log = get_run_logger()
    log.warning("dataset %s: the arrival run for %s (flow run %s, started %s) has not finished (it failed, was "
                "stopped, or still waits for this dataset's lock, and will then find the file cleaned); cleaning that "
                "file now instead of the older %s", name, attempt.get("relative"), attempt.get("flow_run_id"),
                attempt.get("started_at"), (newest_landed(workspace, name) or {}).get("relative", "config data"))

    def record(run_id: object) -> None:
        record_arrival(lock_dir, name, relative=attempt["relative"], path=str(landed), mtime_ns=st.st_mtime_ns,
                       size=st.st_size, inode=st.st_ino, run_id=None if run_id is None else str(run_id))
        clear_attempt(lock_dir, name, relative=attempt["relative"], mtime_ns=attempt["mtime_ns"])

    try:
        summary = run_cleaning(dataclasses.replace(config, data=str(landed)), workspace=workspace,
                               config_path=config_path, skip_unchanged=skip_unchanged)
    except GateFailed as exc:  # cleaned, not promoted: it is still the dataset's newest file, as after an arrival run
        record((getattr(exc, "summary", None) or {}).get("run_id"))
        raise
    except InputError as exc:
        if not refuses_file(exc, landed, other_files=(config.validation.path, config.test_path)):
            raise  # the config's fault or another file's, not the delivery's: the next night tries this file again
        log.warning("dataset %s: %s is refused (below); the next nightly run cleans the next newest unfinished "
                    "delivery, or the dataset's recorded file", name, attempt.get("relative"))
        clear_attempt(lock_dir, name, relative=attempt["relative"], mtime_ns=attempt["mtime_ns"])
        raise
    record(summary["champion"]["run_id"] if summary.get("status") == "unchanged" else summary.get("run_id"))
    return summary


@flow(name=NIGHTLY_FLOW_NAME, log_prints=True)
def nightly(datasets_file: str, workspace: str = "lossval-workspace", lock_timeout_s: float = 3600.0,
            rerun_unchanged: bool = False) -> State:
    """Run the cleaning flow for each dataset listed in ``datasets_file``, one after the other.

    Each dataset is a subflow run (``clean-<name>``); whatever happens to one dataset, the next
    one runs. The report is written to ``<workspace>/nightly/<UTC time>-<flow run id>.json`` and
    published as the ``lossval-nightly`` artifact; it has one record per entry of the datasets file, in the
    file's order, and each record has one of four states:

    * ``Completed``: cleaned and promoted (``run_id``, ``mlflow_run_id``, ``kept``, ``quarantined``);
    * ``Unchanged``: the champion came from a run of this same data (snapshot hash), curated files,
      config and lossval version, so a run would only repeat it; nothing is run or written after
      ingest (``champion_version``, and ``run_id``, ``run_dir``, ``mlflow_run_id`` of the latest run
      that gated that version). ``rerun_unchanged=True`` runs such datasets, and repeated refusals (below), all the same;
    * ``Refused``: nothing promoted (:class:`~lossval.errors.GateFailed`): the quality gate failed, or
      the champion changed while the run was gated. The run is complete and this run did not change
      the champion: the record has the same fields plus ``run_dir``, ``gate_failures`` (the failed
      checks; empty for a champion change), ``gate_remedies`` (what to do about them), ``reason``
      (why, in words) and ``repeated`` (true: an earlier run of the same data and config was refused
      and the champion is still the one it was compared with, so it was not run again; the record is
      that run's), and the dataset is listed under ``refused``, not ``failed``;
    * ``Failed``: bad input or config (including an entry of the datasets file that cannot be used,
      named by its name or ``datasets[i]``, and a pipeline config that cannot be loaded: every entry's
      config is loaded at the night's start, so these are logged then, before any dataset runs), MLflow
      unreachable (an ``http(s)`` ``tracking.uri`` that does not answer, asked 3 times 2 s apart when the
      failure may be a restart, fails the dataset before its lock and any work), the dataset's lock held longer than
      ``lock_timeout_s`` by another run, a bug (``error``; listed under ``failed``).

    Datasets run one after the other, so ``lock_timeout_s`` (default one hour) bounds how long a
    dataset whose lock another run holds can delay the ones after it; it is retried the next night.

    Refusals alone do not fail the night: the gate did its job, and a flow run that failed for it
    every night would hide the nights that really failed. Each refusal is logged as one warning line.
    Bad input and refusals are logged without tracebacks (see :func:`flows._log.quiet_expected_errors`);
    other errors keep theirs.

    Returns:
        A Completed state whose data is the report ``{"datasets": [...], "failed": [], "refused": [...],
        "unchanged": [...]}``
        when no dataset failed, else a Failed state whose message names the failed datasets; a
        caller of ``nightly(...)`` then gets :class:`~lossval.errors.NightlyFailed`, whose
        ``report`` is the same report.
    """
    quiet_expected_errors()
    log = get_run_logger()
    require_flow_parameters(datasets_file=datasets_file, workspace=workspace)
    check_lock_timeout(lock_timeout_s)  # before anything runs: NaN would wait forever on a held lock
    # One bad entry fails that dataset, not the night. Every config is loaded now: a bad one is said at the night's
    # start, not hours later when its turn comes. The report lists the entries in the datasets file's order.
    checked = [(entry, _unusable(entry)) for entry in read_catalog_entries(datasets_file)]
    started = dt.datetime.now(dt.timezone.utc)
    for _, unusable in checked:
        if unusable is not None:
            log.error("dataset %s failed: %s", *unusable)  # whole here; the report may cut it
    results: list[dict[str, Any]] = []
    for entry, unusable in checked:
        if unusable is not None:
            results.append({"dataset": unusable[0], "state": "Failed", "error": _report_error(unusable[1])})
            continue
        state = clean_entry(name=entry.name, config_path=entry.config_path, workspace=workspace,
                            lock_timeout_s=lock_timeout_s, skip_unchanged=not rerun_unchanged, return_state=True)
        record: dict[str, Any] = {"dataset": entry.name, "state": state.name}
        outcome = state.result(raise_on_failure=False)  # the summary, or the exception that ended the run
        if state.is_completed() and outcome.get("status") == "unchanged":
            champion = outcome["champion"]
            record.update(state="Unchanged", snapshot_hash=outcome["snapshot_hash"],
                          champion_version=champion["version"], run_id=champion["run_id"],
                          run_dir=champion["run_dir"], mlflow_run_id=champion["mlflow_run_id"])
        elif state.is_completed():
            record.update(_run_fields(outcome))
        elif isinstance(outcome, GateFailed) and outcome.summary is not None:
            failures = _shared_failures(outcome.summary)
            reason = _refusal_reason(outcome.summary) or str(outcome)
            record.update(state="Refused", **_run_fields(outcome.summary), run_dir=outcome.summary["run_dir"],
                          gate_failures=failures, gate_remedies=list(outcome.summary["gate"]["remedies"]),
                          reason=reason, repeated=bool(outcome.summary.get("repeated")))
            log.warning("dataset %s: nothing promoted; this run did not change the champion. %s. Run folder: %s%s",
                        entry.name, reason[0].upper() + reason[1:], record["run_dir"],
                        " (the same data and config were refused by that run; not run again)" if record["repeated"]
                        else "")
        else:
            record["error"] = _error_text(state, outcome)
            log.error("dataset %s failed: %s", entry.name, record["error"])
        results.append(record)
    failures = [r for r in results if r["state"] not in ("Completed", "Refused", "Unchanged")]
    failed = [r["dataset"] for r in failures]
    refused = [r["dataset"] for r in results if r["state"] == "Refused"]
    unchanged = [r["dataset"] for r in results if r["state"] == "Unchanged"]
    report = {"started": started.isoformat(timespec="seconds"), "flow_run_id": str(flow_run.id or "local"),
              "datasets": results, "failed": failed, "refused": refused, "unchanged": unchanged}
    # The run's id in the name: two nightly runs on one workspace started in the same second (two deployments on
    # one 02:00 schedule) wrote one file, the second report replacing the first.
    name = f"{started:%Y%m%dT%H%M%SZ}-{report['flow_run_id']}.json"
    write_json(report, Workspace.at(workspace).root / "nightly" / name)
    _publish(report)
    refusals = f" and {len(refused)} refused by the quality gate ({', '.join(refused)})" if refused else ""
    same = (f"; {len(unchanged)} unchanged since their champion's run: {', '.join(unchanged)}" if unchanged else "")
    if failed:
        detail = "; ".join(f"{r['dataset']}: {r['error']}" for r in failures)
        # the failed ones named first: the errors after them are theirs, not the unchanged datasets'
        message = f"{len(failed)} of {len(results)} dataset(s) failed ({', '.join(failed)}){refusals}{same}. {detail}"
        # A failed state carries an exception (Prefect raises it for a caller; a dict there is a TypeError).
        return Failed(message=message, data=NightlyFailed(message, report=report))
    if refused:
        promoted = len(results) - len(refused) - len(unchanged)
        return Completed(message=f"{promoted} of {len(results)} dataset(s) promoted; {len(refused)} refused by the "
                                 f"quality gate, champion unchanged: {', '.join(refused)}{same}", data=report)
    if unchanged:
        return Completed(message=f"{len(results) - len(unchanged)} of {len(results)} dataset(s) cleaned{same}",
                         data=report)
    return Completed(message=f"all {len(results)} dataset(s) cleaned", data=report)


def _unusable(entry: DatasetEntry | CatalogProblem) -> tuple[str, str] | None:
    """The dataset name (or ``datasets[i]``) and error of an entry the night cannot run (the datasets file's problem
    with it, or its pipeline config's: unreadable YAML, an unknown key, a bad value); ``None`` for one whose config
    loads."""
    if isinstance(entry, CatalogProblem):
        return entry.where, str(entry.error)
    try:
        # clean_entry loads it again at its turn (a config edited meanwhile is the one it cleans with), and logs its
        # warnings in the dataset's own run: not said here too
        with config_warnings_to(lambda message: None):
            entry.load()
    except InputError as exc:  # worded as when the dataset's own run met it
        return entry.name, f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - a bug: the dataset's own run meets it again and fails it with its traceback
        return None
    return None


REPORT_ERROR_LIMIT = 500
"""Characters of an error the nightly report keeps; a longer one is cut with a note saying so."""


def _report_error(text: str) -> str:
    """``text`` for the report, cut to :data:`REPORT_ERROR_LIMIT` with a note where the whole error is (an unknown-key
    error's list of valid keys ended mid-name, silently)."""
    return _cut(text, REPORT_ERROR_LIMIT, "the whole error is in this night's Prefect log")


def _run_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """What the report says about a run that completed (promoted or refused), from its summary."""
    mlflow = summary.get("mlflow") or {}  # a refused run was tracked: its MLflow run holds the challenger
    return {"run_id": summary["run_id"], "mlflow_run_id": mlflow.get("run_id"),
            "kept": summary["rows"]["kept"], "quarantined": summary["rows"]["quarantine"]}


def _shared_failures(summary: dict[str, Any]) -> list[str]:
    """The run's gate failures as the report (a Prefect artifact) may hold them (:func:`tasks.gate.shared_failures`:
    with ``tracking.log_quarantine`` false, a value a check observed in the rows is withheld, as in MLflow)."""
    from tasks.gate import shared_failures

    private = not ((summary.get("config") or {}).get("tracking") or {}).get("log_quarantine", True)
    return shared_failures(summary["gate"], private=private)


def _refusal_reason(summary: dict[str, Any]) -> str | None:
    """Why a complete run promoted nothing: its failed gate checks, else the registry's refusal (the
    champion changed while it was gated); ``None`` when the summary says neither."""
    failures = _shared_failures(summary)
    if failures:
        return "failed checks: " + "; ".join(failures)
    refused = (summary.get("model") or {}).get("refused")
    return str(refused) if refused else None


def _error_text(state: State, exc: object) -> str:
    if isinstance(exc, BaseException):
        return _report_error(f"{type(exc).__name__}: {exc}")
    return _report_error(state.message or state.name)


def _publish(report: dict[str, Any]) -> None:
    lines = ["# lossval nightly run", "", "| dataset | result | detail |", "|---|---|---|"]
    for r in report["datasets"]:
        if r["state"] == "Completed":
            detail = f"{r['kept']} kept, {r['quarantined']} quarantined, run `{r['run_id']}`"
        elif r["state"] == "Refused":
            detail = (f"not promoted: {r['reason']}; "
                      f"{r['kept']} kept, {r['quarantined']} quarantined, run `{r['run_id']}`"
                      + (" (same data and config as that run: not run again)" if r.get("repeated") else ""))
        elif r["state"] == "Unchanged":
            detail = (f"same data and config as champion version {r['champion_version']}'s run `{r['run_id']}`; "
                      "not run again")
        else:
            detail = r.get("error", "")
        cell = detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['dataset']} | {r['state']} | {cell} |")
    create_markdown_artifact("\n".join(lines), key="lossval-nightly", description="datasets cleaned by the nightly run")
