"""Reading tables, row ids and atomic writes."""

from __future__ import annotations

import os
import errno
import re
import warnings
import time
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossval.errors import InputError
from lossval.io import (
    _host_tag,
    pid_namespace,
    assign_row_ids,
    atomic_write,
    csv_line_of_row,
    data_columns,
    file_of_folder_row,
    file_sha256,
    frame_fingerprint,
    list_data_files,
    make_temp,
    read_table,
    sweep_orphaned_temp_files,
    write_parquet,
)
from tests.reliability._helpers import dead_pid


def test_folder_of_files_is_concatenated_and_schema_mismatch_named(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(tmp_path / "1.csv", index=False)
    pd.DataFrame({"a": [5], "b": [6]}).to_parquet(tmp_path / "2.parquet")
    assert read_table(tmp_path)["a"].tolist() == [1, 2, 5]
    pd.DataFrame({"b": [8], "a": [7]}).to_csv(tmp_path / "2b.csv", index=False)  # same columns, another order
    assert read_table(tmp_path).to_dict("list") == {"a": [1, 2, 5, 7], "b": [3, 4, 6, 8]}
    pd.DataFrame({"a": [5], "c": [6]}).to_csv(tmp_path / "3.csv", index=False)
    with pytest.raises(InputError, match=r"3\.csv: columns differ .* missing \['b'\], extra \['c'\]"):
        read_table(tmp_path)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [(b"", "e.csv", "empty"), (b"a,b\n", "h.csv", "header but no rows"), (b"\x00\x01garbage" * 10, "g.parquet", "not a readable parquet"),
     (b"x", "f.txt", "unsupported file type")],
)
def test_unreadable_files_are_named(tmp_path: Path, content: bytes, name: str, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_table(tmp_path / name)
    assert name in str(info.value)


def _refuse_reading(monkeypatch, target: Path, error: OSError) -> None:
    """Make the system refuse ``target`` as it would: tests run as root, whom chmod 000 does not stop."""
    import builtins

    import pyarrow.parquet as pq

    real_open, real_schema = builtins.open, pq.read_schema

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == target:
            raise error
        return real_open(file, *args, **kwargs)

    def refusing_schema(where, *args, **kwargs):  # pyarrow opens files itself, without builtins.open
        if isinstance(where, (str, os.PathLike)) and Path(where) == target:
            raise error
        return real_schema(where, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    monkeypatch.setattr(pq, "read_schema", refusing_schema)


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.parquet"])
@pytest.mark.parametrize(("error", "says"), [
    (PermissionError(13, "Permission denied"), r"cannot be read \(Permission denied\); let the user lossval runs as"),
    (OSError(5, "Input/output error"), r"cannot be read \(Input/output error\); the disk or network share that"),
    (IsADirectoryError(21, "Is a directory"), r"cannot be read \(Is a directory\); a folder is where a file was"),
], ids=["EACCES", "EIO", "EISDIR"])
def test_a_file_the_system_will_not_let_us_read_is_named_with_what_to_do(tmp_path: Path, monkeypatch, name: str,
                                                                         error: OSError, says: str) -> None:
    # Seen by a reviewer: a raw PermissionError / OSError traceback (CSV), or "not a readable parquet file ... is it
    # truncated?" for a file that was only unreadable, not damaged.
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    assert read_table(path).equals(frame)
    _refuse_reading(monkeypatch, path, error)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: {says}"):
        read_table(path)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: {says}"):  # a file of a folder too
        read_table(tmp_path)


def test_a_csv_refused_when_opened_again_for_the_cut_off_check_is_named(tmp_path: Path, monkeypatch) -> None:
    import lossval.io

    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")

    def refused(path: Path, n_header: int) -> None:  # the file went unreadable between the read and this check
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lossval.io, "_refuse_cut_off", refused)
    with pytest.raises(InputError, match=r"d\.csv: cannot be read \(Permission denied\); let the user"):
        read_table(tmp_path / "d.csv")


def test_a_curated_file_gone_or_refused_before_it_is_hashed_is_named_with_what_to_do(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    # Seen by a reviewer: a curated file deleted (or its permissions changed) between the split reading it and the
    # hashing gave a raw FileNotFoundError / PermissionError traceback.
    path = tmp_path / "validation.csv"
    path.write_text("a,b\n1,2\n")
    digest = file_sha256(path)
    path.unlink()
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: cannot be read \(No such file or directory\); "
                                         "it was moved or deleted while lossval read it; deliver it again") as info:
        file_sha256(path)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    path.write_text("a,b\n1,2\n")
    assert file_sha256(path) == digest
    _refuse_reading(monkeypatch, path, PermissionError(13, "Permission denied"))  # chmod 000 does not stop root
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: cannot be read \(Permission denied\); let the "
                                         "user lossval runs as read it"):
        file_sha256(path)


def test_an_output_of_the_run_s_own_that_cannot_be_read_back_says_check_the_disk_not_deliver_again(
        tmp_path: Path, monkeypatch) -> None:
    # Seen by a review: the run's own outputs were hashed with the InputError meant for delivered files, so a disk
    # error reading model_after.pt exited 2 with "deliver it again"; it is the machine's fault, not the input's.
    from lossval.errors import WorkspaceError

    path = tmp_path / "model_after.pt"
    path.write_bytes(b"weights")
    digest = file_sha256(path, own_output=True)
    assert digest == file_sha256(path)
    _refuse_reading(monkeypatch, path, OSError(errno.EIO, "Input/output error"))
    said = r"this run's own output file cannot be read back \(Input/output error\); it is not an input.*check the disk"
    with pytest.raises(WorkspaceError, match=rf"^{re.escape(str(path))}: {said}") as info:
        file_sha256(path, own_output=True)
    assert not isinstance(info.value, InputError) and isinstance(info.value.__cause__, OSError)
    with pytest.raises(InputError, match="the disk or network share that holds it failed to read it"):
        file_sha256(path)  # a delivered file keeps its InputError
    monkeypatch.undo()
    path.unlink()
    with pytest.raises(WorkspaceError, match=r"cannot be read back \(No such file or directory\)") as info:
        file_sha256(path, own_output=True)
    assert "deliver it again" not in str(info.value)
    assert "changes their permissions (a worker or job running as another user)" in str(info.value)


def test_a_folder_the_system_will_not_list_is_named_with_what_to_do(tmp_path: Path, monkeypatch) -> None:
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "d.csv", index=False)
    real_iterdir = Path.iterdir

    def refusing_iterdir(self):
        if self == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refusing_iterdir)
    says = r"cannot be read \(Permission denied\); let the user lossval runs as read it"
    with pytest.raises(InputError, match=rf"^{re.escape(str(tmp_path))}: {says}"):
        read_table(tmp_path)


def test_a_fifo_is_refused_as_not_a_regular_file_without_waiting_for_a_writer(tmp_path: Path) -> None:
    # It was "file is empty (0 bytes)": a FIFO's size is 0, and opening one waits for a writer.
    os.mkfifo(tmp_path / "d.csv")
    with pytest.raises(InputError, match=r"d\.csv: is not a regular file \(a FIFO, socket or device\); give the path"):
        read_table(tmp_path / "d.csv")


def test_a_fifo_or_socket_named_like_data_in_a_data_folder_is_refused_by_name(tmp_path: Path) -> None:
    import socket

    # It was left out of the listing without a word: the folder read as fewer rows than it holds.
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(tmp_path / "a.csv", index=False)
    os.mkfifo(tmp_path / "b.csv")
    with pytest.raises(InputError, match=rf"^{re.escape(str(tmp_path))}: 1 entry named like data files \('b\.csv'\) "
                                         r"is not a regular file \(a FIFO, socket or device\)"):
        read_table(tmp_path)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "c.parquet"))
        with pytest.raises(InputError, match=r"2 entries named like data files \('b\.csv', 'c\.parquet'\) are not"):
            list_data_files(tmp_path)
    for name in ("b.csv", "c.parquet"):
        os.rename(tmp_path / name, tmp_path / f"{name}.fifo")  # not a data file's name: not a data file, as notes.txt
    assert [f.name for f in list_data_files(tmp_path)] == ["a.csv"] and len(read_table(tmp_path)) == 2


