"""Every output is written atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossval.io import atomic_write, pid_namespace, sweep_orphaned_temp_files, write_parquet
from lossval.manifest import (MANIFEST_NAME, OWNERLESS_STALE_S, begin_run, complete_run, discard_run,
                              sweep_stale_runs)

ROOT = Path(__file__).resolve().parents[2]


def _frame(n: int, fill: float) -> pd.DataFrame:
    return pd.DataFrame({"row_id": [f"r{i}" for i in range(n)], "value": np.full(n, fill)})


def test_sigkill_mid_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target, marker = tmp_path / "values.parquet", tmp_path / "paused"
    write_parquet(_frame(10, 1.0), target)
    before = target.read_bytes()
    code = (f"from lossval.io import write_parquet; import pandas as pd, numpy as np; "
            f"write_parquet(pd.DataFrame({{'row_id': ['x'] * 500, 'value': np.zeros(500)}}), {str(target)!r})")
    env = {**os.environ, "LOSSVAL_TEST_PAUSE_AT": "write:values.parquet", "LOSSVAL_TEST_PAUSE_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never reached the pause point"
        time.sleep(0.05)
    (tmp,) = tmp_path.glob(".tmp-values.parquet~*")  # the new content, complete, under a temporary name
    assert len(pd.read_parquet(tmp)) == 500
    assert sweep_orphaned_temp_files(tmp_path) == []  # its writer is alive: not an orphan
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == before  # the old file, whole
    assert len(pd.read_parquet(target)) == 10
    other = tmp_path / (tmp.name.replace(".tmp-values.parquet~", ".tmp-other.parquet~"))
    other.write_bytes(b"")  # a dead writer's temp file of another name
    assert sweep_orphaned_temp_files(tmp_path, of="values.parquet") == [tmp]  # now it is; only that name's
    assert other.exists()


def test_a_reader_never_sees_a_half_written_parquet(tmp_path: Path) -> None:
    """One process rewrites a file 30 times (sizes alternate) while this one reads it as fast as it can.

    Each read opens the file once and reads from that handle: the rename swaps the whole file,
    so an open handle holds one complete version. (``pd.read_parquet(path)`` opens the path
    more than once, and could pair one version's footer with the next version's pages.)
    """
    target = tmp_path / "table.parquet"
    write_parquet(_frame(1000, 0.0), target)
    code = ("import sys, numpy as np, pandas as pd; from lossval.io import write_parquet\n"
            "for k in range(30):\n"
            "    n = 1000 if k % 2 else 50_000\n"
            "    write_parquet(pd.DataFrame({'row_id': np.arange(n).astype(str), 'value': np.full(n, float(k))}), sys.argv[1])\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=ROOT)
    reads, sizes = 0, set()
    while proc.poll() is None:
        with open(target, "rb") as fh:
            df = pd.read_parquet(fh)  # raises on a truncated file
        assert df["value"].nunique() == 1  # one version, whole
        sizes.add(len(df))
        reads += 1
    assert proc.returncode == 0
    assert reads > 10 and sizes <= {1000, 50_000}
    assert not list(tmp_path.glob(".tmp-*"))  # nothing left over by finished writes


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    from lossval.io import atomic_write

    def explode(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.json", explode)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- run folders

def test_run_folder_is_complete_only_after_the_rename(tmp_path: Path) -> None:
    partial = begin_run(tmp_path, "ds-1")
    assert partial.name == "ds-1.partial" and not (tmp_path / "ds-1").exists()
    with pytest.raises(FileNotFoundError):
        complete_run(partial, tmp_path / "ds-1")  # no manifest yet
    (partial / MANIFEST_NAME).write_text("{}")
    final = complete_run(partial, tmp_path / "ds-1")
    assert not partial.exists() and sorted(p.name for p in final.iterdir()) == [MANIFEST_NAME]
    failed = begin_run(tmp_path, "ds-2")
    (failed / "train.parquet").write_bytes(b"x")
    discard_run(failed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds-1"]


def test_folders_a_write_creates_are_flushed_into_their_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file flushed into a new folder (values/<key>/, snapshots/<dataset>/) is lost with the folder after a power
    # cut when the folder's own entry was never flushed into its parent.
    import lossval._files
    from lossval.io import atomic_write

    flushed: list[Path] = []
    monkeypatch.setattr(lossval._files, "fsync_dir", lambda folder: flushed.append(Path(folder)))
    (tmp_path / "ws").mkdir()
    atomic_write(tmp_path / "ws" / "values" / "k1" / "values.parquet", lambda tmp: Path(tmp).write_bytes(b"x"))
    assert flushed == [tmp_path / "ws", tmp_path / "ws" / "values", tmp_path / "ws" / "values" / "k1"]
    flushed.clear()
    atomic_write(tmp_path / "ws" / "values" / "k1" / "encoder.json", lambda tmp: Path(tmp).write_bytes(b"{}"))
    assert flushed == [tmp_path / "ws" / "values" / "k1"]  # only the rename: no folder was created


def test_the_rename_that_completes_a_run_is_flushed_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A rename lives in its folder's entry: without an fsync of runs/, a power cut after "finished" could bring
    # back the .partial name, and the next run's sweep would remove a run its caller was told had completed.
    import lossval.manifest

    flushed: list[Path] = []
    monkeypatch.setattr(lossval.manifest, "fsync_dir", lambda folder: flushed.append(Path(folder)))
    partial = begin_run(tmp_path, "ds-1")
    (partial / MANIFEST_NAME).write_text("{}")
    complete_run(partial, tmp_path / "ds-1")
    assert flushed == [tmp_path]


def test_sweep_removes_only_folders_of_dead_processes(tmp_path: Path) -> None:
    import json

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = begin_run(tmp_path, "alive")  # this process
    killed = begin_run(tmp_path, "killed")
    owner = json.loads((killed / "owner.json").read_text())
    (killed / "owner.json").write_text(json.dumps({**owner, "pid": dead.pid}))
    elsewhere = begin_run(tmp_path, "elsewhere")
    (elsewhere / "owner.json").write_text(json.dumps({**owner, "pid": dead.pid, "host": "another-machine"}))
    # A container sharing this host name (--uts=host, hostNetwork pods): its pids are not ours to check. Seen
    # by a reviewer with unshare: another namespace's sweep removed a live run's folder and failed it.
    container = begin_run(tmp_path, "container")
    assert owner["pid_ns"] == pid_namespace()
    (container / "owner.json").write_text(json.dumps({**owner, "pid": dead.pid, "pid_ns": "4026531999x"}))
    starting = tmp_path / "starting.partial"
    starting.mkdir()  # no owner file yet
    assert sweep_stale_runs(tmp_path) == [killed]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alive.partial", "container.partial", "elsewhere.partial",
                                                          "starting.partial"]
    assert alive.exists()
    # A run killed before it wrote its owner: its folder, untouched for more than a day, goes; a fresh one stays.
    (starting / ".tmp-owner.json~h~1~x").write_text("{")
    long_ago = time.time() - OWNERLESS_STALE_S - 60
    for path in (starting / ".tmp-owner.json~h~1~x", starting):
        os.utime(path, (long_ago, long_ago))
    fresh = tmp_path / "fresh.partial"
    fresh.mkdir()
    assert sweep_stale_runs(tmp_path) == [starting]
    assert not starting.exists() and fresh.exists()
    # Another host's or container's folder, untouched for over a week, was left by a killed run (pods sharing a
    # workspace get a new host name each: no later run owned it, and it stayed for ever).
    from lossval.manifest import FOREIGN_STALE_S

    week_ago = time.time() - FOREIGN_STALE_S - 60
    for path in (elsewhere, *elsewhere.iterdir()):
        os.utime(path, (week_ago, week_ago))
    assert sweep_stale_runs(tmp_path) == [elsewhere]
    assert container.exists() and alive.exists()


def test_a_folder_the_sweep_could_not_remove_is_not_reported_removed(tmp_path: Path, monkeypatch) -> None:
    import json
    import shutil

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = begin_run(tmp_path, "killed")
    owner = json.loads((killed / "owner.json").read_text())
    (killed / "owner.json").write_text(json.dumps({**owner, "pid": dead.pid}))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # a file it may not delete (another user's, say)
    assert sweep_stale_runs(tmp_path) == [] and killed.exists()
    monkeypatch.undo()
    assert sweep_stale_runs(tmp_path) == [killed] and not killed.exists()


# ---------------------------------------------------------------- every write goes through atomic_write

_WRITERS = {"to_parquet", "to_csv", "to_json", "write_text", "write_bytes", "savefig", "write_table"}
_WRITER_CALLS = {("torch", "save"), ("json", "dump"), ("np", "save"), ("numpy", "save"), ("pickle", "dump")}
# Functions that write non-atomically on purpose, and why.
_ALLOWED = {
    ("lossval/_files.py", "pause_point"): "test-only marker file",
    ("tasks/track.py", "values_histogram"): "writes into a TemporaryDirectory, then MLflow copies it",
    ("lossval/landing.py", "dataset_lock"): "appends one line to a JSON-lines lock log (O_APPEND)",
}


_OPENERS = {"open", "fdopen"}


def _is_write_mode(arg: ast.AST) -> bool:
    """A constant mode string (``"w"``, ``"ab"``, ``"x+"``...) that writes; a file name is no mode."""
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return False
    return re.fullmatch(r"[rwaxbt+]+", arg.value) is not None and bool(set(arg.value) & set("wax"))


def _writes(fn: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and (f.attr in _WRITERS or (
                isinstance(f.value, ast.Name) and (f.value.id, f.attr) in _WRITER_CALLS)):
            lines.append(node.lineno)
        elif ((isinstance(f, ast.Name) and f.id == "open") or (isinstance(f, ast.Attribute) and f.attr in _OPENERS)) \
                and any(_is_write_mode(a) for a in node.args[:2] + [k.value for k in node.keywords if k.arg == "mode"]):
            lines.append(node.lineno)  # open(p, "w"), and Path(p).open("w") or gzip.open(p, "wt") too
    return lines


def _top_level_functions(tree: ast.Module):  # noqa: ANN202
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item


def test_every_output_write_in_the_pipeline_is_atomic() -> None:
    """A write call must sit in a function that renames into place (atomic_write / os.replace)."""
    offenders = []
    for folder in ("lossval", "tasks", "flows", "deployments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            source = path.read_text()
            tree = ast.parse(source)
            for name, fn in _top_level_functions(tree):
                lines = _writes(fn)
                if not lines or (rel, name.split(".")[-1]) in _ALLOWED:
                    continue
                body = ast.get_source_segment(source, fn) or ""
                if "atomic_write(" not in body and "os.replace(" not in body:
                    offenders.append(f"{rel}:{lines[0]} in {name}")
    assert offenders == [], "non-atomic writes: " + ", ".join(offenders)


def test_outputs_get_the_permissions_the_umask_gives_not_mkstemp_s_0600(tmp_path: Path) -> None:
    import stat

    previous = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "kept.parquet", lambda tmp: Path(tmp).write_bytes(b"rows"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the group that reviews the quarantine can read it
