"""Landing rules: path confinement, when a file counts as landed, and the per-dataset lock."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from lossval.errors import ConfigError, InputError
from lossval.landing import (
    LandingScanner,
    LockTimeout,
    UnsafePathError,
    confine,
    dataset_lock,
    dataset_of,
    is_data_file_name,
    newest_arrival,
    read_lock_log,
    record_arrival,
    same_file,
    superseded_by,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    (root / "loans").mkdir(parents=True)
    return root


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("a,b\n1,2\n")
    return secret


# ---- dataset names and file names ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("relative", "dataset"), [
    ("loans/2026-11-22.csv", "loans"), ("loans__2026-11-22.parquet", "loans"), ("loans.csv", "loans"),
    ("credit-v2/part.pq", "credit-v2"), ("loans.csv.gz", "loans"), ("loans__2026-11-22.CSV.GZ", "loans"),
])
def test_dataset_comes_from_the_subfolder_or_the_name_prefix(relative: str, dataset: str) -> None:
    assert dataset_of(relative) == dataset


@pytest.mark.parametrize(("relative", "message"), [
    ("a/b/c.csv", "a/b/c.csv: landed files go in the landing folder or one subfolder of it (<dataset>/<file>); "
                  "this path is deeper."),
    ("bad name/x.csv", "bad name/x.csv: dataset name 'bad name' may only hold letters, digits, '.', '_' and '-'; "
                       "rename the file or subfolder."),
    ("$x__1.csv", "$x__1.csv: dataset name '$x' may only hold letters, digits, '.', '_' and '-'; rename the file"),
])
def test_bad_dataset_paths_are_refused(relative: str, message: str) -> None:
    # The path as landed and what to do about it: a watcher's log line is all its user sees.
    with pytest.raises(InputError, match=re.escape(message)):
        dataset_of(relative)


@pytest.mark.parametrize(("name", "ok"), [
    ("x.csv", True), ("x.PARQUET", True), ("x.pq", True), (".x.csv", False), ("~x.csv", False),
    ("x.csv.part", False), ("x.csv.tmp", False), ("x.csv.done", False), ("x.txt", False), ("x.partial", False),
    ("x.csv.gz", True), ("x.csv.gz.done", False), ("x.csv.gz.part", False), ("x.gz", False), ("x.tsv", False),
])
def test_partial_hidden_and_foreign_names_are_not_data_files(name: str, ok: bool) -> None:
    assert is_data_file_name(name) is ok


# ---- confinement --------------------------------------------------------------------------------------------------

def test_paths_inside_the_landing_folder_resolve(landing: Path) -> None:
    f = landing / "loans" / "a.csv"
    f.write_text("a\n1\n")
    real, rel = confine(landing, "loans/a.csv")
    assert real == f.resolve() and rel == "loans/a.csv"
    assert confine(landing, str(f)) == (f.resolve(), "loans/a.csv")  # absolute, but inside
    assert confine(landing, "./loans/a.csv")[1] == "loans/a.csv"


@pytest.mark.parametrize("make_path", [
    lambda landing, secret: "../outside/secret.csv",
    lambda landing, secret: "loans/../../outside/secret.csv",
    lambda landing, secret: "loans/../loans/a.csv",  # '..' is refused even when it would stay inside
    lambda landing, secret: str(secret),
    lambda landing, secret: "",
    lambda landing, secret: "loans/\x00a.csv",
])
def test_escaping_paths_are_refused(landing: Path, outside: Path, make_path) -> None:
    (landing / "loans" / "a.csv").write_text("a\n1\n")
    with pytest.raises(UnsafePathError, match="refused path"):
        confine(landing, make_path(landing, outside))


def test_symlinks_that_leave_the_folder_are_refused(landing: Path, outside: Path) -> None:
    (landing / "loans" / "link.csv").symlink_to(outside)
    (landing / "elsewhere").symlink_to(outside.parent, target_is_directory=True)
    for path in ("loans/link.csv", "elsewhere/secret.csv"):
        with pytest.raises(UnsafePathError, match="outside the landing folder"):
            confine(landing, path)


def test_symlinks_within_the_folder_are_allowed(landing: Path) -> None:
    target = landing / "loans" / "a.csv"
    target.write_text("a\n1\n")
    (landing / "loans" / "b.csv").symlink_to(target)
    assert confine(landing, "loans/b.csv") == (target.resolve(), "loans/b.csv")


def test_missing_folders_and_non_data_files_are_input_errors(landing: Path) -> None:
    (landing / "loans" / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="not found"):
        confine(landing, "loans/none.csv")
    with pytest.raises(InputError, match="not a regular file"):
        confine(landing, "loans")
    with pytest.raises(InputError, match="not a data file"):
        confine(landing, "loans/notes.txt")
    with pytest.raises(InputError, match="landing folder not found"):
        confine(landing / "nope", "a.csv")


# ---- landed-file detection ----------------------------------------------------------------------------------------

def _scanner(landing: Path, clock: FakeClock, **kwargs) -> LandingScanner:
    return LandingScanner(landing, settle_seconds=5.0, clock=clock, **kwargs)


def test_a_file_lands_once_it_stops_changing_for_the_settle_time(landing: Path) -> None:
    clock = FakeClock()
    scanner = _scanner(landing, clock)
    f = landing / "loans" / "a.csv"
    f.write_text("a\n1\n")
    assert scanner.poll() == []  # first sight
    for i in range(3):  # still being written: grows every 2 s
        clock.advance(2)
        with open(f, "a") as fh:
            fh.write(f"{i}\n")
        os.utime(f, ns=(time.time_ns(), time.time_ns() + i + 1))
        assert scanner.poll() == []
    clock.advance(4.9)
    assert scanner.poll() == []  # unchanged, but for less than 5 s
    clock.advance(0.2)
    landed = scanner.poll()
    assert [(x.relative, x.dataset, x.reason, x.size) for x in landed] == [("loans/a.csv", "loans", "stable", f.stat().st_size)]
    scanner.mark_emitted(landed[0])
    clock.advance(60)
    assert scanner.poll() == []  # reported once


def test_a_settle_time_of_zero_lands_on_the_second_sight_and_a_negative_one_is_refused(landing: Path) -> None:
    with pytest.raises(InputError, match=r"settle time must be >= 0 seconds, got -1\.$"):
        LandingScanner(landing, settle_seconds=-1, clock=FakeClock())
    scanner = LandingScanner(landing, settle_seconds=0, clock=FakeClock())
    (landing / "loans" / "a.csv").write_text("a\n1\n")
    assert scanner.poll() == []  # first sight: not yet seen unchanged
    assert [x.reason for x in scanner.poll()] == ["stable"]  # unchanged since, with no time to wait


def test_a_name_that_is_not_utf8_is_skipped_with_one_warning_and_the_others_land(landing: Path, caplog) -> None:
    # A Latin-1 name reaches Python with surrogates: no event can carry it, and the watcher, taking the failed send
    # for a server outage, held back every file after it on every poll.
    clock = FakeClock()
    scanner = _scanner(landing, clock)
    with open(os.path.join(os.fsencode(landing / "loans"), b"a-caf\xe9.csv"), "wb") as fh:
        fh.write(b"a\n1\n")
    (landing / "loans" / "b.csv").write_text("a\n1\n")
    with caplog.at_level("WARNING"):
        assert scanner.poll() == []
        clock.advance(6)
        assert [x.relative for x in scanner.poll()] == ["loans/b.csv"]
        clock.advance(6)
        scanner.poll()
    said = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(said) == 1 and "a-caf" in said[0] and "rename it" in said[0]


def test_a_done_marker_lands_a_file_at_once_and_partial_names_never_land(landing: Path, caplog) -> None:
    clock = FakeClock()
    scanner = _scanner(landing, clock)
    (landing / "loans" / "b.parquet").write_bytes(b"PAR1-not-really")
    (landing / "loans" / "b.parquet.done").touch()
    for name in ("c.csv.part", ".d.csv", "e.csv.tmp", "f.txt"):
        (landing / "loans" / name).write_text("x\n")
    (landing / "loans" / "empty.csv").touch()
    (landing / "loans" / "archive").mkdir()  # a folder inside a dataset's folder: not looked into, nothing said
    (landing / "g__1.csv").write_text("a\n1\n")
    landed = scanner.poll()
    assert [(x.relative, x.reason) for x in landed] == [("loans/b.parquet", "marker")]
    scanner.mark_emitted(landed[0])
    clock.advance(3600)
    scanner.poll()
    clock.advance(3600)
    assert [x.relative for x in scanner.poll()] == ["g__1.csv"]  # the empty file and partial names never land
    empty = [r.message for r in caplog.records if "empty.csv is empty" in r.message]
    assert len(empty) == 1 and "deliver the file again" in empty[0]  # said once, once it would have landed
    # A file in another format was ignored without a word (a review dropped rates.xlsx and waited): said once.
    foreign = [r.message for r in caplog.records if "not a data file" in r.message]
    assert foreign == ["lossval watch: ignoring 'loans/f.txt': not a data file (.csv, .csv.gz, .parquet or .pq); "
                       "save it in one of those formats to have it cleaned (said once per name)"]


def test_require_marker_ignores_settled_files_without_marker(landing: Path) -> None:
    clock = FakeClock()
    scanner = _scanner(landing, clock, require_marker=True)
    (landing / "loans" / "a.csv").write_text("a\n1\n")
    scanner.poll()
    clock.advance(600)
    assert scanner.poll() == []
    (landing / "loans" / "a.csv.done").touch()
    assert [x.reason for x in scanner.poll()] == ["marker"]


def test_state_survives_a_restart_and_a_rewritten_file_lands_again(landing: Path, tmp_path: Path) -> None:
    clock, state = FakeClock(), tmp_path / "state" / "watch.json"
    f = landing / "loans" / "a.csv"
    f.write_text("a\n1\n")
    (landing / "loans" / "a.csv.done").touch()
    first = _scanner(landing, clock, state_path=state)
    first.mark_emitted(first.poll()[0], event_id="e1")
    saved = json.loads(state.read_text())
    assert saved["emitted"]["loans/a.csv"]["event_id"] == "e1" and saved["emitted"]["loans/a.csv"]["size"] == 4
    assert sorted(p.name for p in state.parent.iterdir()) == ["watch.json", "watch.json.lock"]  # no temp file

    # A state write killed before its rename leaves a temp file; the next scanner removes it.
    from lossval.io import _host_tag
    from tests.reliability._helpers import dead_pid

    orphan = state.parent / f".tmp-watch.json~{_host_tag()}~{dead_pid()}~k1"
    orphan.write_text("{")
    with pytest.raises(InputError, match="another `lossval watch` is using this state file"):
        _scanner(landing, clock, state_path=state)  # one watcher per state file
    first.close()
    second = _scanner(landing, clock, state_path=state)
    assert not orphan.exists()
    assert second.poll() == []
    f.write_text("a\n1\n2\n")  # a new version under the same name, written in place
    old_marker = f.with_name("a.csv.done").stat().st_mtime_ns  # the old delivery's marker, untouched
    os.utime(f, ns=(old_marker + 10**9,) * 2)  # the rewrite comes after it
    assert second.poll() == []  # a marker older than the file does not count: it may be half-written
    (landing / "loans" / "a.csv.done").touch()
    assert [(x.size, x.reason) for x in second.poll()] == [(6, "marker")]
    second.close()


def test_a_stale_marker_falls_back_to_the_settle_rule(landing: Path) -> None:
    clock = FakeClock()
    f = landing / "loans" / "b.csv"
    f.write_text("a\n1\n")
    marker = landing / "loans" / "b.csv.done"
    marker.touch()
    os.utime(marker, ns=(f.stat().st_mtime_ns - 10**9,) * 2)
    scanner = _scanner(landing, clock)
    assert scanner.poll() == []
    clock.advance(6)
    assert [x.reason for x in scanner.poll()] == ["stable"]
    assert _scanner(landing, clock, require_marker=True).poll() == []  # marker-only watchers wait for a new one


def test_a_file_replaced_with_same_size_and_mtime_lands_again(landing: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    f = landing / "loans" / "c.csv"
    f.write_text("a\n1\n")
    (landing / "loans" / "c.csv.done").touch()
    with _scanner(landing, clock, state_path=tmp_path / "w.json") as scanner:
        scanner.mark_emitted(scanner.poll()[0])
        new = landing / "loans" / ".c.csv.part"
        new.write_text("a\n9\n")  # other content, same size
        os.utime(new, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns))  # as `cp -p` / `rsync -t` keep it
        os.replace(new, f)
        assert [x.relative for x in scanner.poll()] == ["loans/c.csv"]


def test_a_state_save_failure_keeps_watching_and_retries(landing: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    import lossval.landing as landing_mod

    clock = FakeClock()
    (landing / "loans" / "d.csv").write_text("a\n1\n")
    (landing / "loans" / "d.csv.done").touch()
    state = tmp_path / "w.json"
    with _scanner(landing, clock, state_path=state) as scanner:
        real = landing_mod.write_json

        def disk_full(*a, **k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(landing_mod, "write_json", disk_full)
        with caplog.at_level("WARNING", logger="lossval.landing"):
            scanner.mark_emitted(scanner.poll()[0])  # does not raise
        assert "could not save the watch state" in caplog.text and not state.exists()
        assert scanner.poll() == []  # still known as reported, in memory
        monkeypatch.setattr(landing_mod, "write_json", real)
        scanner.poll()  # retried
        assert "loans/d.csv" in json.loads(state.read_text())["emitted"]


def test_a_state_entry_without_size_is_reported(landing: Path, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    state.write_text(json.dumps({"emitted": {"loans/a.csv": 5}}))
    with pytest.raises(InputError, match="'loans/a.csv' lacks an integer size.*delete it to start afresh"):
        LandingScanner(landing, state_path=state)


def test_a_corrupt_state_file_is_reported(landing: Path, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    state.write_text("{not json")
    with pytest.raises(InputError, match="delete it to start afresh"):
        LandingScanner(landing, state_path=state)


def test_symlinks_leaving_the_folder_are_skipped_by_the_scanner(landing: Path, outside: Path, caplog) -> None:
    clock = FakeClock()
    (landing / "loans" / "link.csv").symlink_to(outside)
    (landing / "loans" / "link.csv.done").touch()
    (landing / "deep" / "er").mkdir(parents=True)
    (landing / "deep" / "er" / "x.csv").write_text("a\n1\n")
    scanner = _scanner(landing, clock)
    with caplog.at_level("WARNING", logger="lossval.landing"):
        assert scanner.poll() == []
        clock.advance(60)
        assert scanner.poll() == []
    assert sum("loans/link.csv" in r.getMessage() for r in caplog.records) == 1  # warned once


def test_a_file_that_cannot_be_looked_at_is_skipped_and_the_others_land(landing: Path, monkeypatch, caplog) -> None:
    # A folder without search permission (or a stale NFS handle) stopped the watcher for every dataset.
    import lossval.landing

    clock = FakeClock()
    (landing / "claims").mkdir()
    for f in (landing / "loans" / "x.csv", landing / "claims" / "y.csv"):
        f.write_text("a\n1\n")
        Path(f"{f}.done").touch()
    real_confine = lossval.landing.confine

    def confine(root, relative):  # noqa: ANN001, ANN202
        if relative.startswith("claims/"):
            raise PermissionError(13, "Permission denied")
        return real_confine(root, relative)

    monkeypatch.setattr(lossval.landing, "confine", confine)
    scanner = _scanner(landing, clock)
    with caplog.at_level("WARNING", logger="lossval.landing"):
        landed = scanner.poll()
        assert [x.relative for x in landed] == ["loans/x.csv"]
        scanner.mark_emitted(landed[0])
        clock.advance(60)
        assert scanner.poll() == []
    assert sum("claims/y.csv" in r.getMessage() and "Permission denied" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setattr(lossval.landing, "confine", real_confine)  # readable again: it lands
    assert [x.relative for x in scanner.poll()] == ["claims/y.csv"]
    # A folder that cannot even be listed (mode 000) is said once too, not skipped silently.
    real_scandir = os.scandir

    def scandir(path):  # noqa: ANN001, ANN202
        if str(path).endswith("claims"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(lossval.landing.os, "scandir", scandir)
    caplog.clear()
    with caplog.at_level("WARNING", logger="lossval.landing"):
        scanner.poll()
        scanner.poll()
    assert sum("folder claims/" in r.getMessage() and "Permission denied" in r.getMessage() for r in caplog.records) == 1


# ---- the per-dataset lock -----------------------------------------------------------------------------------------

def test_two_holders_of_a_dataset_lock_run_one_after_the_other(tmp_path: Path) -> None:
    order: list[str] = []
    waited: list[str] = []

    def hold(name: str) -> None:
        with dataset_lock(tmp_path, "loans", holder=name, poll=0.01, on_wait=lambda: waited.append(name)):
            order.append(f"{name} in")
            time.sleep(0.3)
            order.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    threads[0].start()
    time.sleep(0.05)
    threads[1].start()
    for t in threads:
        t.join(5)
    assert order == ["a in", "a out", "b in", "b out"] and waited == ["b"]
    log = read_lock_log(tmp_path, "loans")
    assert [r["holder"] for r in log] == ["a", "b"]
    assert log[0]["released"] <= log[1]["acquired"] and log[1]["waited"] >= 0.2


def test_a_lock_held_too_long_times_out(tmp_path: Path) -> None:
    with dataset_lock(tmp_path, "loans"):
        with pytest.raises(LockTimeout, match="locked by another run"):
            with dataset_lock(tmp_path, "loans", timeout=0.1, poll=0.02):
                pass
    with dataset_lock(tmp_path, "other"):  # other datasets are not blocked
        pass


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"timeout": float("nan")}, "timeout must be a number of seconds >= 0, got nan"),
    ({"timeout": float("inf")}, "timeout must be a number of seconds >= 0, got inf"),
    ({"timeout": -1}, "timeout must be a number of seconds >= 0, got -1"),
    ({"timeout": "60"}, "timeout must be a number of seconds >= 0, got '60'"),
    ({"poll": 0}, "poll must be a number of seconds > 0, got 0"),
    ({"poll": float("nan")}, "poll must be a number of seconds >= 0, got nan"),
])
def test_a_lock_wait_that_could_never_end_is_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    # NaN compares false with everything, so "waited >= timeout" would never be true behind a held lock.
    with pytest.raises(ConfigError, match=message):
        with dataset_lock(tmp_path / "locks", "loans", **kwargs):
            pass
    assert not (tmp_path / "locks").exists()  # refused before anything was created


def test_a_marker_with_the_file_s_own_mtime_counts(landing: Path) -> None:
    f = landing / "loans" / "e.csv"
    f.write_text("a\n1\n")
    marker = landing / "loans" / "e.csv.done"
    marker.touch()
    os.utime(marker, ns=(f.stat().st_mtime_ns,) * 2)  # same tick, as on a file system with coarse mtimes
    assert [x.reason for x in _scanner(landing, FakeClock()).poll()] == ["marker"]


def test_a_writer_whose_clock_runs_ahead_lands_by_a_new_marker(landing: Path, tmp_path: Path, caplog) -> None:
    clock = FakeClock()
    f = landing / "loans" / "g.csv"
    marker = landing / "loans" / "g.csv.done"
    ahead = time.time_ns() + 30 * 10**9  # the writer's clock is 30 s ahead; rsync -t / scp -p keep its mtime
    f.write_text("a\n1\n")
    os.utime(f, ns=(ahead, ahead))
    marker.touch()  # our clock: older than the file
    with _scanner(landing, clock, state_path=tmp_path / "w.json", require_marker=True) as scanner:
        with caplog.at_level("WARNING", logger="lossval.landing"):
            assert scanner.poll() == [] and scanner.poll() == []
        assert sum("ignoring g.csv.done" in r.getMessage() for r in caplog.records) == 1  # said once
        marker.unlink()
        marker.touch()  # another marker, but the file was never reported: only "at least as new" counts
        assert scanner.poll() == []
        os.utime(marker, ns=(ahead, ahead))  # touched with the writer's clock
        landed = scanner.poll()
        assert [x.reason for x in landed] == ["marker"]
        scanner.mark_emitted(landed[0])  # records this marker
        f.write_text("a\n1\n2\n")  # the next delivery, in place, a second later on the writer's clock
        os.utime(f, ns=(ahead + 10**9,) * 2)
        assert scanner.poll() == []  # the marker is the one already seen: the file may be half-written
        os.utime(marker, ns=(ahead + 5 * 10**8,) * 2)  # touched again by a clock half a second behind the file's
        assert [x.size for x in scanner.poll()] == [6]  # older than the file, but not the marker last seen


def test_a_marker_touched_after_a_settled_report_does_not_land_the_next_in_place_rewrite(landing: Path,
                                                                                         tmp_path: Path) -> None:
    clock = FakeClock()
    f = landing / "loans" / "h.csv"
    marker = landing / "loans" / "h.csv.done"
    f.write_text("a\n" + "1\n" * 100)
    with _scanner(landing, clock, state_path=tmp_path / "w.json") as scanner:
        assert scanner.poll() == []
        clock.advance(6)
        landed = scanner.poll()
        assert [x.reason for x in landed] == ["stable"]
        scanner.mark_emitted(landed[0])
        marker.touch()  # the writer drops its marker after the file had settled
        os.utime(marker, ns=(f.stat().st_mtime_ns + 10**9,) * 2)
        clock.advance(2)
        assert scanner.poll() == []  # the same delivery: reported already
        f.write_text("a\n" + "1\n" * 10)  # the next delivery, in place, half written; the old marker still there
        os.utime(f, ns=(f.stat().st_mtime_ns + 5 * 10**9,) * 2)
        clock.advance(1)
        assert scanner.poll() == []  # neither the old marker nor (yet) the settle rule lands it
        clock.advance(6)
        assert [(x.reason, x.size) for x in scanner.poll()] == [("stable", 22)]


def test_a_lock_the_file_system_refuses_is_a_clear_error(landing: Path, tmp_path: Path, monkeypatch) -> None:
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(InputError, match="cannot lock the watch state.*No locks available.*local disk"):
        LandingScanner(landing, state_path=tmp_path / "w.json")
    assert len(os.listdir("/proc/self/fd")) == before  # no descriptor leaked


def test_the_arrival_record_keeps_the_newest_file(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    assert newest_arrival(locks, "loans") is None and superseded_by(locks, "loans", 5) is None
    record_arrival(locks, "loans", relative="loans/b.csv", mtime_ns=200, size=10, run_id="r2")
    assert superseded_by(locks, "loans", 100)["relative"] == "loans/b.csv"  # an older file is held back
    assert superseded_by(locks, "loans", 200) is None  # same clock tick: not older
    kept = record_arrival(locks, "loans", relative="loans/a.csv", mtime_ns=100, size=10, run_id="r1")  # late
    assert kept["relative"] == "loans/b.csv" and newest_arrival(locks, "loans")["run_id"] == "r2"
    record_arrival(locks, "loans", relative="loans/c.csv", mtime_ns=300, size=10, run_id="r3")
    assert newest_arrival(locks, "loans")["relative"] == "loans/c.csv"
    assert newest_arrival(locks, "other") is None  # per dataset
    assert not [p for p in locks.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_a_forced_older_file_is_a_rollback_that_holds_until_a_newer_delivery(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    record_arrival(locks, "loans", relative="loans/b.csv", path="/l/loans/b.csv", mtime_ns=200, size=10, inode=7,
                   run_id="r2")
    back = record_arrival(locks, "loans", relative="loans/a.csv", path="/l/loans/a.csv", mtime_ns=100, size=9,
                          inode=6, run_id="r1", forced=True)
    assert (back["relative"], back["path"], back["run_id"]) == ("loans/a.csv", "/l/loans/a.csv", "r1")  # nightly's file
    assert back["rolled_back_from"]["relative"] == "loans/b.csv" and newest_arrival(locks, "loans") == back
    assert superseded_by(locks, "loans", 150)["relative"] == "loans/b.csv"  # still older than the newest processed
    assert superseded_by(locks, "loans", 200) is None
    assert same_file(back["rolled_back_from"], relative="loans/b.csv", mtime_ns=200, size=10, inode=7)
    assert not same_file(back["rolled_back_from"], relative="loans/b.csv", mtime_ns=200, size=10, inode=8)  # replaced
    assert same_file(back, relative="loans/a.csv", mtime_ns=100, size=9, inode=None)  # inode unknown: not compared
    new = record_arrival(locks, "loans", relative="loans/c.csv", mtime_ns=300, size=10, run_id="r3")
    assert "rolled_back_from" not in new and superseded_by(locks, "loans", 250)["relative"] == "loans/c.csv"


def test_an_unreadable_arrival_record_is_reported_and_ignored(tmp_path: Path, caplog) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / "loans.arrival.json").write_text("{not json", encoding="utf-8")
    assert superseded_by(locks, "loans", 1) is None
    assert "cannot be read" in caplog.text
    record_arrival(locks, "loans", relative="loans/a.csv", mtime_ns=1, size=1)  # the next run rewrites it
    assert newest_arrival(locks, "loans")["mtime_ns"] == 1


def test_importing_the_landing_rules_does_not_load_pandas_or_torch() -> None:
    import subprocess
    import sys

    code = "import sys, lossval.landing; print(sorted(m for m in ('pandas', 'numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr  # the watcher stays light


def test_an_input_error_ends_a_delivery_s_attempt_unless_it_is_the_config_s_or_another_file_s(tmp_path: Path) -> None:
    from lossval.landing import refuses_file

    landed, curated = tmp_path / "incoming" / "a.csv", tmp_path / "share" / "valid.csv"
    others = {"other_files": (str(curated), None)}
    assert refuses_file(InputError("bad rows", source=str(landed)), landed, **others)
    assert refuses_file(InputError("target too large"), landed, **others)  # no source: the data's
    assert refuses_file(InputError("one class", source="train split"), landed, **others)
    assert not refuses_file(InputError("no such file", source=str(curated)), landed, **others)
    assert not refuses_file(ConfigError("device='cuda': no CUDA device"), landed, **others)
    assert not refuses_file(RuntimeError("MLflow down"), landed, **others)


def test_attempts_older_than_the_newest_file_are_dropped_and_their_lock_is_no_dataset_s(tmp_path: Path) -> None:
    # An older file's failed attempt stayed forever (filtered, never removed): once the arrival record was deleted
    # (the nightly's own advice) the nightly cleaned that stale file. And the attempt file's lock was named
    # <dataset>.attempt.lock, which is the dataset lock of a dataset called "<dataset>.attempt".
    import threading

    from lossval.landing import dataset_lock, record_arrival, record_attempt, unfinished_attempts

    locks = tmp_path / "locks"
    record_attempt(locks, "loans", relative="loans/old.csv", path="/l/loans/old.csv", mtime_ns=100, size=5)
    record_arrival(locks, "loans", relative="loans/new.csv", path="/l/loans/new.csv", mtime_ns=200, size=5, inode=1)
    assert unfinished_attempts(locks, "loans") == []
    (locks / "loans.arrival.json").unlink()
    assert unfinished_attempts(locks, "loans") == []  # gone for good, not back
    done = threading.Event()
    with dataset_lock(locks, "loans.attempt", timeout=0):
        worker = threading.Thread(target=lambda: (record_attempt(locks, "loans", relative="loans/x.csv",
                                                                 path="/l/loans/x.csv", mtime_ns=300, size=5),
                                                  done.set()), daemon=True)
        worker.start()
        worker.join(timeout=10)
    assert done.is_set()  # not blocked by another dataset's lock
    assert [a["relative"] for a in unfinished_attempts(locks, "loans")] == ["loans/x.csv"]


def test_clearing_an_attempt_removes_that_version_only_and_malformed_entries_are_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lossval.landing import clear_attempt, record_attempt, unfinished_attempts

    locks = tmp_path / "locks"
    record_attempt(locks, "loans", relative="loans/a.csv", path="/l/loans/a.csv", mtime_ns=100, size=5)
    record_attempt(locks, "loans", relative="loans/b.csv", path="/l/loans/b.csv", mtime_ns=200, size=5)
    clear_attempt(locks, "loans", relative="loans/a.csv", mtime_ns=100)
    assert [a["relative"] for a in unfinished_attempts(locks, "loans")] == ["loans/b.csv"]
    clear_attempt(locks, "loans", relative="loans/b.csv", mtime_ns=150)  # an older version's outcome: b stays
    assert [a["relative"] for a in unfinished_attempts(locks, "loans")] == ["loans/b.csv"]
    clear_attempt(locks, "loans", relative="loans/b.csv", mtime_ns=200)
    assert unfinished_attempts(locks, "loans") == [] and list(locks.glob("loans.attempt*.json")) == []
    # An entry without an integer mtime_ns (hand-edited, say) is left out, and said so; a good one is not.
    record_attempt(locks, "loans", relative="loans/c.csv", path="/l/loans/c.csv", mtime_ns=300, size=5)
    assert not [r for r in caplog.records if "without an integer mtime_ns" in r.message]
    (attempts,) = locks.glob("loans.attempt*.json")
    record = json.loads(attempts.read_text())
    attempts.write_text(json.dumps({"attempts": record["attempts"] + [{"relative": "loans/d.csv", "path": "/l/d.csv",
                                                                       "mtime_ns": "400"}]}))
    with caplog.at_level("WARNING"):
        assert [a["relative"] for a in unfinished_attempts(locks, "loans")] == ["loans/c.csv"]
    assert [r.message for r in caplog.records if "without an integer mtime_ns" in r.message] == [
        f"ignoring 1 entr(y/ies) of {attempts} without an integer mtime_ns or a path"]