def test_a_broken_symlink_named_like_data_in_a_data_folder_is_refused_by_name(tmp_path: Path) -> None:
    # It was left out of the listing without a word: the folder read as fewer rows than it holds.
    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(folder / "a.csv", index=False)
    pd.DataFrame({"x": [3], "y": [1]}).to_csv(tmp_path / "elsewhere.csv", index=False)
    (folder / "b.csv").symlink_to(tmp_path / "elsewhere.csv")  # a link to a regular file is read as that file
    assert [f.name for f in list_data_files(folder)] == ["a.csv", "b.csv"] and len(read_table(folder)) == 3
    (folder / "c.parquet").symlink_to(tmp_path / "gone.parquet")
    gone = re.escape(repr(str(tmp_path / "gone.parquet")))
    with pytest.raises(InputError, match=rf"^{re.escape(str(folder))}: 1 entry named like data files is a symbolic "
                                         rf"link to nothing \('c\.parquet' -> {gone}: .*point the link at the data "
                                         r"file, or remove it from the folder\.$"):
        read_table(folder)
    (folder / "d.csv").symlink_to("d.csv")  # a loop
    with pytest.raises(InputError, match=r"2 entries named like data files are symbolic links to nothing "
                                         r"\('c\.parquet' -> .*, 'd\.csv' -> 'd\.csv': the target does not exist or "
                                         r"the links form a loop\)"):
        list_data_files(folder)
    (folder / "c.parquet").unlink()
    (folder / "d.csv").rename(folder / "d.csv.old")  # not a data file's name: not a data file, as notes.txt
    assert [f.name for f in list_data_files(folder)] == ["a.csv", "b.csv"]


def test_a_folder_named_like_data_in_a_data_folder_is_refused_unless_set_aside(tmp_path: Path, monkeypatch) -> None:
    # A Spark/Dask b.csv/ of part files was left out without a word: the folder read as fewer rows than it holds.
    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(folder / "a.csv", index=False)
    (folder / "year=2024").mkdir()  # no data suffix: a partition folder, skipped as before
    assert [f.name for f in list_data_files(folder)] == ["a.csv"]
    (folder / "b.csv").mkdir()
    pd.DataFrame({"x": [3], "y": [1]}).to_csv(folder / "b.csv" / "part-0.csv", index=False)
    with pytest.raises(InputError, match=rf"^{re.escape(str(folder))}: 1 folder named like a data file \('b\.csv'\) "
                                         r"is in the data folder; lossval reads only the files directly in a data "
                                         r"folder.*Give that folder's path as the data to read its part files, move "
                                         r"its files up into the data folder, or rename it"):
        read_table(folder)
    (folder / "holdout.parquet").mkdir()
    with pytest.raises(InputError, match=r"2 folders named like data files \('b\.csv', 'holdout\.parquet'\) are"):
        list_data_files(folder, set_aside=[tmp_path / "elsewhere.parquet"])
    with pytest.raises(InputError, match=r"1 folder named like a data file \('b\.csv'\)"):
        list_data_files(folder, set_aside=[folder / "holdout.parquet"])  # only what is set aside is left out
    assert data_columns(folder) is None  # refused: the header of the first file is not taken as the folder's
    # The config's validation / test folder inside the data folder is set aside: as written (relative, a trailing /),
    # or through a symbolic link to the data folder (resolved).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(folder)
    for aside in (["data/holdout.parquet/", "data/b.csv"],
                  [None, folder / "b.csv", tmp_path / "link" / "holdout.parquet"]):
        assert [f.name for f in list_data_files("data", set_aside=aside)] == ["a.csv"]
        assert len(read_table(folder, set_aside=aside)) == 2 and data_columns(folder, set_aside=aside) == ["x", "y"]
    assert file_of_folder_row(folder, 1) == (folder / "a.csv", 1)  # a row's file, after a read that set them aside


def test_a_broken_symlink_given_as_the_data_path_names_its_target(tmp_path: Path) -> None:
    # It said "no such file or directory; check the path", and the link was there: the user checked the wrong thing.
    (tmp_path / "data.csv").symlink_to("/nonexistent/data.csv")
    with pytest.raises(InputError, match=rf"^{re.escape(str(tmp_path / 'data.csv'))}: is a symbolic link to "
                                         r"'/nonexistent/data\.csv', which leads to nothing \(the target was moved or "
                                         r"deleted, or the links form a loop\); point the link at the data file or "
                                         r"folder, or give its path instead\.$"):
        read_table(tmp_path / "data.csv")
    (tmp_path / "rel.parquet").symlink_to("gone.parquet")  # a relative target is also named from the link's folder
    gone = re.escape(str(tmp_path / "gone.parquet"))
    with pytest.raises(InputError, match=r"is a symbolic link \(the config's validation\.path\) to 'gone\.parquet', "
                                         rf"that is {gone}, which leads to nothing"):
        list_data_files(tmp_path / "rel.parquet", key="validation.path")
    with pytest.raises(InputError, match=r"no such file or directory; check the path"):  # no link: as before
        read_table(tmp_path / "none.csv")


def test_a_broken_symlink_as_a_folder_on_the_path_is_named_with_its_target(tmp_path: Path) -> None:
    # A folder on the path that is a link to nothing said "no such file or directory; check the path": the user looked
    # for the file, not at the link. A target written with .. was shown as /a/b/../c, the link's path as written only.
    (tmp_path / "x").mkdir()
    dead = tmp_path / "x" / "deadlink"
    dead.symlink_to("/nonexistent")
    with pytest.raises(InputError, match=rf"^{re.escape(str(dead / 'a.csv'))}: cannot be read "
                                         rf"\(the config's data\): the folder {re.escape(str(dead))} "
                                         r"on its path is a symbolic link to '/nonexistent', which leads to nothing "
                                         r"\(.*\); point the link at the folder that holds the data, or give the path "
                                         r"without the link\.$"):
        list_data_files(dead / "a.csv", key="data")
    (tmp_path / "x" / "rel").symlink_to("../gone")
    written, link = tmp_path / "x" / ".." / "x" / "rel", re.escape(str(tmp_path / "x" / "rel"))
    with pytest.raises(InputError, match=rf"^{re.escape(str(written / 'sub' / 'd.csv'))}: cannot be read: the folder "
                                         rf"{re.escape(str(written))} \(that is {link}\) "
                                         rf"on its path is a symbolic link to '\.\./gone', that is "
                                         rf"{re.escape(str(tmp_path / 'gone'))}, which leads to nothing"):
        read_table(written / "sub" / "d.csv")
    with pytest.raises(InputError, match=rf": is a symbolic link \(that is {link}\) "
                                         rf"to '\.\./gone', that is {re.escape(str(tmp_path / 'gone'))}, which leads"):
        read_table(written)


def test_row_ids_are_stable_and_unique() -> None:
    df = pd.DataFrame({"a": [1, 2, 1], "b": ["x", "y", "x"]})
    ids = assign_row_ids(df)
    assert ids.is_unique and ids.iloc[2] == ids.iloc[0] + "#2"
    shuffled = assign_row_ids(df.iloc[[1, 0]].reset_index(drop=True))
    assert shuffled.tolist() == [ids.iloc[1], ids.iloc[0]]  # content, not position
    with pytest.raises(InputError, match="duplicate ids"):
        assign_row_ids(pd.DataFrame({"id": [1, 1]}), id_column="id")
    with pytest.raises(InputError, match=r"duplicate ids, e.g. \['1'\].*first at row 1"):
        assign_row_ids(pd.DataFrame({"id": [1, "1", 2]}, dtype=object), id_column="id")  # the same id as text
    assert frame_fingerprint(df) == frame_fingerprint(df.copy()) != frame_fingerprint(df.iloc[[1, 0, 2]])


