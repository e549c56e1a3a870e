"""The new-data flow: a file landed (event ``lossval.data.arrived``); ingest it and clean its dataset.

The path comes from an event, so it is untrusted: it is confined to the landing folder
(:func:`lossval.landing.confine`) before anything reads it. Runs for the same dataset take the
dataset's lock (``<workspace>/locks/<dataset>.lock``), so two arrivals at once run one after the
other instead of interleaving their writes.

Every landed file is a whole new version of its dataset, and waiting runs get the lock in no set
order: a run whose file is older (modification time) than the newest file already processed
for its dataset ends without cleaning anything, its result saying ``superseded`` and naming the
newer file (:func:`lossval.landing.superseded_by`). A repeated event for the file last cleaned,
unchanged since, also ends at once (``already_cleaned``): events are delivered at least once. A new
file holding the data the champion was made from (an export delivered again) ends after ingest
(``unchanged``) and becomes the file the nightly runs read.
``force=True`` runs either anyway, e.g. to roll back to an earlier delivery on purpose: the
rolled-back file is then the one nightly runs clean, and a repeated event for the file rolled
back from ends at once too (``superseded`` with ``rolled_back``), until a newer delivery lands.
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows._log import quiet_expected_errors
from flows.clean import run_cleaning
from flows.runner import SERVER_PROBE_ATTEMPTS, check_tracking_server
from flows.nightly import locks_dir
from lossval.catalog import entry_for_landing, read_catalog, require_flow_parameters
from lossval.config import config_warnings_to
from lossval.errors import GateFailed, InputError
from lossval.landing import (ARRIVAL_EVENT, check_lock_timeout, clear_attempt, confine, dataset_lock, dataset_of,
                             newest_arrival, record_arrival, record_attempt, refuses_file, same_file,
                             superseded_by)

__all__ = ["ARRIVAL_FLOW_NAME", "ARRIVAL_EVENT", "arrival"]

ARRIVAL_FLOW_NAME = "lossval-arrival"


@flow(name=ARRIVAL_FLOW_NAME, log_prints=True)
def arrival(path: str, datasets_file: str, landing_dir: str, workspace: str = "lossval-workspace",
            dataset: str | None = None, lock_timeout_s: float = 6 * 3600.0, force: bool = False,
            size: int | str | None = None, mtime_ns: int | str | None = None) -> dict:
    """Ingest one landed file as the dataset's newest snapshot and run the cleaning flow on it.

    Args:
        path: The landed file, relative to ``landing_dir`` (from the event payload; untrusted).
        datasets_file: The datasets file (maps the landing subfolder to a dataset and its config).
        landing_dir: The landing folder the watcher watches.
        workspace: The lossval workspace.
        dataset: The dataset the event names (optional); must agree with the path.
        lock_timeout_s: Longest wait for another run of the same dataset.
        force: Clean the file even when a newer one was already processed for its dataset.
        size, mtime_ns: The file's size and modification time when the watcher saw it land (from the event;
            optional). A file that differs now is being written again: nothing is cleaned
            (``changed_since_landing``), and its next landing gives a new event.

    Returns:
        The cleaning summary, plus ``landed`` (the file) and ``lock`` (when it was held). When the
        file was superseded: ``{"superseded": True, "dataset", "landed", "newer", "lock"}`` (plus
        ``"rolled_back": True`` when it is the file a forced run rolled the dataset back from) and
        nothing else was done. When it is the file last cleaned for its dataset, unchanged (same
        path, modification time, size and inode; a repeated event): ``{"already_cleaned": True,
        "dataset", "landed", "cleaned_by", "lock"}`` and nothing else was done. When its content, the
        dataset's config and lossval's version are those the champion was made from (a delivery of the
        same data again): ``{"unchanged": True, "dataset", "landed", "snapshot_hash", "champion", "lock"}``
        after ingest, the file recorded as the dataset's newest (:func:`flows.clean.run_cleaning`'s
        ``skip_unchanged``; ``force=True`` cleans it all the same). Data refused before against the same
        champion raises :class:`GateFailed` again without a run (its summary ``repeated: True``).

    Raises:
        UnsafePathError: ``path`` leaves the landing folder; nothing was read.
        InputError / ConfigError: unknown dataset, bad file, bad config.
        GateFailed: the pruned data failed the gate.
    """
    log = get_run_logger()
    quiet_expected_errors()  # bad input and refusals: one line each in the run's log, no traceback
    require_flow_parameters(datasets_file=datasets_file, landing_dir=landing_dir, workspace=workspace)
    check_lock_timeout(lock_timeout_s)  # NaN would wait forever on a held lock
    landed, relative = confine(landing_dir, path)  # before anything reads the file
    key = dataset_of(relative)
    entries, problems = read_catalog(datasets_file)  # another dataset's bad entry does not stop this one
    entry = entry_for_landing(entries, key, source=datasets_file, problems=problems)
    if dataset and dataset not in (entry.name, key):  # the watcher names the dataset, or (no --datasets) the folder
        raise InputError(f"the event names dataset {dataset!r} but the file {relative!r} lands in {key!r}, dataset "
                         f"{entry.name!r}; refusing a mismatched event.")
    # Recorded before anything else can fail (a config typo, the lock's timeout, a kill while waiting for it), and
    # removed once the run records an outcome: left behind, it has the nightly run clean this file
    # (flows.nightly.clean_entry), not the older one last recorded, which no new event would fix.
    try:
        first = landed.stat()
    except FileNotFoundError:
        raise InputError(f"{relative!r} is gone from the landing folder; nothing to clean.",
                         source=str(landed)) from None
    def attempt(found: os.stat_result) -> None:  # this run cleans the file as found, until it records an outcome
        record_attempt(locks_dir(workspace), entry.name, relative=relative, path=str(landed), mtime_ns=found.st_mtime_ns,
                       size=found.st_size, inode=found.st_ino,
                       flow_run_id=None if flow_run.id is None else str(flow_run.id))

    as_sent = (_as_int(size), _as_int(mtime_ns))
    if (as_sent[0] in (None, first.st_size) and as_sent[1] in (None, first.st_mtime_ns)) or force:
        # (a file that differs from the event is being written again: the run ends below, changed_since_landing,
        # and a partial file must not be left for the nightly run to clean)
        attempt(first)

    def settled() -> None:  # an outcome without a cleaning run (superseded, already cleaned, being written again)
        clear_attempt(locks_dir(workspace), entry.name, relative=relative, mtime_ns=first.st_mtime_ns)

    with config_warnings_to(lambda message: log.warning("%s", message)):  # in this run's log, every run
        config = entry.load(data=str(landed))
    # Before the lock and the run: a tracking server that does not answer fails this file's run (its attempt stays
    # recorded, so the nightly run cleans the file once the server is back), not after valuation and retraining;
    # asked again after a momentary failure (a server restarting), as the nightly run does.
    check_tracking_server(config.tracking.uri, source=entry.config_path, attempts=SERVER_PROBE_ATTEMPTS)
    log.info("file %s landed for dataset %s", relative, entry.name)
    with dataset_lock(locks_dir(workspace), entry.name, timeout=lock_timeout_s, holder=str(flow_run.id or "local"),
                      on_wait=lambda: log.info("dataset %s is busy with another run; waiting for its lock",
                                               entry.name)) as lock:
        if confine(landing_dir, relative)[0] != landed:  # replaced while this run waited for the lock
            raise InputError(f"{relative!r} changed where it points while waiting for the dataset lock; refusing it.")
        st = landed.stat()
        seen = {"size": _as_int(size), "mtime_ns": _as_int(mtime_ns)}
        now = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        changed = [k for k, v in seen.items() if v is not None and v != now[k]]
        if changed and not force:
            log.warning("%s changed since it landed (%s: %s then, %s now): it is being written again; not cleaning it "
                        "now. Its next landing gives a new event.", relative, changed[0], seen[changed[0]],
                        now[changed[0]])
            settled()
            return {"changed_since_landing": True, "dataset": entry.name,
                    "landed": {"path": str(landed), "relative": relative}, "lock": dict(lock)}
        newer = superseded_by(locks_dir(workspace), entry.name, st.st_mtime_ns)
        if newer is not None and not force:
            # "whose data": a newer file whose data equalled the champion's was not cleaned itself (the run named
            # is the champion's, which cleaned the same data from an earlier file).
            log.warning("%s is older than %s, whose data was already cleaned for dataset %s (run %s); not cleaning "
                        "the older file. To clean it anyway, run this flow again with force=True.",
                        relative, newer.get("relative"), entry.name, newer.get("run_id"))
            settled()
            return {"superseded": True, "dataset": entry.name, "landed": {"path": str(landed), "relative": relative},
                    "newer": newer, "lock": dict(lock)}
        done = newest_arrival(locks_dir(workspace), entry.name)
        this = {"relative": relative, "mtime_ns": st.st_mtime_ns, "size": st.st_size, "inode": st.st_ino}
        if not force and same_file(done, **this):
            # A repeated event for the file last cleaned, unchanged since: an events client resending after an
            # outage (its server forgot which events it had acted on), or an event posted twice.
            log.info("%s was already cleaned for dataset %s by run %s and is unchanged since; nothing to do (a "
                     "repeated event). To clean it again, run this flow with force=True.",
                     relative, entry.name, done.get("run_id"))
            settled()
            return {"already_cleaned": True, "dataset": entry.name, "landed": {"path": str(landed), "relative": relative},
                    "cleaned_by": done.get("run_id"), "lock": dict(lock)}
        if not force and same_file((done or {}).get("rolled_back_from"), **this):
            log.warning("%s is the file a forced run (%s) rolled dataset %s back from, to %s; not cleaning it again "
                        "(a repeated event). To return to it, run this flow with force=True.",
                        relative, done.get("run_id"), entry.name, done.get("relative"))
            settled()
            return {"superseded": True, "rolled_back": True, "dataset": entry.name,
                    "landed": {"path": str(landed), "relative": relative}, "newer": done, "lock": dict(lock)}

        def record(run_id: object, *, promoted: bool) -> None:
            # A forced older file becomes the nightly's file only when its model was promoted: a rollback
            # the gate refused leaves the champion, and the record, on the newer data.
            record_arrival(locks_dir(workspace), entry.name, relative=relative, path=str(landed), mtime_ns=st.st_mtime_ns,
                           size=st.st_size, inode=st.st_ino, forced=force and promoted,
                           run_id=None if run_id is None else str(run_id))
            clear_attempt(locks_dir(workspace), entry.name, relative=relative, mtime_ns=st.st_mtime_ns)

        if (st.st_mtime_ns, st.st_size) != (first.st_mtime_ns, first.st_size):  # rewritten while this run waited:
            attempt(st)  # this version replaces the one recorded on arrival
        try:
            summary = run_cleaning(config, workspace=workspace, config_path=entry.config_path, skip_unchanged=not force)
        except GateFailed as exc:  # the file was cleaned (its model not promoted): it still supersedes older ones
            record((getattr(exc, "summary", None) or {}).get("run_id"), promoted=False)
            raise
        except InputError as exc:
            # The file is refused: an outcome, not an unfinished run; nightly runs keep the older file. A config error
            # (a device this worker lacks) or another file's problem (a curated file on an unmounted share) is not
            # the delivery's: its attempt stays, and the next nightly run tries the file again.
            if refuses_file(exc, landed, other_files=(config.validation.path, config.test_path)):
                clear_attempt(locks_dir(workspace), entry.name, relative=relative, mtime_ns=st.st_mtime_ns)
            raise
        if summary.get("status") == "unchanged":  # the same data as the champion's, delivered again
            champion = summary["champion"]
            record(champion["run_id"], promoted=True)  # the nightly runs then read this file, and skip it too
            return {"unchanged": True, "dataset": entry.name, "landed": {"path": str(landed), "relative": relative},
                    "snapshot_hash": summary["snapshot_hash"], "champion": champion, "lock": dict(lock)}
        record(summary.get("run_id"), promoted=True)
    summary["landed"] = {"path": str(landed), "relative": relative}
    summary["lock"] = dict(lock)
    return summary


def _as_int(value: int | str | None) -> int | None:
    """An event's number (a rendered template gives text; an event without the field, an empty text), or None."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None