def test_whole_number_ids_stored_as_float_are_the_ids_a_csv_gives() -> None:
    # A parquet id column with one missing-then-filled value turns float: ids "0.0", "1.0" where the CSV export of
    # the same rows gives "0", "1", and every row was another row to the split and to the values cache.
    as_float = assign_row_ids(pd.DataFrame({"id": [0.0, 1.0, 12345678.0]}), id_column="id")
    assert as_float.tolist() == ["0", "1", "12345678"]
    assert assign_row_ids(pd.DataFrame({"id": [0.5, 1.0]}), id_column="id").tolist() == ["0.5", "1"]
    with pytest.raises(InputError, match="duplicate ids"):
        assign_row_ids(pd.DataFrame({"id": [1.0, "1"]}, dtype=object), id_column="id")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), target)
    before = target.read_bytes()

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.parquet"]


def test_temp_files_name_their_writer_and_only_orphans_are_swept(tmp_path: Path) -> None:
    fd, tmp = make_temp(tmp_path / "values.parquet")
    os.close(fd)
    assert Path(tmp).name.startswith(f".tmp-values.parquet~{_host_tag()}~{os.getpid()}~")
    host, dead = _host_tag(), dead_pid()
    (tmp_path / "sub").mkdir()
    legacy = host.rsplit(".ns", 1)[0]  # named by a lossval before temp names carried the PID namespace
    orphans = [tmp_path / f".tmp-a.json~{host}~{dead}~x1", tmp_path / "sub" / f".tmp-b.parquet~{host}~{dead}~x2",
               tmp_path / f".tmp-h.json~{legacy}~{dead}~x6"]
    assert _host_tag().endswith(f".ns{pid_namespace()}")  # a pid is checkable only in its own namespace
    other_ns = _host_tag().rsplit(".ns", 1)[0] + ".ns4026531999"  # a container sharing this host name
    kept = [Path(tmp),  # this (live) process's write in flight
            tmp_path / f".tmp-c.json~other-host~{dead}~x3",  # another machine's: cannot tell
            tmp_path / f".tmp-g.json~{other_ns}~{dead}~x5",  # another PID namespace's: cannot tell either
            tmp_path / ".tmp-d.json-abc123",  # not ours (old-style name): left alone
            tmp_path / "values.parquet"]
    for path in orphans + kept[1:]:
        path.write_text("x")
    assert sweep_orphaned_temp_files(tmp_path, recursive=False) == [orphans[0], orphans[2]]
    assert sweep_orphaned_temp_files(tmp_path, tmp_path / "missing") == [orphans[1]]
    assert all(p.exists() for p in kept) and not any(p.exists() for p in orphans)


def test_temp_files_whose_owner_cannot_be_checked_are_swept_only_when_old_and_asked(tmp_path: Path) -> None:
    day, host = 24 * 3600, _host_tag()
    old = [tmp_path / ".tmp-d.json-abc123", tmp_path / f".tmp-c.json~other-host~{dead_pid()}~x3"]
    recent = tmp_path / ".tmp-e.json-def456"
    live_old = tmp_path / f".tmp-f.json~{host}~{os.getpid()}~x4"  # this process: alive, whatever its age
    for path in [*old, recent, live_old]:
        path.write_text("x")
    two_days_ago = time.time() - 2 * day
    for path in [*old, live_old]:
        os.utime(path, (two_days_ago, two_days_ago))
    assert sweep_orphaned_temp_files(tmp_path) == []  # not asked: owners unknown, left alone
    assert sweep_orphaned_temp_files(tmp_path, stale_after_s=day) == sorted(old)
    assert recent.exists() and live_old.exists() and not any(p.exists() for p in old)



def test_a_saved_row_index_in_a_csv_is_warned_about(tmp_path):
    path = tmp_path / "with_index.csv"
    pd.DataFrame({"a": [1.0, 2.0], "label": ["x", "y"]}).to_csv(path)  # index=True: an unnamed first column
    with pytest.warns(UserWarning, match="'Unnamed: 0'.*row index"):
        df = read_table(path)
    assert list(df.columns) == ["Unnamed: 0", "a", "label"]  # read as it is; the user decides


def test_a_nameless_last_column_is_blamed_on_the_header_s_trailing_comma(tmp_path):
    path = tmp_path / "trailing_header.csv"
    path.write_text("a,label,\n1,x,\n2,y,\n")
    with pytest.warns(UserWarning, match="'Unnamed: 2'.*header line ends in a comma") as caught:
        read_table(path)
    assert "row index" not in str(caught[0].message)


def test_an_id_column_is_read_from_csv_as_the_text_it_holds(tmp_path):
    from lossval.io import assign_row_ids

    path = tmp_path / "ids.csv"
    path.write_text("id,a,zip\n007,1.5,02134\n7,2.5,02135\n010,3.5,10001\n")
    with pytest.warns(UserWarning, match="column 'zip' was read as numbers, but 2 of its values"):
        df = read_table(path, text_columns=["id", None, "not_a_column"])
    assert df["id"].tolist() == ["007", "7", "010"]  # two rows, not a repeated id 7
    assert df["a"].dtype == np.float64 and df["zip"].tolist() == [2134, 2135, 10001]  # the rest parsed as before
    assert assign_row_ids(df, id_column="id").tolist() == ["007", "7", "010"]
    with pytest.raises(InputError, match="duplicate ids"), pytest.warns(UserWarning) as caught:
        assign_row_ids(read_table(path), id_column="id")  # what reading it as numbers would have said
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["id", "zip"]  # 007 and 010, 02134 and 02135
    pq_path = tmp_path / "ids.parquet"
    pd.DataFrame({"id": [7, 8], "a": [1.0, 2.0]}).to_parquet(pq_path)
    assert read_table(pq_path, text_columns=["id"])["id"].tolist() == [7, 8]  # parquet keeps its stored type
    # A folder of both: the parquet file's int ids become text too, so the ids can be written back as parquet.
    folder = tmp_path / "mixed"
    folder.mkdir()
    pd.DataFrame({"id": [7, 8], "a": [1.0, 2.0]}).to_parquet(folder / "a.parquet")
    (folder / "b.csv").write_text("id,a\n009,3.0\n10,4.0\n")
    both = read_table(folder, text_columns=["id"])
    assert both["id"].tolist() == ["7", "8", "009", "10"]
    both.to_parquet(tmp_path / "back.parquet")


def test_na_words_in_a_csv_text_column_are_the_text_written_only_an_empty_field_is_missing(tmp_path):
    from lossval.encoding import TabularEncoder
    from lossval.io import assign_row_ids

    path = tmp_path / "regions.csv"
    path.write_text("id,region,x,flag,y\n"
                    "NA,NA,0.5,True,a\n"
                    "2,EU,NA,NA,b\n"
                    "3,null,0.3,False,a\n"
                    "4,N/A,null,True,b\n"
                    "5,,1,False,a\n"
                    "6,None,NaN,True,None\n")
    df = read_table(path, text_columns=["id"])
    # 'NA' is North America (and an id), 'None' a class: text as written; the empty field alone is missing
    assert df["id"].tolist() == ["NA", "2", "3", "4", "5", "6"]
    assert [None if pd.isna(v) else v for v in df["region"]] == ["NA", "EU", "null", "N/A", None, "None"]
    assert df["y"].tolist() == ["a", "b", "a", "b", "a", "None"]
    # numbers with markers stay numbers, the markers missing (and refused as such, naming the row)
    assert df["x"].dtype == np.float64 and df["x"].isna().tolist() == [False, True, False, True, False, True]
    assert [None if pd.isna(v) else bool(v) for v in df["flag"]] == [True, None, False, True, False, True]
    # 'NA' and a blank are two levels, and rows holding such text get ids of their own
    enc = TabularEncoder(target="y", exclude=["id", "x", "flag"]).fit(df)
    assert {"NA", "null", "N/A", "None", "__missing__"} <= set(enc.categories_["region"])
    no_ids = df.drop(columns="id")
    assert (assign_row_ids(no_ids) != assign_row_ids(no_ids.assign(region=no_ids["region"].where(
        no_ids["region"] == "EU")))).tolist() == [True, False, True, True, False, True]
    with pytest.raises(InputError, match="numeric column 'x' has 3 NaN/missing value.*first at row 1"):
        TabularEncoder(target="y", exclude=["id"]).fit(df)
    # numbers with a typo (pandas gives text) and a marker: still numbers with a typo to the encoder, which names it
    codes = tmp_path / "codes.csv"
    codes.write_text("code,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20)) + "x,a\nNA,b\n")
    coded = read_table(codes)
    assert coded["code"].isna().tolist() == [False] * 21 + [True]
    with pytest.raises(InputError, match="value 'x' in numeric column 'code' at row 20"):
        TabularEncoder(target="y").fit(coded)
    # the same with a later row's trailing comma (read by the python engine), gzip-compressed
    late = tmp_path / "late.csv.gz"
    late.write_bytes(gzip.compress(b"region,x,y\nEU,1,a\nNA,2,b\nnull,3,a,\n,4,b\n"))
    assert [None if pd.isna(v) else v for v in read_table(late)["region"]] == ["EU", "NA", "null", None]
    # parquet stores its nulls: its text is read as stored, as before
    pq_path = tmp_path / "regions.parquet"
    pd.DataFrame({"region": ["NA", None, "null"], "y": ["a", "b", "a"]}).to_parquet(pq_path)
    assert [None if pd.isna(v) else v for v in read_table(pq_path)["region"]] == ["NA", None, "null"]


def test_a_csv_file_whose_text_column_holds_only_na_words_reads_them_as_text_as_the_folder_s_other_files(tmp_path):
    folder = tmp_path / "regions"
    folder.mkdir()
    (folder / "a.csv").write_text("region,x,y\nNA,NaN,a\nNA,null,b\n")  # one day of North America only
    (folder / "b.csv").write_text("region,x,y\nEU,3,a\nNA,4,b\n,5,a\n")
    both = read_table(folder)
    assert [None if pd.isna(v) else v for v in both["region"]] == ["NA", "NA", "EU", "NA", None]
    assert both["x"].dtype == np.float64 and both["x"].isna().tolist() == [True, True, False, False, False]


def test_a_parquet_file_s_categorical_text_column_is_text_to_the_csv_files_read_beside_it(tmp_path):
    # Seen by a reviewer: pandas writes a categorical column as a parquet dictionary and reads it back categorical.
    # Such a column of regions was not "text": a CSV file of North America only ("NA") read its region as missing,
    # beside it in a folder or as a curated file, and a CSV file of several regions was refused as holding text
    # where the parquet file held "numbers".
    from lossval.io import text_columns_of

    folder = tmp_path / "regions"
    folder.mkdir()
    pd.DataFrame({"region": pd.Categorical(["EU", "NA", None]), "x": [1.0, 2.0, 3.0]}).to_parquet(folder / "a.parquet")
    (folder / "b.csv").write_text("region,x\nNA,4\nNA,5\n")
    assert [None if pd.isna(v) else v for v in read_table(folder)["region"]] == ["EU", "NA", None, "NA", "NA"]
    (folder / "b.csv").write_text("region,x\nNA,4\nUS,5\n")
    assert read_table(folder)["region"].tolist()[3:] == ["NA", "US"]
    data = read_table(folder / "a.parquet")
    assert text_columns_of(data) == ["region"]
    assert text_columns_of(data.assign(row_id=["r0", "r1", "r2"]), skip={"row_id"}) == ["region"]
    (folder / "b.csv").write_text("region,x\nNA,4\nNA,5\n")
    assert read_table(folder / "b.csv", text_columns=text_columns_of(data))["region"].tolist() == ["NA", "NA"]
    flags = pd.DataFrame({"f": pd.Categorical([True, False]), "n": pd.Categorical([1, 2])})
    assert text_columns_of(flags) == []  # levels of true/false or of numbers are no text


def test_na_words_in_a_column_declared_numeric_are_missing_whatever_its_share_of_text(tmp_path: Path) -> None:
    # Seen by a review: a column declared numeric (features.numeric, --numeric) with many typos holds text, so its NA
    # words stayed text too, and the refusal counted them among the values that are not numbers.
    (tmp_path / "d.csv").write_text("x,region\n1,NA\nNA,EU\nabc,NA\nnull,US\n")
    assert read_table(tmp_path / "d.csv")["x"].tolist() == ["1", "NA", "abc", "null"]  # undeclared: text as written
    got = read_table(tmp_path / "d.csv", numeric_columns=["x"])
    assert [None if pd.isna(v) else v for v in got["x"]] == ["1", None, "abc", None]
    assert got["region"].tolist() == ["NA", "EU", "NA", "US"]  # a text column keeps them
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("x,y\n1,a\nabc,b\n")
    (folder / "b.csv").write_text("x,y\nNA,c\nN/A,d\n")  # not made text to match a.csv's column
    assert read_table(folder)["x"].tolist() == ["1", "abc", "NA", "N/A"]
    parts = read_table(folder, numeric_columns=["x"])
    assert [None if pd.isna(v) else v for v in parts["x"]] == ["1", "abc", None, None]


def test_a_declared_numeric_column_with_text_in_one_file_of_a_folder_names_its_typo_not_categorical(
        tmp_path: Path) -> None:
    # Seen by a review: a folder whose features.numeric column held a typo in one file and numbers in another was
    # told to declare the column categorical, which the config refuses for a numeric one; the typo went unnamed.
    (tmp_path / "a.csv").write_text("x,y\n1,a\nNA,b\n3,c\n")
    (tmp_path / "b.csv").write_text("x,y\n4,d\nabc,e\nNA,f\n")
    with pytest.raises(InputError, match="holds text in b.csv but numbers in a.csv.*declare it categorical"):
        read_table(tmp_path)  # undeclared: it may be codes
    with pytest.raises(InputError, match=r"column 'x' is declared numeric but 1 of its 2 non-missing values in b.csv "
                                         r"do not parse as numbers, first 'abc' at row 4; fix or drop these rows\.$"):
        read_table(tmp_path, numeric_columns=["x"])


def test_a_declared_numeric_column_stored_as_text_numbers_in_one_file_is_not_told_to_be_categorical(
        tmp_path: Path) -> None:
    # Seen by a review: every value a number, but a parquet file stores them as text; the refusal fell through to
    # "declare it categorical", which the config refuses for a numeric column.
    pd.DataFrame({"x": ["1", "2", "3"], "y": [0, 1, 0]}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("x,y\n4,1\n5,0\n")
    with pytest.raises(InputError, match="declare it categorical"):
        read_table(tmp_path)  # undeclared: it may be codes
    with pytest.raises(InputError) as caught:
        read_table(tmp_path, numeric_columns=["x"])
    assert "categorical" not in str(caught.value)
    assert str(caught.value).endswith(
        "column 'x' is declared numeric and its values are numbers, but a.parquet stores them as text and the other "
        "files as numbers: one column has one type. Store them as numbers in a.parquet (e.g. pandas.to_numeric) and "
        "deliver it again.")


def test_nested_values_are_named_when_rows_are_hashed():
    from lossval.io import assign_row_ids, frame_fingerprint

    df = pd.DataFrame({"a": [1, 2], "tags": [[1], [2, 3]]})
    with pytest.raises(InputError, match="'tags'.*nested values.*row 0.*give an id column"):
        assign_row_ids(df, source="data.parquet")
    with pytest.raises(InputError, match="'tags'.*nested values"):
        frame_fingerprint(df, source="data.parquet")
    assert assign_row_ids(df.assign(id=["x", "y"]), id_column="id").tolist() == ["x", "y"]


def test_a_row_of_empty_cells_is_a_header_not_a_blank_line(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text(",,\n1,1,2\n3,3,4\n")  # pandas names these columns Unnamed: 0..2
    with pytest.warns(UserWarning, match="Unnamed"):
        df = read_table(path)
    assert len(df) == 2


def test_trailing_commas_keep_every_value_in_its_column(tmp_path):
    path = tmp_path / "trailing.csv"
    path.write_text("a,b,label\n1,2,x,\n3,4,y,\n")  # pandas' default would read column a as a row index
    assert read_table(path).to_dict("list") == {"a": [1, 3], "b": [2, 4], "label": ["x", "y"]}


def test_a_row_with_more_values_than_the_header_is_named(tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text('a,b\n1,2,9\n3,4\n"5\n6",7\n')
    with pytest.raises(InputError, match=r"extra.csv: line 2 has more values than the header's 2 column names"):
        read_table(path)
    later = tmp_path / "later.csv"
    later.write_text('a,b\n1,2\n3,4,5\n')
    with pytest.raises(InputError, match=r"later.csv: line 3 has more values than the header's 2 column names; fix"):
        read_table(later)


@pytest.mark.parametrize("name", ["late.csv", "late.csv.gz"])
def test_a_trailing_comma_on_a_later_row_only_is_read_like_one_on_the_first(tmp_path, name):
    import gzip

    text = "a,b,label\n1,2.5,x\n3,4.25,y,\n5,6.125,z\n"  # pandas' fast reader refuses the third line outright
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert read_table(path).to_dict("list") == {"a": [1, 3, 5], "b": [2.5, 4.25, 6.125], "label": ["x", "y", "z"]}


def test_a_parquet_index_with_a_name_comes_back_as_a_column(tmp_path):
    frame = pd.DataFrame({"x": [1.5, 2.5, 3.5]}, index=pd.Index(["r1", "r2", "r3"], name="id"))
    frame.to_parquet(tmp_path / "named.parquet")  # index written as data, not as a column
    assert read_table(tmp_path / "named.parquet").to_dict("list") == {"id": ["r1", "r2", "r3"], "x": [1.5, 2.5, 3.5]}
    frame.reset_index().iloc[[2, 0]].to_parquet(tmp_path / "filtered.parquet")  # unnamed: row positions only
    assert list(read_table(tmp_path / "filtered.parquet").columns) == ["id", "x"]


def test_repeated_blank_column_names_are_refused(tmp_path):
    path = tmp_path / "blank_names.csv"
    path.write_text("a, , \n1,2,3\n")  # pandas would rename the second ' ' to ' .1'
    with pytest.raises(InputError, match=r"duplicate column names \[' '\]"):
        read_table(path)


def test_csv_line_of_row_counts_rows_as_pandas_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('\na,b\n1,2\n\n   \n3,4\n"x\ny",5\n6,7\n')  # blank lines, a quoted value over two lines
    rows = read_table(path)
    assert rows["b"].tolist() == [2, 4, 5, 7]
    assert [csv_line_of_row(path, i) for i in range(5)] == [3, 6, 7, 9, None]
    assert csv_line_of_row(tmp_path / "missing.csv", 0) is None
    # A line holding only "" is a row to pandas (all empty), not a blank line: the rows after it were one line early.
    quoted = tmp_path / "q.csv"
    quoted.write_text('a,b\n1,2\n""\n3,x\n')
    assert len(read_table(quoted)) == 3
    assert [csv_line_of_row(quoted, i) for i in range(4)] == [2, 3, 4, None]


def test_file_of_folder_row_counts_the_files_as_read_table_concatenates_them(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2, 3], "b": ["4", "5", "6"]}).to_parquet(tmp_path / "1.parquet", index=False)
    (tmp_path / "2.csv").write_text('a,b\n7,"x\ny"\n\n8,9\n')  # a value over two lines, a blank line
    rows = read_table(tmp_path)
    assert rows["a"].tolist() == [1, 2, 3, 7, 8]
    assert [file_of_folder_row(tmp_path, i) for i in range(6)] == [
        (tmp_path / "1.parquet", 0), (tmp_path / "1.parquet", 1), (tmp_path / "1.parquet", 2),
        (tmp_path / "2.csv", 0), (tmp_path / "2.csv", 1), None]
    assert file_of_folder_row(tmp_path / "2.csv", 0) is None  # a file, not a folder
    (tmp_path / "3.parquet").write_bytes(b"not parquet")  # a file that cannot be counted: no guess
    assert file_of_folder_row(tmp_path, 7) is None


def test_gzip_compressed_csv_reads_as_the_plain_file(tmp_path: Path) -> None:
    text = 'id,x,label\n"007",1.5,a\n\n"0x",2.5,"b\nc"\n9,3.5,a\n'  # a blank line, a value over two lines
    (tmp_path / "plain.csv").write_text(text)
    (tmp_path / "packed.csv.gz").write_bytes(gzip.compress(text.encode()))
    plain = read_table(tmp_path / "plain.csv", text_columns=["id"])
    pd.testing.assert_frame_equal(read_table(tmp_path / "packed.csv.gz", text_columns=["id"]), plain)
    assert plain["id"].tolist() == ["007", "0x", "9"]  # ids kept as written, as in a plain CSV
    assert [csv_line_of_row(tmp_path / "packed.csv.gz", i) for i in range(4)] == [2, 4, 6, None]
    folder = tmp_path / "both"
    folder.mkdir()
    (folder / "1.csv").write_text("a,b\n1,2\n")
    (folder / "2.CSV.GZ").write_bytes(gzip.compress(b"a,b\n3,4\n"))
    assert read_table(folder).to_dict("list") == {"a": [1, 3], "b": [2, 4]}  # a folder reads both kinds


_ROWS = "a,b\n" + "".join(f"{i},{i * 7919 % 10007}\n" for i in range(5000))


@pytest.mark.parametrize(("content", "reason"), [
    (gzip.compress(_ROWS.encode())[:2000], "EOFError"),  # cut off mid-stream
    (_ROWS.encode(), "BadGzipFile"),  # a plain CSV under a .gz name
], ids=["truncated", "not-gzip"])
def test_a_broken_gzip_csv_is_named_and_says_what_to_do(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "d.csv.gz").write_bytes(content)
    with pytest.raises(InputError, match=rf"d\.csv\.gz: not a readable gzip file \({reason}.*Recompress it"):
        read_table(tmp_path / "d.csv.gz")


def test_a_true_false_column_with_a_blank_in_one_file_is_not_text(tmp_path: Path) -> None:
    # A review's folder: a blank made one file's flag column object (pandas' type for booleans with a gap, CSV or
    # parquet), read as "text in day1 but numbers in day2" and refused; declared categorical, the snapshot write
    # crashed (ArrowInvalid) on True next to 'True'.
    from lossval.io import write_parquet

    for suffix in ("csv", "parquet"):
        folder = tmp_path / suffix
        folder.mkdir()
        day1 = pd.DataFrame({"x": [1, 2, 3, 4], "flag": [True, False, None, True], "y": ["a", "b", "a", "b"]})
        day2 = pd.DataFrame({"x": [5, 6], "flag": [True, False], "y": ["a", "b"]})
        for name, frame in (("day1", day1), ("day2", day2)):
            getattr(frame, f"to_{suffix}")(folder / f"{name}.{suffix}", index=False)
        both = read_table(folder)
        assert [None if pd.isna(v) else bool(v) for v in both["flag"]] == [True, False, None, True, True, False]
        write_parquet(both, tmp_path / f"{suffix}.parquet")
        declared = read_table(folder, text_columns=["flag"])
        write_parquet(declared, tmp_path / f"{suffix}-declared.parquet")


def test_a_column_that_is_text_in_one_file_and_numbers_in_another_is_named(tmp_path: Path) -> None:
    """A review's folder: codes '0','1','2' as text in a.parquet and as numbers in b.csv crashed at the snapshot
    write (ArrowTypeError, "a bug"); it is now refused, naming the column, both files and the setting to use."""
    folder = tmp_path / "in"
    folder.mkdir()
    rows = pd.DataFrame({"x": np.arange(6.0), "code": [str(i % 3) for i in range(6)]})
    rows.to_parquet(folder / "a.parquet", index=False)
    rows.to_csv(folder / "b.csv", index=False)
    with pytest.raises(InputError, match=r"column 'code' holds text in a.parquet but numbers in b.csv.*"
                                         r"features.categorical: \[code\]"):
        read_table(folder)
    both = read_table(folder, text_columns=["code"])  # declared categorical: text in every file
    assert both["code"].tolist() == rows["code"].tolist() * 2
    rows.assign(code=np.nan).to_csv(folder / "b.csv", index=False)  # an empty column says nothing of its type
    assert len(read_table(folder)) == 12


def test_codes_with_leading_zeros_read_as_numbers_are_warned_about_once_per_column(tmp_path: Path, monkeypatch) -> None:
    # Seen by a review: an excluded zip column read as numbers reached the quarantine as 8681 for the file's "08681".
    path = tmp_path / "one.csv"
    path.write_text("id,zip,x,y\na,08681,0.5,1\nb,12345,0,0\nc,09384,-0.25,1\nd,-01,1,0\n")
    with pytest.warns(UserWarning) as caught:
        df = read_table(path)
    [message] = [str(w.message) for w in caught]  # x's 0.5, 0 and -0.25 are numbers, not codes
    assert f"{path}: column 'zip' was read as numbers, but 3 of its values" in message
    assert "'08681' on line 2" in message and "features.categorical: [zip]" in message
    assert df["zip"].tolist() == [8681, 12345, 9384, -1]  # the hint only: the values are read as before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_table(path, text_columns=["zip"])["zip"].tolist() == ["08681", "12345", "09384", "-01"]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.csv").write_text("zip,y\n12345,1\n23456,0\n")
    (folder / "b.csv").write_text("zip,y\n34567,1\n01000,0\n")
    (folder / "c.csv").write_text("zip,y\n00001,1\n45678,0\n")
    with pytest.warns(UserWarning) as caught:
        read_table(folder)
    [message] = [str(w.message) for w in caught]
    assert "2 of its values in 2 files" in message and "'01000' on line 3 of b.csv" in message
    gap = tmp_path / "gap.csv"  # a code column with a missing value is read as floats: whole ones, still checked
    gap.write_text("zip,x,y\n08681,0.5,1\n,1.5,0\n12345,2.5,1\n")
    with pytest.warns(UserWarning, match="column 'zip' was read as numbers, but 1 of its values"):
        read_table(gap)
    import lossval.io

    reread = []
    real = lossval.io.pd.read_csv
    monkeypatch.setattr(lossval.io.pd, "read_csv", lambda *a, **k: reread.append(k.get("usecols")) or real(*a, **k))
    with pytest.warns(UserWarning, match="'zip'"):
        read_table(gap)
    assert reread[-1] == ["zip", "y"]  # whole numbers only: measurements with decimals (x) are not read again


def test_missing_or_blank_marks_gaps_and_blank_text_whatever_the_column_holds() -> None:
    from lossval.io import missing_or_blank

    cases = [  # (column, the cells that hold no value)
        (("a", " ", "", None, np.nan, "b", "a", "  x ", "\u00a0"), [0, 1, 1, 1, 1, 0, 0, 0, 1]),
        ((None, np.nan, None), [1, 1, 1]),  # nothing at all (an all-missing object column: no distinct value)
        ((1, 1.0, True, "1", " ", None), [0, 0, 0, 0, 1, 1]),
        (([1], "a", " "), [0, 0, 1]),  # unhashable cells: checked one by one
    ]
    for cells, expected in cases:
        mask = missing_or_blank(pd.Series(list(cells), dtype=object))
        assert mask.tolist() == [bool(e) for e in expected], cells
        mask[0] = not mask[0]  # writable (the encoder updates it in place)
    assert missing_or_blank(pd.Series([1.5, np.nan])).tolist() == [False, True]
    assert missing_or_blank(pd.Series(["x", "", None], dtype="string")).tolist() == [False, True, True]


def test_a_missing_column_is_matched_to_what_it_abbreviates_not_to_a_loose_lookalike() -> None:
    # Seen by a review: 'app_id' got "did you mean 'applied_at'?" beside 'application_id', and 'nope' "did you mean
    # 'income'?" (difflib's default cutoff 0.6; config keys already used 0.75).
    from lossval.io import closest_name

    columns = ["application_id", "applied_at", "income", "debt_ratio", "years_employed", "decision"]
    assert closest_name("app_id", columns) == "application_id"
    assert closest_name("years", columns) == "years_employed"
    assert closest_name("nope", columns) is None
    assert closest_name("app", columns) is None  # abbreviates two columns: no guess
    assert closest_name("decison", columns) == "decision"
    assert closest_name("INCOME", columns) == "income"


def test_a_csv_cut_off_inside_its_last_row_is_refused_naming_the_line(tmp_path) -> None:
    # Seen by a review: a copy stopped mid-row was refused only because the target was the missing value; with the
    # target first, the half row was cleaned with NaN features.
    from lossval.io import read_table

    cut = tmp_path / "cut.csv"
    cut.write_text("y,a,b\n0,1.5,2\n1,3.5,4\n0,5.")
    with pytest.raises(InputError, match=r"cut.csv: the last line \(4\) has 2 of the header's 3 values and no line "
                                         r"break after it: the file looks cut off"):
        read_table(cut)
    for ok in ("y,a,b\n0,1.5,2\n1,3.5,4", "y,a,b\n0,1.5,2\n1,3.5,", "y,a,b\n0,1.5,2\n1,3.5\n", 'y,a,b\n0,1.5,2\n1,"x\ny",4'):
        (tmp_path / "ok.csv").write_text(ok)  # complete rows, or a short row that ends in a line break (as before)
        assert len(read_table(tmp_path / "ok.csv")) == 2


def test_a_keep_list_reads_row_ids_as_a_run_folder_or_a_csv_writes_them(tmp_path: Path) -> None:
    from lossval.io import read_row_id_list

    quarantine = pd.DataFrame({"row_id": ["007", "12", "a1"], "x": [1.0, 2.0, 3.0], "lossval_value": [0.1, 0.2, 0.3]})
    quarantine.to_parquet(tmp_path / "q.parquet")
    assert read_row_id_list(tmp_path / "q.parquet") == ["007", "12", "a1"]
    (tmp_path / "keep.csv").write_text("row_id,note\n007,checked\n12,\n007,twice\n")
    assert read_row_id_list(tmp_path / "keep.csv") == ["007", "12"]  # text as written, each once
    # Without row_id, the config's id column; numbers stored as floats read as a CSV writes them.
    pd.DataFrame({"application_id": [7.0, 12.0]}).to_parquet(tmp_path / "ids.parquet")
    assert read_row_id_list(tmp_path / "ids.parquet", id_column="application_id") == ["7", "12"]


def test_a_keep_list_cut_from_a_quarantine_is_read_without_hints_about_its_data_columns(tmp_path: Path) -> None:
    from lossval.io import read_row_id_list

    # A reviewer's CSV copy of quarantine.parquet: its zip codes are the data's (declared categorical there); only the
    # ids are read, so no "declare the column categorical" warning about a column the list does not use.
    (tmp_path / "reviewed.csv").write_text("row_id,zip,label\n0,02139,yes\n24,10001,no\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_row_id_list(tmp_path / "reviewed.csv") == ["0", "24"]
    with pytest.warns(UserWarning, match="leading zeros"):  # reading the file as data still says it
        read_table(tmp_path / "reviewed.csv")


def test_a_keep_list_without_ids_is_refused_naming_the_file_and_what_it_needs(tmp_path: Path) -> None:
    from lossval.io import read_row_id_list

    (tmp_path / "keep.csv").write_text("id\n1\n")
    with pytest.raises(InputError, match=r"keep\.csv.*needs a 'row_id' column or 'key' \(the id column\)"):
        read_row_id_list(tmp_path / "keep.csv", id_column="key")
    (tmp_path / "blank.csv").write_text("row_id,note\n1,a\n,b\n")
    with pytest.raises(InputError, match=r"blank\.csv.*1 empty id\(s\), first at row 1"):
        read_row_id_list(tmp_path / "blank.csv")



def test_a_nul_byte_as_the_very_first_character_is_refused(tmp_path: Path) -> None:
    # A UTF-16 (big-endian, no BOM) export starts with a NUL byte: refused at character 0 too.
    path = tmp_path / "d.csv"
    path.write_bytes("a,b\n1,2\n".encode("utf-16-be"))
    with pytest.raises(InputError, match=r"not a text CSV file \(a NUL byte at character 0\)"):
        read_table(path)


def test_a_file_with_exactly_max_columns_is_read_and_one_more_is_refused(tmp_path: Path) -> None:
    # The limit is the most columns lossval reads, not the first number it refuses.
    (tmp_path / "three.csv").write_text("a,b,c\n1,2,3\n")
    pd.DataFrame({"a": [1], "b": [2], "c": [3], "d": [4]}).to_parquet(tmp_path / "four.parquet")
    assert read_table(tmp_path / "three.csv", max_columns=3).columns.tolist() == ["a", "b", "c"]
    with pytest.raises(InputError, match=r"has 4 columns; lossval reads at most 3\."):
        read_table(tmp_path / "four.parquet", max_columns=3)


def test_na_stays_missing_in_a_column_exactly_at_the_numeric_share(tmp_path: Path) -> None:
    # 9 numbers and 1 typo are 0.9, the encoder's share: the encoder treats the column as numeric, so its NA must be
    # missing, not a text category 'NA'.
    from lossval.encoding import _NUMERIC_SHARE

    assert _NUMERIC_SHARE == 0.9
    path = tmp_path / "d.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(9)) + "oops,9\nNA,10\n")
    x = read_table(path)["x"]
    assert x.iloc[:10].tolist() == [*(str(i) for i in range(9)), "oops"] and pd.isna(x.iloc[10])


def test_numbers_hash_alike_as_int_and_float_at_and_beyond_two_to_the_53(tmp_path: Path) -> None:
    # A column that turned float (one blank in a later delivery) must give its rows the content ids they had as int,
    # at 2**53 (still exact in float64) and beyond it (hashed as the int they equal) too.
    from lossval.io import row_hashes

    for value in (1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 60):
        as_int = pd.DataFrame({"a": np.array([value, 3], dtype="int64"), "b": ["x", "y"]})
        as_float = as_int.assign(a=as_int["a"].astype("float64"))
        assert (row_hashes(as_int) == row_hashes(as_float)).all(), value
    assert len(row_hashes(pd.DataFrame(index=range(3)))) == 3  # no columns: still one hash per row


def test_a_uint64_value_beyond_int64_changes_no_other_rows_content_id() -> None:
    # One value >= 2**63 made the whole column hash as stored, so every other row's content id changed with it.
    from lossval.io import row_hashes

    other = np.array([5, 2 ** 60 + 1], dtype="int64")
    stored = np.array([5, 2 ** 60 + 1, 2 ** 63], dtype="uint64")
    for column in (stored, pd.array(stored, "UInt64")):  # (pd.array of Python ints rounds 2**60 + 1 through float)
        with_huge = row_hashes(pd.DataFrame({"a": column}))
        assert (with_huge[:2] == row_hashes(pd.DataFrame({"a": other}))).all()
        assert with_huge[2] != with_huge[0]
    with_na = row_hashes(pd.DataFrame({"a": pd.arrays.IntegerArray(np.array([5, 0, 2 ** 64 - 1], "uint64"),
                                                                   np.array([False, True, False]))}))
    assert with_na[1] == row_hashes(pd.DataFrame({"a": [np.nan]}))[0]


def test_a_blank_in_a_numeric_category_column_changes_no_other_rows_content_id() -> None:
    # A missing value turned the categories float: 2**60 and 2**60 + 1 hashed alike, and a blank in one row changed
    # the content ids of the others (a bool category's True hashed as text, not as 1).
    from lossval.io import row_hashes

    for values in ([2 ** 60, 2 ** 60 + 1], [True, False], np.array([5, 2 ** 63 + 1], "uint64")):
        whole = row_hashes(pd.DataFrame({"a": pd.Categorical(values)}))
        column = pd.Series(pd.Categorical([*values, values[0]]))
        blank = row_hashes(pd.DataFrame({"a": column.where(column.index < 2)}))
        assert (blank[:2] == whole).all() and whole[0] != whole[1], values
        assert blank[2] == row_hashes(pd.DataFrame({"a": [np.nan]}))[0]


def test_a_float_id_of_exactly_two_to_the_53_reads_as_the_whole_number(tmp_path: Path) -> None:
    # 2**53 is exact in float64: its id is '9007199254740992' as from an int column, not '9.007199254740992e+15';
    # a float beyond it is no exact whole number and keeps its float text.
    ids = assign_row_ids(pd.DataFrame({"id": [float(2 ** 53), float(2 ** 53 + 2)]}), id_column="id")
    assert ids.tolist() == [str(2 ** 53), str(float(2 ** 53 + 2))]
    assert assign_row_ids(pd.DataFrame({"id": [2 ** 53]}), id_column="id").tolist() == [str(2 ** 53)]


def test_a_declared_text_column_stored_as_int_in_every_parquet_file_keeps_its_type(tmp_path: Path) -> None:
    # Ids become text only when the files disagree (CSV text, parquet int); a folder of parquet files keeps the
    # stored int64, as the docs say.
    pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}).to_parquet(tmp_path / "1.parquet")
    pd.DataFrame({"id": [3], "x": [2.5]}).to_parquet(tmp_path / "2.parquet")
    df = read_table(tmp_path, text_columns=["id"])
    assert df["id"].dtype == np.int64 and df["id"].tolist() == [1, 2, 3]
    (tmp_path / "3.csv").write_text("id,x\n007,3.5\n")
    assert read_table(tmp_path, text_columns=["id"])["id"].tolist() == ["1", "2", "3", "007"]

@pytest.mark.parametrize("name", ["late.csv", "late.csv.gz"])
def test_a_row_the_python_csv_engine_cannot_tokenize_is_not_lost_after_a_later_trailing_comma(tmp_path, name):
    # A later row's trailing comma used to send the file through pandas' python engine, which skipped `5,"x"y`
    # (text after a closing quote) without a word: the row was missing from the snapshot and the valuation.
    text = 'a,b\n1,2\n3,4,\n5,"x"y\n7,8\n'
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert read_table(path).to_dict("list") == {"a": [1, 3, 5, 7], "b": ["2", "4", "xy", "8"]}


BIG = 2 ** 60  # 2**60 and 2**60 + 1 are one float64


def _accounts_with_a_gap(tmp_path: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"acct": pa.array([BIG, BIG + 1, None, 7], pa.int64()), "x": [1.0, 1.0, 2.0, 3.0]}),
                   tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text(f"acct,x\n{BIG},1.0\n{BIG + 1},1.0\n,2.0\n7,3.0\n")
    return [tmp_path / "d.parquet", tmp_path / "d.csv"]


def test_an_int_column_with_a_gap_keeps_whole_numbers_beyond_two_to_the_53(tmp_path: Path) -> None:
    # pandas reads an int column with a missing value as float64: 2**60 and 2**60 + 1 became one number, so two
    # different rows were one row and its copy ('#2'), and two accounts one id.
    from lossval.encoding import TabularEncoder

    for path in _accounts_with_a_gap(tmp_path):
        df = read_table(path)
        assert df["acct"].dtype == "Int64", path.name
        assert [None if pd.isna(v) else v for v in df["acct"]] == [BIG, BIG + 1, None, 7]
        ids = assign_row_ids(df)
        assert ids.nunique() == 4 and not ids.str.contains("#").any()
        as_float = df.assign(acct=df["acct"].astype("float64"))  # the other rows keep the content ids they had
        assert ids[[0, 2, 3]].tolist() == assign_row_ids(as_float)[[0, 2, 3]].tolist()
        assert assign_row_ids(df.dropna(), id_column="acct").tolist() == [str(BIG), str(BIG + 1), "7"]
        write_parquet(df, tmp_path / "snapshot.parquet")  # the snapshot keeps them, and the rows their ids
        back = read_table(tmp_path / "snapshot.parquet")
        assert back.equals(df) and assign_row_ids(back).tolist() == ids.tolist()
        encoder = TabularEncoder(target="x").fit(df.dropna())  # still a number feature, standardised in float64
        assert [c["kind"] for c in encoder.to_dict()["fitted"]["columns"]] == ["numeric"]
        assert np.isfinite(encoder.transform(df.dropna())).all()


def test_columns_that_float64_holds_exactly_keep_pandas_reading(tmp_path: Path) -> None:
    # Only a column that would lose a digit changes type: the others keep float64, their values and the snapshot hash.
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"small": pa.array([2 ** 53, None, 7], pa.int64()), "exact": pa.array([BIG, None, 7], pa.int64()),
                      "floats": pa.array([float(BIG), None, 7.0])})
    pq.write_table(table, tmp_path / "d.parquet")
    df = read_table(tmp_path / "d.parquet")
    assert (df.dtypes == np.float64).all()
    assert frame_fingerprint(df) == frame_fingerprint(pd.read_parquet(tmp_path / "d.parquet"))
    (tmp_path / "d.csv").write_text(f"small,exact,sci\n{2 ** 53},{BIG},1e18\n,,\n7,7,{BIG + 1}\n")
    df = read_table(tmp_path / "d.csv")
    assert (df.dtypes == np.float64).all()
    assert frame_fingerprint(df) == frame_fingerprint(pd.read_csv(tmp_path / "d.csv"))


def test_a_csv_float_column_without_a_gap_is_not_read_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Amounts of 1e20 (floats as written, no gap: not integers pandas rounded) were read a second time as text,
    # value by value: 0.73 s -> 1.77 s on a million rows. Only a column with a gap can be rounded integers.
    (tmp_path / "d.csv").write_text("amount,x\n" + "".join(f"{i}e20,{i}\n" for i in range(1, 200)))
    reads: list[object] = []
    original = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: reads.append(k.get("usecols")) or original(*a, **k))
    df = read_table(tmp_path / "d.csv")
    assert df["amount"].dtype == np.float64 and df["amount"].iloc[0] == 1e20
    assert not any(cols is not None and 0 in list(cols) for cols in reads), reads


def test_a_folder_keeps_whole_numbers_beyond_two_to_the_53_when_another_file_has_a_gap(tmp_path: Path) -> None:
    # One file's int64 column (no gap) and another's float64 one (a gap): concatenated they were float64, rounded.
    pd.DataFrame({"acct": [BIG, BIG + 1]}).to_parquet(tmp_path / "1.parquet")
    pd.DataFrame({"acct": [None, 7.0]}).to_parquet(tmp_path / "2.parquet")
    (tmp_path / "3.csv").write_text("acct\n8\n")
    df = read_table(tmp_path)
    assert df["acct"].dtype == "Int64" and df["acct"].tolist()[:2] == [BIG, BIG + 1]
    assert assign_row_ids(df).nunique() == 5
    (tmp_path / "3.csv").write_text("acct\n0.5\n8\n")  # a fraction: the column is one of floats, as pandas reads it
    assert read_table(tmp_path)["acct"].dtype == np.float64


def test_an_id_column_with_a_gap_and_large_ids_is_refused_for_the_gap_not_as_repeats(tmp_path: Path) -> None:
    # Read as float64, 2**60 and 2**60 + 1 were one id: "duplicate ids" named the wrong fault; and a CSV beside the
    # parquet file turns its ids into text, which a nullable int column could not take.
    path = _accounts_with_a_gap(tmp_path)[0]
    with pytest.raises(InputError, match="'acct' has 1 empty value"):
        assign_row_ids(read_table(path, text_columns=["acct"]), id_column="acct")
    folder = tmp_path / "folder"
    folder.mkdir()
    path.rename(folder / "1.parquet")
    (folder / "2.csv").write_text("acct,x\n007,4.0\n")
    df = read_table(folder, text_columns=["acct"])
    assert df["acct"].tolist()[:2] == [str(BIG), str(BIG + 1)] and pd.isna(df["acct"][2]) and df["acct"][4] == "007"


def test_a_folder_column_of_large_ints_beside_floats_it_cannot_take_stays_float64(tmp_path: Path) -> None:
    # A file's gap turned its large ints nullable Int64; beside another file's infinity the folder's read failed
    # with "OverflowError: cannot convert float infinity to integer" (a bug message), and beside a fraction the column
    # became pandas' nullable Float64 (NA for NaN). Both are float64 as before 2**53 was kept exact.
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"acct": pa.array([BIG + 1, None], pa.int64())}), tmp_path / "1.parquet")
    for other in ("inf", "0.5", "-inf"):
        (tmp_path / "2.csv").write_text(f"acct\n{other}\n8\n")
        df = read_table(tmp_path)
        assert df["acct"].dtype == np.float64, other
        assert df["acct"][0] == float(BIG) and np.isnan(df["acct"][1]) and df["acct"][3] == 8.0


def test_a_folder_of_signed_and_unsigned_large_ints_is_not_nullable_float64(tmp_path: Path) -> None:
    # uint64 beyond int64 with a gap (nullable UInt64) beside another file's negative ints concatenated to pandas'
    # nullable Float64; float64 as before, where no one integer type holds both; Int64 where one does.
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": pa.array([2 ** 63 + 5, None], pa.uint64())}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": pa.array([-1, 3], pa.int64())}), tmp_path / "2.parquet")
    assert read_table(tmp_path)["a"].dtype == np.float64
    pq.write_table(pa.table({"a": pa.array([BIG + 1, None], pa.int64())}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": pa.array([3], pa.uint64())}), tmp_path / "2.parquet")
    df = read_table(tmp_path)
    assert df["a"].dtype == "Int64" and df["a"][0] == BIG + 1
