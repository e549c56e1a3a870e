"""Reading tables with clear errors, stable row ids, and atomic writes.

Input files are only ever read. Every output is written to a temporary file in the target
folder and renamed into place, so a reader never sees a half-written file and a killed run
leaves at most a ``.tmp-*`` file behind, never a truncated output. Temporary names carry the
writer's host and process id (``.tmp-<name>~<host>~<pid>~<random>``), so
:func:`sweep_orphaned_temp_files` can remove the ones whose writer is gone.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import re
import stat
import warnings
import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossval._files import (  # noqa: F401 (re-exported: lossval.io is where callers import them)
    DATA_SUFFIXES,
    PAUSE_ENV,
    data_stem,
    data_suffix,
    is_csv_file,
    is_gzip_csv,
    read_as_data_of,
    open_csv_text,
    _host_tag,
    pid_namespace,
    atomic_write,
    broken_link,
    leads_to_nothing,
    fsync_dir,
    make_dirs,
    check_writable_folder,
    json_default,
    make_temp,
    pause_point,
    process_alive,
    read_json,
    sweep_orphaned_temp_files,
    write_json,
)
from lossval.errors import InputError, WorkspaceError

__all__ = [
    "missing_or_blank",
    "DATA_SUFFIXES",
    "data_stem",
    "data_suffix",
    "is_csv_file",
    "MAX_COLUMNS",
    "read_table",
    "text_columns_of",
    "numeric_features",
    "list_data_files",
    "atomic_write",
    "make_temp",
    "process_alive",
    "sweep_orphaned_temp_files",
    "write_parquet",
    "write_json",
    "json_default",
    "read_json",
    "file_sha256",
    "data_sha256",
    "frame_fingerprint",
    "nested_column",
    "assign_row_ids",
    "read_row_id_list",
    "pause_point",
    "yaml_name",
    "shell_name",
]

_SHOW_FILES = 5  # how many entries of a folder a message names


def _first_few(texts: list[str]) -> str:
    """The first :data:`_SHOW_FILES` of ``texts``, comma-separated, ``...`` after them when there are more."""
    return ", ".join(texts[:_SHOW_FILES]) + (", ..." if len(texts) > _SHOW_FILES else "")

MAX_COLUMNS = 10_000
"""Widest table :func:`read_table` accepts; wider inputs are refused with a clear error, not a slow crawl."""


def list_data_files(path: str | os.PathLike[str], *, key: str | None = None,
                    set_aside: Sequence[str | os.PathLike[str] | None] = ()) -> list[Path]:
    """The data files a path stands for: the file itself, or a folder's parquet/CSV files, sorted.

    Only files directly in a folder are read. A folder in it named like a data file (a Spark or Dask
    ``part.parquet/`` of part files) is refused, as leaving it out would read fewer rows than the folder
    holds, unless it is one of ``set_aside``.

    Args:
        key: The config key that names the path, for the message (``validation.path``).
        set_aside: Paths of folders inside the folder that are not its data: the config's ``validation.path``
            and ``test_path`` (:meth:`lossval.config.PipelineConfig.set_aside_paths`), or ``lossval value``'s
            ``--validation``. Compared as written (made absolute) and resolved; ``None`` entries are ignored.

    Raises:
        InputError: the path does not exist, has an unsupported suffix, the folder holds no data files or a
            folder named like one that is not set aside, or the system refuses to look at it (no permission on a
            folder above it, a disk error).
    """
    p = Path(path)
    try:
        return _list_data_files(p, key=key, set_aside=set_aside)
    except OSError as exc:  # exists() and is_dir() say False only for a missing path; EACCES, EIO... raise
        raise _unreadable_file(exc, p) from None


def _is_set_aside(folder: Path, set_aside: Sequence[str | os.PathLike[str] | None]) -> bool:
    """Whether ``folder`` is one of ``set_aside``: the same path as written (made absolute), or resolved."""
    paths = [os.fspath(s) for s in set_aside if s is not None and "://" not in os.fspath(s)]
    return (any(os.path.abspath(s) == os.path.abspath(folder) for s in paths)  # realpath: a loop does not raise
            or any(os.path.realpath(s) == os.path.realpath(folder) for s in paths))


def _normalised(p: Path) -> str:
    """`` (that is /a/c)`` for a path written with ``..`` (``/a/b/../c``), else ``""``."""
    return f" (that is {os.path.normpath(p.absolute())})" if ".." in p.parts else ""


def _list_data_files(p: Path, *, key: str | None, set_aside: Sequence[str | os.PathLike[str] | None]) -> list[Path]:
    if not p.exists():
        named = f" (the config's {key})" if key else ""
        link = broken_link(p)
        if link is not None:  # the link is there; what it points at is not ("no such file" sent users to the link)
            leads = leads_to_nothing(link)
            if link == p:
                raise InputError(f"is a symbolic link{named}{_normalised(p)}{leads} data file or folder, or give its "
                                 "path instead.", source=str(p))
            raise InputError(f"cannot be read{named}: the folder {link}{_normalised(link)} on its path is a symbolic "
                             f"link{leads} folder that holds the data, or give the path without the link.",
                             source=str(p))
        where = "" if p.is_absolute() else f" (a relative path is taken from the current directory, {Path.cwd()})"
        raise InputError(f"no such file or directory{named}; check the path{where}.", source=str(p))
    if p.is_dir():
        named = [f for f in p.iterdir() if data_suffix(f.name) and not f.name.startswith(".")]
        # A FIFO or socket named like data was left out without a word, and the folder read as less than it holds
        # (given as the path itself, it is refused): refused here too, as an empty or unreadable file of it would be.
        odd = sorted(f.name for f in named if f.is_fifo() or f.is_socket() or f.is_char_device() or f.is_block_device())
        if odd:
            one = len(odd) == 1
            raise InputError(f"{len(odd)} {'entry' if one else 'entries'} named like data files "
                             f"({_first_few([repr(name) for name in odd])}) "
                             f"{'is not a regular file' if one else 'are not regular files'} (a FIFO, socket or "
                             "device), whose rows cannot be read; move them out of the folder, or write the data into "
                             "regular files.", source=str(p))
        # Likewise a symbolic link to nothing (its target moved or deleted, or a loop of links): left out, the folder
        # read as fewer rows. A link to a regular file is read as that file.
        broken = sorted((f for f in named if f.is_symlink() and not f.exists()), key=lambda f: f.name)
        if broken:
            one = len(broken) == 1
            shown = _first_few([f"{f.name!r} -> {os.readlink(f)!r}" for f in broken])
            raise InputError(f"{len(broken)} {'entry' if one else 'entries'} named like data files "
                             f"{'is a symbolic link' if one else 'are symbolic links'} to nothing ({shown}: the "
                             "target does not exist or the links form a loop), whose rows cannot be read; point the "
                             "link at the data file, or remove it from the folder.", source=str(p))
        # A folder named like a data file (Spark and Dask write b.csv/ or part.parquet/ of part files) was left out
        # without a word, and the data read as fewer rows than the user thought it held. The config's validation or
        # test folder may sit here: it is set aside, not read as training data.
        folders = sorted(f.name for f in named if f.is_dir() and not _is_set_aside(f, set_aside))
        if folders:
            one = len(folders) == 1
            raise InputError(f"{len(folders)} {'folder' if one else 'folders'} named like "
                             f"{'a data file' if one else 'data files'} ({_first_few([repr(n) for n in folders])}) "
                             f"{'is' if one else 'are'} in the data folder; lossval reads only the files directly in "
                             "a data folder, not the part files of a folder in it. Give that folder's path as the data "
                             "to read its part files, move its files up into the data folder, or rename it (without "
                             "a data suffix) to leave it out; a validation or test folder is left out when named as "
                             "the config's validation.path or test_path (or lossval value's --validation).",
                             source=str(p))
        files = sorted(f for f in named if f.is_file())
        if not files:
            raise InputError(f"directory holds no data files (looked for {', '.join(DATA_SUFFIXES)}).", source=str(p))
        return files
    if data_suffix(p.name) is None:
        raise InputError(f"unsupported file type {p.suffix!r}; give a parquet (.parquet/.pq) or CSV (.csv, or "
                         ".csv.gz compressed with gzip) file.", source=str(p))
    return [p]


def _header(path: Path) -> list[str]:
    """Column names from the file's header or schema alone (cheap even for a very wide file)."""
    if is_csv_file(path):
        with open_csv_text(path) as fh:
            # pandas skips blank lines before the header; so must the duplicate-name check
            return next((row for row in csv.reader(fh) if row and not (len(row) == 1 and not row[0].strip())), [])
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def require_column(columns: Sequence[Any], name: str, *, key: str, source: str | None = None) -> None:
    """Refuse a configured column that the data does not have, naming the config key and the nearest name.

    Raises:
        InputError: ``name`` is not among ``columns``.
    """
    names = [str(c) for c in columns]
    if name in names:
        return
    raise InputError(f"column {name!r} (config key '{key}') not found" + missing_column_hint(name, names), source=source)


def closest_name(name: str, names: Sequence[str]) -> str | None:
    """The column a missing ``name`` was likely meant as: the same name in another case first, then the one
    column it abbreviates (``app_id`` for ``application_id``), else the closest by spelling (difflib ratio at
    least 0.75, as for config keys; at its default 0.6, ``nope`` was "did you mean 'income'?"); None when
    nothing is close."""
    import difflib

    same = unicode_form(name).casefold()
    near = [n for n in names if unicode_form(n).casefold() == same][:1]
    if not near:
        short = [n for n in names if _abbreviates(name, n)]
        near = short if len(short) == 1 else difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    return near[0] if near else None


def _abbreviates(short: str, name: str) -> bool:
    """Whether each word of ``short`` (split at ``_``, ``-``, spaces and dots) starts a word of ``name``, in order,
    with at least one word shortened: ``app_id`` -> ``application_id``."""
    def words(text: str) -> list[str]:
        return [w for w in re.split(r"[\W_]+", unicode_form(text).casefold()) if w]

    mine, theirs = words(short), words(name)
    if not mine or mine == theirs:
        return False
    at = 0
    for word in mine:
        while at < len(theirs) and not theirs[at].startswith(word):
            at += 1
        if at == len(theirs):
            return False
        at += 1
    return True


def missing_column_hint(name: str, names: Sequence[str]) -> str:
    """The tail of a missing-column error: "; did you mean 'label'? Columns are [...]." (:func:`closest_name`),
    or ". Columns are [...]." when nothing is close."""
    twin = unicode_twin(name, names)
    if twin is not None:
        return (f"; {twin!r} looks the same but is written with other Unicode characters (an accent as a separate "
                "mark, NFD, against one precomposed character, NFC): write the name as the data file does, or "
                "save the file with NFC names.")
    near = closest_name(name, names)
    return ((f"; did you mean {near!r}?" if near else ".") + f" Columns are {list(names[:10])}"
            + (f" and {len(names) - 10} more." if len(names) > 10 else "."))


def unicode_form(name: str) -> str:
    """``name`` in Unicode's NFC form: names that print the same compare equal."""
    import unicodedata

    return unicodedata.normalize("NFC", name)


def unicode_twin(name: str, names: Sequence[str]) -> str | None:
    """The one of ``names`` that looks like ``name`` but is written with other Unicode characters (NFD vs NFC)."""
    form = unicode_form(name)
    return next((n for n in names if n != name and unicode_form(n) == form), None)


def data_columns(path: str | os.PathLike[str], *,
                 set_aside: Sequence[str | os.PathLike[str] | None] = ()) -> list[str] | None:
    """The columns of a data file or folder (its first file's), from the header alone; None when unreadable.

    Also None for a header of one name or none (an empty file, or a CSV separated by ';'):
    reading the file for real names that problem, where "column not found" would not. ``set_aside``: as for
    :func:`list_data_files`.
    """
    try:
        columns = [str(c) for c in _header(list_data_files(path, set_aside=set_aside)[0])]
    except Exception:  # noqa: BLE001 (missing, unreadable, not UTF-8, a corrupt parquet footer in pyarrow's
        return None  # several types: reading it for real reports the problem properly)
    return columns if len(columns) > 1 else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _refused_by_system(exc: OSError) -> bool:
    """Whether the system refused to open or read the file (permission, a folder, a disk error), as opposed to a
    library's OSError about the bytes it read (pyarrow's "Couldn't deserialize thrift", gzip's BadGzipFile)."""
    return exc.errno is not None or isinstance(exc, (PermissionError, FileNotFoundError, IsADirectoryError,
                                                     NotADirectoryError))


def _system_said(exc: OSError) -> str:
    """The system's reason for refusing a file, in its own words (``Permission denied``, ``Input/output error``)."""
    return os.strerror(exc.errno) if exc.errno else (exc.strerror or _first_line(exc))


def _unreadable_file(exc: OSError, path: str | os.PathLike[str]) -> InputError:
    """The error for an input file (or folder) the system would not let lossval read, naming it and what to do.

    Args:
        exc: The system's refusal (``PermissionError``, ``IsADirectoryError``, an ``EIO``...).
        path: The input being read; the path the system named is added when it is another (a folder above it).
    """
    said = _system_said(exc)
    if exc.filename and Path(os.fsdecode(exc.filename)) != Path(path):
        said += f": {os.fsdecode(exc.filename)}"
    if isinstance(exc, PermissionError):
        advice = ("let the user lossval runs as read it (and enter each folder above it): check its permissions and "
                  "owner, then run again")
    elif isinstance(exc, FileNotFoundError):
        advice = "it was moved or deleted while lossval read it; deliver it again, then run again"
    elif isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        advice = "a folder is where a file was expected, or a file where a folder was; give the data file's path"
    else:
        advice = ("the disk or network share that holds it failed to read it; check it (or copy the file to another "
                  "disk), then run again")
    return InputError(f"cannot be read ({said}); {advice}.", source=str(path))


def _read_one(path: Path, *, max_columns: int, text_columns: Sequence[str] = (),
              numeric_columns: Sequence[str] = ()) -> pd.DataFrame:
    try:
        found = path.stat()
    except OSError as exc:
        raise _unreadable_file(exc, path) from None
    if not stat.S_ISREG(found.st_mode):  # a FIFO was "empty (0 bytes)", and reading one waits for a writer forever
        raise InputError("is not a regular file (a FIFO, socket or device); give the path of a parquet or CSV file, "
                         "or copy the data into one.", source=str(path))
    if found.st_size == 0:
        raise InputError("file is empty (0 bytes).", source=str(path))
    is_csv = is_csv_file(path)
    try:
        if is_csv:  # a binary file named .csv (zip, xlsx, parquet) can be valid UTF-8 up to its first NUL byte
            with open_csv_text(path) as fh:
                nul = fh.read(1 << 16).find("\0")
            if nul >= 0:
                raise InputError(f"not a text CSV file (a NUL byte at character {nul}); is it another format, such "
                                 "as a spreadsheet, zip or parquet file? Export it as CSV.", source=str(path))
        # The header first: a huge or ambiguous header is refused before reading any rows.
        header = _header(path)
        if len(header) > max_columns:
            raise InputError(
                f"has {len(header)} columns; lossval reads at most {max_columns}. Select the feature columns "
                "you need into a narrower file.",
                source=str(path),
            )
        # (empty names are not repeats: pandas names them 'Unnamed: N', and a warning below says so)
        dup = sorted(name for name, n in Counter(header).items() if n > 1 and name != "")
        if dup:  # pandas would silently rename a repeated CSV column to 'name.1'
            raise InputError(f"duplicate column names {dup[:5]}; rename them.", source=str(path))
        text = {c: str for c in text_columns if c in header}
        df = (_read_csv(path, header, dtype=text, numeric=numeric_columns) if is_csv
              else _big_ints_as_stored(_restore_index(pd.read_parquet(path), path), path))
    except InputError:
        raise
    except (pd.errors.EmptyDataError, StopIteration):
        raise InputError("file has no columns (empty CSV).", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a UTF-8 text file (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start}); "
                         "save the CSV as UTF-8, or is it another format?", source=str(path)) from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise InputError(f"not a readable CSV file ({_first_line(exc)}).", source=str(path)) from None
    except MemoryError:
        raise InputError("file is too large to read into memory.", source=str(path)) from None
    except Exception as exc:  # pyarrow raises several types for corrupt/truncated parquet
        if isinstance(exc, OSError) and _refused_by_system(exc):  # not the bytes: the file could not be read
            raise _unreadable_file(exc, path) from None
        if is_gzip_csv(path) and isinstance(exc, (EOFError, OSError, zlib.error)):
            # gzip.BadGzipFile is an OSError; a cut-off file ends in EOFError; a corrupt stream in zlib.error.
            raise InputError(f"not a readable gzip file ({_first_line(exc)}); is it truncated, or not gzip-compressed? "
                             "Recompress it with gzip or give the plain CSV.", source=str(path)) from None
        if is_csv:
            raise
        reason = ("no parquet footer" if "magic bytes" in str(exc) else _first_line(exc))
        raise InputError(f"not a readable parquet file ({reason}); is it truncated or another format?",
                         source=str(path)) from None
    if len(df.columns) == 0:
        raise InputError("file has no columns.", source=str(path))
    if len(df) == 0:
        raise InputError(f"file has a header but no rows ({len(df.columns)} columns).", source=str(path))
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise InputError(f"duplicate column names {dup[:5]}; rename them.", source=str(path))
    if is_csv and len(df.columns) == 1:
        _refuse_other_separator(str(df.columns[0]), path)
    if is_csv and not is_gzip_csv(path):  # a cut-off gzip stream is refused above
        try:
            _refuse_cut_off(path, len(df.columns))
        except OSError as exc:  # it opens the file again
            raise _unreadable_file(exc, path) from None
    unnamed = [c for c in df.columns if is_csv and re.fullmatch(r"Unnamed: \d+", str(c))]
    if unnamed:
        # A nameless first column is how pandas saves a row index; a nameless empty last one, a
        # header line that ends in a comma.
        why = ("as a row index saved with the data has" if unnamed[0] == df.columns[0] else
               "as when the header line ends in a comma" if unnamed == [df.columns[-1]] and df[unnamed[0]].isna().all()
               else "the header has empty names there")
        warnings.warn(f"{path}: column(s) {unnamed[:5]} have no name in the header, {why}; they are used as features "
                      "unless you exclude them or fix the header (an empty column is dropped as constant)",
                      UserWarning, stacklevel=3)
    return df


def _refuse_cut_off(path: Path, n_header: int) -> None:
    """Refuse a CSV that stops inside its last row: fewer values than the header and no line break after them.

    pandas fills the missing values of a short row with NaN, so a copy that stopped mid-row, or a file read while
    still being written, was cleaned with a half row (refused only when the target happened to be the missing part).
    Only files that do not end in a line break are parsed again, to find their last row.
    """
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) in (b"\n", b"\r"):
            return
    last, line = None, 0
    with open_csv_text(path) as fh:
        reader = csv.reader(fh)
        for row in reader:
            if row:
                last, line = row, reader.line_num
    if last is not None and line > 1 and len(last) < n_header:
        raise InputError(f"the last line ({line}) has {len(last)} of the header's {n_header} values and no line break "
                         "after it: the file looks cut off (a copy that stopped early, or a file still being written). "
                         "Deliver it complete; if that row really ends there, write its empty values as commas.",
                         source=str(path))


def _refuse_other_separator(name: str, path: Path) -> None:
    """A CSV whose header is one name holding ';', a tab or '|' is separated by that: refused, saying so."""
    sep = next((said for ch, said in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")) if ch in name), None)
    if sep:
        raise InputError(f"has a single column named {name[:60]!r}: is it separated by {sep}? "
                         "lossval reads comma-separated CSV; convert the file or save it as parquet.",
                         source=str(path))


def _read_csv(path: Path, header: list[str], *, dtype: dict[str, Any] | None = None,
              numeric: Sequence[str] = ()) -> pd.DataFrame:
    """``pd.read_csv`` that never shifts columns and keeps the text of text columns as written.

    By default pandas reads a file whose first rows have one field more than the header (a
    trailing comma) by taking the first field as a row index: every value lands one column to
    the left. ``index_col=False`` keeps the columns where the header puts them; a row with a
    non-empty value beyond the header is refused, naming its line. Columns given in ``dtype``
    (read as text) and columns that hold text are read as :func:`_text_as_written` says; ``numeric`` columns (declared
    numbers) keep pandas' reading.
    """
    df, options = _read_csv_in_place(path, header, dtype=dtype)
    df = _text_as_written(path, df, declared=list(dtype or ()), numeric=numeric, options=options)
    return _big_ints_as_written(path, df, options=options)


def _read_csv_in_place(path: Path, header: list[str], *,
                       dtype: dict[str, Any] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame of :func:`_read_csv` as pandas parses it, and the read options that gave it."""
    n_header = len(header)
    overlong_later = False  # pandas warns when the first data row is too long, and fails when a later one is
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(path, index_col=False, dtype=dtype), {}
        except pd.errors.ParserWarning:
            pass
        except pd.errors.ParserError:
            try:
                overlong_later = _first_overlong_line(path, n_header, empty_too=True) is not None
            except csv.Error:
                overlong_later = False
            if not overlong_later:
                raise  # another fault (an unclosed quote...): the caller names the file and pandas' words
    line = _first_overlong_line(path, n_header)
    if line is not None:
        if n_header == 1:  # 'a;b;y' then '1,5;2;x': a decimal comma looks like a second value
            _refuse_other_separator(str(header[0]), path)
        raise InputError(f"line {line} has more values than the header's {n_header} column names; fix that row "
                         "(a stray comma or an unquoted comma inside a value?) or add the missing column name.",
                         source=str(path))
    with warnings.catch_warnings():  # only empty fields past the header (trailing commas): nothing is lost
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        # told the columns to read, the fast reader leaves a later row's extra (empty) fields out; the python engine
        # would silently skip any row it cannot tokenize (5,"x"y,), and that row would be missing from the data
        options: dict[str, Any] = {"usecols": list(range(n_header))} if overlong_later else {}
        return pd.read_csv(path, index_col=False, dtype=dtype, **options), options


def _text_as_written(path: Path, df: pd.DataFrame, *, declared: Sequence[str], numeric: Sequence[str] = (),
                     options: dict[str, Any]) -> pd.DataFrame:
    """Text columns of a CSV whose only missing values are its empty fields.

    pandas reads ``NA``, ``N/A``, ``null``, ``None``, ``nan`` (and a dozen more) as missing in every column: a
    region ``NA`` (North America) became a missing value in the snapshot, the quarantine and the row ids, and the
    same category as a blank. Here the ``declared`` columns (the id column, categorical ones) and every other
    column that holds text (not true/false) keep such words as text. A column of numbers with those markers is
    read as numbers by pandas and left so; one that holds text because a few of its values are typos (at least
    the encoder's numeric share of its values are numbers) keeps them missing too, so that it still reads as a
    numeric column (and its typos are named), and so does a column declared ``numeric`` (``features.numeric``,
    ``--numeric``), whatever share of it is text: its typos are named and counted without the NA words. Only columns
    with a missing value are read a second time.
    """
    redo = [i for i, col in enumerate(df.columns)
            if df[col].isna().any() and (col in declared or (col not in numeric and _text_column(df[col])))]
    if not redo:
        return df
    with warnings.catch_warnings():  # the first read settled the file's shape (trailing commas): nothing new here
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        raw = pd.read_csv(path, index_col=False, dtype=str, keep_default_na=False, na_values=[""],
                          **{**options, "usecols": redo})
    df = df.copy()
    for i in redo:
        df.isetitem(i, raw[df.columns[i]])  # the same header read again: the same names
    return df


_WHOLE_NUMBER_TEXT = r"\s*[+-]?\d+\s*"


def _beyond_float(series: pd.Series) -> bool:
    """A float64 column holding a number of 2**53 or more: if it was read from integers (with a gap, which pandas
    cannot hold in int64), float64 may have rounded them, so that 2**60 and 2**60 + 1 read as one value."""
    if series.dtype != np.float64:
        return False
    values = series.to_numpy()
    return bool((np.abs(values[np.isfinite(values)]) >= _EXACT_FLOAT).any())


def _rounds_in_float(values: np.ndarray) -> bool:
    """Some of these whole numbers (int64, uint64 or Python ints, none missing) is not exact in float64."""
    if values.dtype.kind in "iu":  # the few large ones, without a Python step per value (2**53 + 1 is 2**53 as float)
        values = values[np.abs(values.astype(np.float64)) >= _EXACT_FLOAT]
    return any(int(float(v)) != int(v) for v in values if abs(int(v)) > _EXACT_FLOAT)


def _nullable_ints(values: np.ndarray, missing: np.ndarray) -> pd.api.extensions.ExtensionArray | None:
    """Whole numbers with gaps (``values`` int64, uint64 or Python ints; any value where ``missing``) as pandas'
    nullable ``Int64`` (``UInt64`` beyond int64), or None where float64 holds every one exactly (the column keeps
    pandas' float64 reading, its values and its hashes) or neither dtype holds them all."""
    present = values[~missing]
    if not present.size or not _rounds_in_float(present):
        return None
    dtype = _nullable_int_dtype(int(present.min()), int(present.max()))
    if dtype is None:
        return None
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(dtype.lower()), missing.copy())


def _nullable_int_dtype(low: int, high: int) -> str | None:
    """pandas' nullable integer dtype that holds every whole number from ``low`` to ``high``: ``Int64``, else
    ``UInt64``; None when neither does."""
    return "Int64" if -2 ** 63 <= low and high < 2 ** 63 else "UInt64" if 0 <= low and high < 2 ** 64 else None


def _big_ints_as_stored(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Integer columns of a parquet file with a missing value and a whole number beyond 2**53, which pandas reads as
    float64 (rounding them: two accounts, or two rows, became one), as pandas' nullable ``Int64``/``UInt64``.

    Only columns that read as float64 with such a large value are looked at again, and only those: every other column
    keeps pandas' reading.
    """
    candidates = [c for c in df.columns if isinstance(c, str) and _beyond_float(df[c])]
    if not candidates:
        return df
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    ints = [c for c in candidates if c in schema.names
            and (pa.types.is_int64(schema.field(c).type) or pa.types.is_uint64(schema.field(c).type))]
    if not ints:
        return df
    table = pq.read_table(path, columns=ints)
    df = df.copy()
    for c in ints:
        column = table.column(c)
        ints_of_c = _nullable_ints(column.fill_null(0).to_numpy(), column.is_null().to_numpy(zero_copy_only=False))
        if ints_of_c is not None:
            df[c] = ints_of_c
    return df


def _big_ints_as_written(path: Path, df: pd.DataFrame, *, options: dict[str, Any]) -> pd.DataFrame:
    """CSV columns of whole numbers with an empty field and a number beyond 2**53, which pandas reads as float64
    (rounding them), as pandas' nullable ``Int64``/``UInt64`` of the numbers written. Only such columns are read a
    second time; a column with any other text there (``1e18``, ``5.0``) keeps pandas' float64 reading."""
    # pandas reads whole numbers without a gap as int64 (uint64 beyond it): a float64 column with none is floats as
    # written (1e20), not rounded integers, and is not read a second time
    redo = [i for i, col in enumerate(df.columns) if _beyond_float(df[col]) and df[col].isna().any()]
    if not redo:
        return df
    with warnings.catch_warnings():  # the first read settled the file's shape (trailing commas): nothing new here
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        raw = pd.read_csv(path, index_col=False, dtype=str, **{**options, "usecols": redo})
    df = df.copy()
    for i in redo:
        text = raw[df.columns[i]]
        missing = text.isna().to_numpy()
        whole = text[~missing].str.fullmatch(_WHOLE_NUMBER_TEXT).all()
        if not whole or (missing != df.iloc[:, i].isna().to_numpy()).any():
            continue
        numbers = np.array([0 if gap else int(t) for t, gap in zip(text, missing)], dtype=object)
        ints = _nullable_ints(numbers, missing)
        if ints is not None:
            df.isetitem(i, ints)
    return df


def _exact_ints_across_files(frames: list[pd.DataFrame], col: Any) -> list[pd.DataFrame]:
    """A column of whole numbers in every file of a folder, one of which float64 cannot hold exactly (beyond 2**53),
    as pandas' nullable ``Int64``/``UInt64`` in all: where another file holds it as float64 (a gap there, or small
    numbers stored as floats), concatenating would round it through float64. A column with a fraction, or whose
    numbers float64 holds exactly, keeps pandas' reading."""
    series = [f[col] for f in frames]
    kinds = {s.dtype.kind for s in series}
    # signed beside unsigned (one nullable) would concatenate to pandas' nullable Float64: decided here too
    if ("f" not in kinds and kinds != {"i", "u"}) or not kinds <= {"f", "i", "u"}:
        return frames
    large = [s for s in series if s.dtype.kind in "iu"
             and _rounds_in_float(s.dropna().to_numpy(dtype="uint64" if s.dtype.kind == "u" else "int64"))]
    # an infinity is no whole number (and no Int64 value): such a column stays float64, as before
    if not large or not all(_whole_numbers(s) and not np.isinf(s.to_numpy()).any()
                            for s in series if s.dtype.kind == "f"):
        return _floats_as_before(frames, col)
    low = min(int(s.min()) for s in series if s.notna().any())
    high = max(int(s.max()) for s in series if s.notna().any())
    dtype = _nullable_int_dtype(low, high)
    if dtype is None:
        return _floats_as_before(frames, col)
    return [f.assign(**{col: f[col].astype(dtype)}) if f[col].dtype != dtype else f for f in frames]


def _floats_as_before(frames: list[pd.DataFrame], col: Any) -> list[pd.DataFrame]:
    """A column that stays floats across a folder's files: a file's nullable ``Int64``/``UInt64`` reading of it as
    float64 (missing as NaN), so the folder's column is float64 as before, not pandas' nullable ``Float64``."""
    return [f.assign(**{col: f[col].astype("float64")})
            if isinstance(f[col].dtype, pd.api.extensions.ExtensionDtype) and f[col].dtype.kind in "iu" else f
            for f in frames]


def text_columns_of(df: pd.DataFrame, *, skip: Collection[Any] = ()) -> list[Any]:
    """The columns of ``df`` that hold text, as :func:`read_table` keeps a CSV's ``NA`` words in them: not true/false,
    not numbers with a few typos.

    Give them as ``text_columns`` when reading another file of the same data (a curated validation or test file): a
    file whose text column holds only such words (every row of one region, ``NA``) reads them as missing on its own,
    where the data has them as text. Columns in ``skip`` (``row_id``) are left out unread: no copy of a large frame
    without them is needed.
    """
    return [c for c in df.columns if c not in skip and _text_column(df[c])]


def numeric_features(numeric: Sequence[str], *, target: Any, id_column: Any = None, exclude: Collection[Any] = (),
                     include: Collection[Any] | None = None) -> list[str]:
    """The columns of ``numeric`` (``features.numeric``, ``--numeric``) that are features, for :func:`read_table`'s
    ``numeric_columns``: not the target, the id column or an excluded column, and in ``include`` when it is given.

    The encoder reads a numeric declaration of any other column as nothing, so such a column keeps the reading it had
    without one: a target class ``NA`` stays a class, an excluded text column keeps its ``NA`` text (and the
    snapshot, its hash).
    """
    return [c for c in numeric if c != target and c != id_column and c not in exclude
            and (include is None or c in include)]


def _text_column(series: pd.Series) -> bool:
    """A column whose NA words are text (:func:`_text_as_written`): it holds text, and is not numbers with typos."""
    return _holds_text(series) and not _numbers_with_typos(series)


def _numbers_with_typos(series: pd.Series) -> bool:
    """A text column of which at least ``_NUMERIC_SHARE`` of the present values are numbers: numeric to the encoder."""
    from lossval.encoding import _NUMERIC_SHARE, _to_numeric

    present = series.dropna()
    parsed = _to_numeric(present)
    return parsed is not None and len(present) > 0 and float(parsed.notna().mean()) >= _NUMERIC_SHARE


def _first_overlong_line(path: Path, n_header: int, *, empty_too: bool = False) -> int | None:
    """1-based line number of the first record with a non-empty field past the header's ``n_header``
    (with ``empty_too``, with any field past it)."""
    with open_csv_text(path) as fh:
        reader = csv.reader(fh)
        for row in reader:
            if len(row) > n_header and (empty_too or any(field.strip() for field in row[n_header:])):
                return reader.line_num
    return None


def _csv_row_lines(path: str | os.PathLike[str]) -> Iterator[int]:
    """1-based line where each data row of a CSV file starts, counting as pandas reads: the first
    non-blank line is the header, blank lines are skipped and a quoted value may span lines.

    Raises:
        OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error: the file is not a readable CSV.
    """
    header_seen = False
    with open_csv_text(path) as fh:
        raw: list[str] = []  # the text of the record being read: '""' is a row to pandas, a line of spaces is not

        def lines() -> Iterator[str]:
            for line in fh:
                raw.append(line)
                yield line

        reader = csv.reader(lines())
        end = 0  # the line the previous record (or blank line) ended on
        for record in reader:
            if len(record) > 1 or "".join(raw).strip():  # pandas skips empty and whitespace-only lines
                if header_seen:
                    yield end + 1
                header_seen = True
            end = reader.line_num
            raw.clear()


_UNREADABLE_CSV = (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error)


def csv_line_of_row(path: str | os.PathLike[str], row: int) -> int | None:
    """1-based line of a CSV file where data row ``row`` (0-based, as :func:`read_table` numbers it) starts.

    None when the file is not a readable CSV or has fewer rows.
    """
    try:
        return next(itertools.islice(_csv_row_lines(path), row, None), None)
    except _UNREADABLE_CSV:
        return None


def file_of_folder_row(path: str | os.PathLike[str], row: int) -> tuple[Path, int] | None:
    """The file of a data folder that holds row ``row`` of :func:`read_table`'s frame, and the row's number there.

    Files are counted in :func:`read_table`'s order (parquet rows from the footer, CSV rows as pandas
    reads them). None when ``path`` is not a folder, or a file cannot be counted, or there are fewer rows.
    Folders in it are passed over: a row number comes from a :func:`read_table` that read the folder, which
    refuses a folder named like a data file unless it was set aside (a validation or test folder).
    """
    import pyarrow.parquet as pq

    if not Path(path).is_dir() or row < 0:
        return None
    try:
        folders = [entry for entry in Path(path).iterdir() if entry.is_dir()]
        for f in list_data_files(path, set_aside=folders):
            try:
                n = sum(1 for _ in _csv_row_lines(f)) if is_csv_file(f) else pq.ParquetFile(f).metadata.num_rows
            except Exception:  # noqa: BLE001 (an unreadable CSV, or pyarrow's errors of a damaged footer: no note)
                return None
            if row < n:
                return f, row
            row -= n
    except (InputError, OSError):
        return None
    return None


def _restore_index(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Named index levels a parquet file was written with (``df.set_index("id").to_parquet``) become columns again.

    Unnamed levels (a filtered frame's row positions) are pandas bookkeeping, not data, and are dropped.
    """
    named = [name for name in df.index.names if name is not None]
    if not named:
        return df
    clash = [name for name in named if name in df.columns]
    if clash:
        raise InputError(f"index level(s) {clash} have the same name as a column; rename one of them.", source=str(path))
    return df.reset_index(level=named)


_NESTED = (list, tuple, dict, set, np.ndarray)


def nested_column(df: pd.DataFrame) -> tuple[Any, int] | None:
    """``(column, first row position)`` of the first column holding lists, arrays or structs, else None.

    Parquet list and struct columns arrive as such objects; nothing in lossval can hash, encode or
    store them. Only object columns that pandas does not find flat are scanned value by value.
    """
    for col in df.columns:
        s = df[col]
        if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) not in ("mixed", "mixed-integer", "unknown-array"):
            continue  # text, numbers, decimals, bytes: flat
        nested = s.map(lambda v: isinstance(v, _NESTED)).to_numpy(dtype=bool)
        if nested.any():
            return col, int(np.flatnonzero(nested)[0])
    return None


_EXACT_FLOAT = 2 ** 53
"""Integers up to this size are exact in float64: row ids hash them as the float they equal."""


def _number_hashes(s: pd.Series) -> np.ndarray | None:
    """One uint64 per value of a number column (int, float, bool, numeric categories), None for other columns.

    Decided per value, never per column: a whole number up to 2**53 (exact in float64) hashes as
    that float, a larger one as the int64 it equals, anything else as its float64. So 1, 1.0,
    True and float32 1.0 hash alike, and no value's hash depends on the other rows' values.
    """
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if not pd.api.types.is_numeric_dtype(dtype.categories.dtype):
            return None
        # the categories as a nullable array, missing rows taken as NA: Series.where(...) turned int categories float
        # when a row was missing, so 2**60 and 2**60 + 1 hashed alike (and changed with another row's blank)
        s = pd.Series(pd.array(np.asarray(dtype.categories)).take(s.cat.codes.to_numpy(), allow_fill=True),
                      index=s.index)
        dtype = s.dtype
    if not (pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype)
                                                  and not pd.api.types.is_complex_dtype(dtype))):
        return None
    if pd.api.types.is_unsigned_integer_dtype(dtype) and s.notna().any() and s.max() >= 2 ** 63:
        # beyond int64: those values as stored, each other value as it would hash in any column (it was hashed as
        # stored too, so one huge value changed every other row's content id)
        missing = s.isna().to_numpy()
        stored = s.to_numpy(dtype="uint64", na_value=0)
        huge = ~missing & (stored >= 2 ** 63)
        # not s.where(...): on a UInt64 column it rounds 2**60 + 1 through float64
        rest = pd.Series(pd.arrays.IntegerArray(np.where(huge, 0, stored).astype("int64"), missing), index=s.index)
        hashes = _number_hashes(rest).copy()
        hashes[huge] = pd.util.hash_pandas_object(s[huge], index=False).to_numpy()
        return hashes
    as_float = s.astype("float64")  # nullable NA -> NaN
    hashes = pd.util.hash_pandas_object(as_float, index=False).to_numpy()
    if pd.api.types.is_integer_dtype(dtype):  # beyond 2**53 float64 would round: hash the int itself
        big = s.notna().to_numpy() & (s.abs().fillna(0).to_numpy() > _EXACT_FLOAT)
        exact = s[big].astype("int64")
    else:  # a float holding such a whole number hashes as that int too
        values = as_float.to_numpy()
        big = (np.isfinite(values) & (np.abs(values) > _EXACT_FLOAT) & (np.abs(values) < 2.0 ** 63)
               & (values == np.floor(values)))
        exact = pd.Series(values[big].astype("int64"))
    if big.any():
        hashes = hashes.copy()
        hashes[big] = pd.util.hash_pandas_object(exact, index=False).to_numpy()
    return hashes


def row_hashes(df: pd.DataFrame, *, source: str | None = None, why: str = "flatten it into columns or drop it") -> np.ndarray:
    """One uint64 per row of ``df``, from its values alone, whatever the dtypes that hold them.

    Numbers hash alike whether stored as int, float, bool or numeric categories
    (:func:`_number_hashes`), so a row keeps its content id when another row changes a column's
    dtype (one 2.5 appended to a column of whole numbers turns it float). Text, categorical and
    string columns hash alike too; text and numbers do not. Each value's hash depends on that
    value alone. Raises InputError naming a column of nested values.
    """
    if df.shape[1] == 0:
        return _hash_rows(df, source=source, why=why)
    columns = []
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        numbers = _number_hashes(s)
        if numbers is None:
            numbers = _hash_rows(s.to_frame(), source=source, why=why)
        columns.append(numbers)
    return pd.util.hash_pandas_object(pd.DataFrame(dict(enumerate(columns))), index=False).to_numpy()


def _hash_rows(df: pd.DataFrame, *, source: str | None, why: str) -> np.ndarray:
    try:
        return pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:
        found = nested_column(df)
        if found is None:
            raise
        raise InputError(f"column {found[0]!r} holds nested values (lists, arrays or structs), first at row "
                         f"{found[1]}; {why}.", source=source) from None


def read_table(path: str | os.PathLike[str], *, max_columns: int = MAX_COLUMNS,
               text_columns: Sequence[str | None] = (), numeric_columns: Sequence[str] = (),
               set_aside: Sequence[str | os.PathLike[str] | None] = (),
               leading_zeros_hint: bool = True) -> pd.DataFrame:
    """Read a parquet or CSV file, or every data file of a folder (same columns), into one frame.

    Args:
        path: A ``.parquet``/``.pq``/``.csv`` file, or a folder of them.
        max_columns: Refuse files with more columns than this (checked on the header, before the rows).
        text_columns: Columns read from CSV as the text they hold, not parsed as numbers: an id
            column, whose ``007`` and ``7`` are two rows, or a column declared categorical (zip
            code ``02139``). Parquet columns keep their stored type; ``None`` entries are skipped. In these,
            and in every other CSV column of text, only an empty field is missing: ``NA``, ``null``, ``None``
            stay text; a column of numbers reads them as missing (:func:`_text_as_written`).
        numeric_columns: Columns declared numeric (``features.numeric``): a CSV's ``NA`` words in them are missing
            values, as in any column of numbers, even where the column holds much text (typos, which the encoder then
            names and counts without them).
        set_aside: Folders inside a data folder that are not its data (a validation or test folder), as for
            :func:`list_data_files`; any other folder in it named like a data file is refused.
        leading_zeros_hint: Warn of a CSV column read as numbers whose text has leading zeros (a zip code); off
            for a file of which only some columns are read (a list of row ids), whose other columns are never used.

    Returns:
        The rows, with a fresh ``RangeIndex``.

    Raises:
        InputError: missing path, empty file, header only, unreadable bytes, too many or repeated
            column names, or files of one folder with different columns (names the file and the
            columns that differ), a folder in a data folder named like a data file and not set aside; a file the
            system will not let lossval read (permission denied,
            a disk error) or that is not a regular file (a FIFO). Files with the same columns in
            another order are matched by name, in the first file's order.
    """
    files = list_data_files(path, set_aside=set_aside)
    text = [c for c in text_columns if c is not None]
    numeric = [c for c in numeric_columns if c not in text]
    frames = []
    columns: list[str] | None = None
    zeros: dict[str, list[tuple[Path, int, str]]] = {}
    for f in files:
        df = _read_one(f, max_columns=max_columns, text_columns=text, numeric_columns=numeric)
        for col, hit in (_leading_zeros(f, df, text) if leading_zeros_hint else {}).items():
            zeros.setdefault(col, []).append(hit)
        if columns is None:
            columns = list(df.columns)
        elif list(df.columns) != columns:
            missing = [c for c in columns if c not in df.columns]
            extra = [c for c in df.columns if c not in columns]
            if missing or extra:
                raise InputError(f"columns differ from {files[0].name}: missing {missing[:5]}, extra {extra[:5]}; "
                                 "every file of a folder must have the same columns.", source=str(f))
            df = df[columns]  # the same columns in another order (another export tool): matched by name
        frames.append(df)
    _warn_leading_zeros(zeros, path)
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    # A CSV file whose text column holds only words such as NA (every row of one region) reads as all missing numbers:
    # read as text there too, as the column is in the other files (:func:`_text_as_written`).
    texty = [c for c in columns or [] if c not in text and c not in numeric and any(_text_column(f[c]) for f in frames)]
    for i, f in enumerate(files):
        words = [c for c in texty if frames[i][c].isna().all() and not _holds_text(frames[i][c])]
        if words and is_csv_file(f):
            with warnings.catch_warnings():  # said once, by the first read
                warnings.simplefilter("ignore")
                frames[i] = _read_one(f, max_columns=max_columns, text_columns=[*text, *words],
                                      numeric_columns=numeric)[columns]
    for col in (c for c in text if c in (columns or [])):
        # CSV gives the text, parquet its stored type (ids as int64): one column of mixed types
        # could not be written back as parquet, so every file's values become text there.
        if len({_holds_text(f[col]) for f in frames}) > 1:
            frames = [f if _holds_text(f[col]) else f.assign(**{col: _as_text(f[col])}) for f in frames]
    for col in columns or []:  # text in one file, numbers in another: one column cannot hold both as parquet
        held = [(f_path.name, _holds_text(f[col])) for f_path, f in zip(files, frames) if f[col].notna().any()]
        as_text = next((name for name, is_text in held if is_text), None)
        as_number = next((name for name, is_text in held if not is_text), None)
        if as_text is not None and as_number is not None and col in numeric:
            _refuse_text_in_declared_numbers(col, files, frames, path)
        if as_text is not None and as_number is not None:
            raise InputError(
                f"column {col!r} holds text in {as_text} but numbers in {as_number}: one column has one type. If it "
                f"holds codes, declare it categorical (pipeline config: features.categorical: [{col}]; `lossval value`: "
                f"--categorical {col}) to read it as text in every file; else fix the file whose values are wrong.",
                source=str(path))
    for col in columns or []:
        frames = _exact_ints_across_files(frames, col)
    try:
        return pd.concat(frames, ignore_index=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"files of this folder cannot be combined: {exc}", source=str(path)) from None


def _as_text(series: pd.Series) -> pd.Series:
    """A column's present values as text, its missing ones left missing (NaN)."""
    if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) and series.dtype.kind in "iu":
        # a nullable Int64 column (whole numbers beyond 2**53 with a gap) cannot take text in place
        series = series.astype(object).where(series.notna(), np.nan)
    return series.where(series.isna(), series.astype(str))


def _refuse_text_in_declared_numbers(col: str, files: Sequence[Path], frames: Sequence[pd.DataFrame],
                                     path: str | os.PathLike[str]) -> None:
    """A column declared numeric that holds text in one file of a folder and numbers in another: its typos are what
    to fix (declaring it categorical, as the message for an undeclared column says, is refused with it numeric).
    Names the first value that is not a number, by its row across the folder; where every value is a number, the file
    that stores them as text."""
    from lossval.encoding import _to_numeric  # the encoder's rule: what it reads as a number is one here

    offset = 0
    for f_path, frame in zip(files, frames):
        values = frame[col].reset_index(drop=True).dropna()  # labelled by position in the file
        parsed = _to_numeric(values)
        unparsed = values.notna() if parsed is None else parsed.isna()  # None: the encoder reads none as numbers
        bad = values[unparsed] if _holds_text(values) else values[:0]
        if len(bad):
            raise InputError(f"column {col!r} is declared numeric but {len(bad)} of its {len(values)} non-missing "
                             f"values in {f_path.name} do not parse as numbers, first {bad.iloc[0]!r} at row "
                             f"{offset + int(bad.index[0])}; fix or drop these rows.", source=str(path))
        offset += len(frame)
    # Every value parses: numbers stored as text in one file (a parquet string column), numbers in another.
    as_text = next(f_path.name for f_path, frame in zip(files, frames) if _holds_text(frame[col].dropna()))
    raise InputError(f"column {col!r} is declared numeric and its values are numbers, but {as_text} stores them as "
                     "text and the other files as numbers: one column has one type. Store them as numbers in "
                     f"{as_text} (e.g. pandas.to_numeric) and deliver it again.", source=str(path))


_LEADING_ZERO = r"\s*[+-]?0\d.*"  # 08681, 007, -01: a code's leading zero, which reading a number drops (0.5 is not)


def _whole_numbers(series: pd.Series) -> bool:
    """An integer column, or a float one whose values are all whole (integers with a gap read as floats)."""
    if series.dtype.kind in "iu":
        return True
    if series.dtype.kind != "f":
        return False
    values = series.to_numpy()
    values = values[np.isfinite(values)]
    return bool(values.size) and bool((values == np.round(values)).all())


def _leading_zeros(path: Path, df: pd.DataFrame, text: Sequence[str]) -> dict[str, tuple[Path, int, str]]:
    """Whole-number columns of a CSV whose text has leading zeros: ``{column: (file, rows with one, first text)}``.

    Codes (zip, account numbers) are whole numbers; measurements with decimals are not read a second time, so a file
    of such columns costs nothing more (a review measured the second read of every numeric column at 2.5 s for
    100,000 rows x 20 columns). Their second read, as text, is of those columns only; a CSV that cannot be read that
    way (it was read once already) only loses this hint.
    """
    if not is_csv_file(path):
        return {}
    numeric = [c for c in df.columns if c not in text and _whole_numbers(df[c])]
    if not numeric:
        return {}
    try:
        raw = pd.read_csv(path, index_col=False, usecols=numeric, dtype=str, keep_default_na=False)
    except Exception:
        return {}
    found = {}
    for col in numeric:
        hit = raw[col].str.fullmatch(_LEADING_ZERO).to_numpy(dtype=bool)
        if hit.any():
            first = int(np.flatnonzero(hit)[0])
            line = csv_line_of_row(path, first)
            found[col] = (path, int(hit.sum()), f"{raw[col].iloc[first]!r}" + (f" on line {line}" if line else ""))
    return found


def _warn_leading_zeros(zeros: dict[str, list[tuple[Path, int, str]]], path: str | os.PathLike[str]) -> None:
    """One warning per column read as numbers although its text has leading zeros (zip, account codes)."""
    for col, hits in zeros.items():
        first_file, _, example = hits[0]
        where = f" of {first_file.name}" if Path(path).is_dir() else ""
        files = f" in {len(hits)} files" if len(hits) > 1 else ""
        warnings.warn(
            f"{path}: column {col!r} was read as numbers, but {sum(n for _, n, _ in hits)} of its values{files} are "
            f"written with leading zeros (e.g. {example}{where}), which a number drops. If they are codes (zip, "
            f"account or product codes), declare the column categorical (pipeline config: features.categorical: "
            f"[{col}]; `lossval value`: --categorical {col}): it is then read as text, so the snapshot and the "
            "quarantine keep the zeros, and it stays out of the features if it is excluded. If they are numbers, "
            "nothing is wrong",
            UserWarning, stacklevel=3)


def _holds_text(series: pd.Series) -> bool:
    """A column of text: a text dtype whose values are not all booleans (a true/false column with a blank is
    ``object`` in pandas, CSV or parquet alike, and is no more text than the same column without one), or a pandas
    categorical whose levels are text (a parquet file written from one reads back so: its 'NA' is text too)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = pd.Series(series.dtype.categories)
    return is_text_dtype(series.dtype) and pd.api.types.infer_dtype(series, skipna=True) != "boolean"


def is_text_dtype(dtype: Any) -> bool:
    """Object, string or numpy text dtype: a column that holds text (or anything) rather than numbers."""
    return pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype) or dtype.kind in "SU"


def missing_or_blank(series: pd.Series) -> np.ndarray:
    """Cells that hold no value: NaN, None or NA, or text that is empty or only spaces.

    A CSV reads an empty cell as NaN but ``"  "`` as text; a parquet file keeps ``""`` as text.
    As a target, either would otherwise become a class of its own.
    """
    missing = series.isna().to_numpy()
    if series.dtype.kind in "biufcmM":
        return missing.copy()  # callers may update it in place, and pandas may hand out a read-only view
    values = series.to_numpy(dtype=object)
    try:  # each distinct value once: a column of a few levels is checked in a few steps, not one per row
        codes, uniques = pd.factorize(values)
    except TypeError:  # unhashable values (lists): one by one
        codes, uniques = np.arange(len(values)), values
    blank = np.fromiter((isinstance(v, str) and not v.strip() for v in uniques), dtype=bool, count=len(uniques))
    return missing | np.append(blank, False)[codes]  # code -1 (NaN, None) is missing already


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a frame as parquet, atomically, without its index."""
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def file_sha256(path: str | os.PathLike[str], *, own_output: bool = False) -> str:
    """Hex SHA-256 of a file's bytes.

    Args:
        path: The file.
        own_output: The file is one lossval wrote (a run's outputs in the workspace), not an input the user
            delivered: a failure to read it is the machine's, not the input's, and is said so.

    Raises:
        InputError: the file cannot be read (deleted, its permissions changed since it was read, a disk
            error): names it and what to do; the system's refusal is its ``__cause__``.
        WorkspaceError: likewise, for ``own_output``: names it and says to check the disk and the workspace.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        if own_output:
            raise WorkspaceError(f"{path}: this run's own output file cannot be read back ({_system_said(exc)}); "
                                 "it is not an input, so delivering the data again will not help: check the disk that "
                                 "holds the workspace, and that nothing else removes files in it or changes their "
                                 "permissions (a worker or job running as another user), then run again.") from exc
        raise _unreadable_file(exc, path) from exc
    return h.hexdigest()


def data_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of what a data path holds: a file's bytes (:func:`file_sha256`), or for a folder its data files'
    names and digests in name order (:func:`list_data_files`)."""
    p = Path(path)
    if not p.is_dir():
        return file_sha256(p)
    return hashlib.sha256("".join(f"{f.name}\0{file_sha256(f)}\n" for f in list_data_files(p)).encode()).hexdigest()


def frame_fingerprint(df: pd.DataFrame, *, source: str | None = None) -> str:
    """Content hash of a frame (values, column names and dtypes; order-sensitive), 16 hex chars.

    Raises:
        InputError: a column holds lists, arrays or structs (named, with ``source``).
    """
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    why = "a snapshot hashes every column: flatten it into columns or drop it from the file"
    h.update(_hash_rows(df, source=source, why=why).tobytes())
    return h.hexdigest()[:16]


def value_text(value: Any) -> str:
    """One text per value whatever the storage: 1, 1.0 (a parquet float column), ``np.int64(1)`` and "1" (a CSV) agree;
    booleans read ``True``/``False``; anything else as ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _id_text(value: Any) -> str:
    """An id as text (:func:`value_text`), except a float beyond 2**53, which is no exact whole number: as ``str``."""
    if isinstance(value, (float, np.floating)) and abs(value) > _EXACT_FLOAT:
        return str(value)
    return value_text(value)


def _ids_as_text(ids: pd.Series) -> pd.Series:
    """An id column as the row ids' text (:func:`_id_text`): ``7``, ``7.0`` and ``"7"`` alike."""
    return ids.map(_id_text) if ids.dtype == object or pd.api.types.is_float_dtype(ids.dtype) else ids.astype(str)


def assign_row_ids(df: pd.DataFrame, *, id_column: str | None = None, source: str | None = None) -> pd.Series:
    """A stable string id per row.

    With ``id_column`` the ids are that column's values (must be unique and non-null). Without
    it they are derived from the row's content (a hash of all its values, excluded columns too,
    in column order; numbers hash alike whether stored as int, float or bool, see
    :func:`row_hashes`), with ``#2``, ``#3``... appended to repeats of an identical row, so the
    same rows always get the same ids whatever their order in the file; a file with its columns
    reordered, or with one more column, gives every row a new id (give ``id_column`` for ids
    that survive such changes).

    Args:
        df: The rows.
        id_column: Column holding an id per row, or ``None`` to derive ids.
        source: File name for error messages.

    Returns:
        ``pd.Series`` of ``str`` ids, aligned with ``df``.

    Raises:
        InputError: the id column is missing, has nulls or repeats (names the first repeated ids).
    """
    if id_column is not None:
        if id_column not in df.columns:
            raise InputError(f"id column {id_column!r} not found; columns are {list(df.columns)[:10]}.", source=source)
        ids = df[id_column]
        if ids.isna().any():
            raise InputError(f"id column {id_column!r} has {int(ids.isna().sum())} empty value(s), first at row {int(np.flatnonzero(ids.isna().to_numpy())[0])}.", source=source)
        # 1 and "1" are the same row id; so is 1.0, from a parquet file whose id column turned float (a CSV says "1").
        text = _ids_as_text(ids)
        repeats = text.duplicated().to_numpy()
        if repeats.any():
            dup = text[text.duplicated(keep=False)]
            raise InputError(
                f"id column {id_column!r} has duplicate ids, e.g. {dup.unique()[:5].tolist()} "
                f"({int(repeats.sum())} repeated rows, first at row {int(np.flatnonzero(repeats)[0])}); "
                "ids must be unique.",
                source=source,
            )
        return text.rename("row_id")
    hashes = row_hashes(df, source=source, why="rows without an id column are identified by hashing every column: give an "
                        "id column, or flatten the column or drop it from the file")
    base = pd.Series([f"{h:016x}" for h in hashes], index=df.index)
    occurrence = base.groupby(base).cumcount() + 1
    return base.where(occurrence == 1, base + "#" + occurrence.astype(str)).rename("row_id")


def read_row_id_list(path: str | os.PathLike[str], *, id_column: str | None = None,
                     key: str = "pruning.keep_ids") -> list[str]:
    """The row ids a file lists, as text, each once, in file order: its ``row_id`` column (as ``quarantine.parquet``
    and ``decisions.parquet`` have it), else its ``id_column`` column.

    A CSV's ids are read as the text they hold (``007`` stays ``007``); numbers stored in a parquet
    file read as a CSV would write them (``7``, not ``7.0``), as :func:`assign_row_ids` makes them.

    Raises:
        InputError: no such file, neither column, or an empty id (names the file and the row).
    """
    column = "row_id"
    try:
        # Only the ids are read: a reviewer's copy of quarantine.parquet as CSV holds the data's columns, whose zip codes
        # would otherwise be warned about as if they were data (at config load and in the prune task alike).
        df = read_table(path, text_columns=["row_id", id_column], leading_zeros_hint=False)
    except InputError as exc:  # no such file, header only, an empty folder...: say which key named it, and what to do
        text = str(exc)
        text = text[len(f"{exc.source}: "):] if exc.source and text.startswith(f"{exc.source}: ") else text
        raise InputError(f"{key}: {text.rstrip('.')}. List the row ids to put back in a 'row_id' column (one per "
                         f"row), or remove {key} from the config.", source=exc.source or str(path)) from None
    if "row_id" not in df.columns:
        if id_column is None or id_column not in df.columns:
            also = f" or {id_column!r} (the id column)" if id_column else ""
            raise InputError(f"{key}: the file needs a 'row_id' column{also} listing the rows to keep, as "
                             f"quarantine.parquet and decisions.parquet of a run folder have it; its columns are "
                             f"{list(df.columns)[:10]}.", source=str(path))
        column = id_column
    ids = df[column]
    empty = missing_or_blank(ids)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise InputError(f"{key}: column {column!r} has {int(empty.sum())} empty id(s), first at row {row}; list one "
                         "row id per row.", source=str(path))
    return list(dict.fromkeys(_ids_as_text(ids).tolist()))


def yaml_name(name: Any) -> str:
    """A column name as it must be written in a YAML config (inside a flow list ``[...]`` too): plain when YAML
    reads it back as that same text, else double-quoted (``"Unnamed: 0"``, ``"2021"``, ``"yes"``, ``"a, b"``)."""
    import yaml

    text = str(name)
    try:
        plain = yaml.safe_load(f"[{text}]") == [text]
    except yaml.YAMLError:
        plain = False
    return text if plain and text == text.strip() else json.dumps(text)


def shell_name(name: Any) -> str:
    """A column name as one shell word, for a ``lossval value --flag NAME`` suggestion."""
    import shlex

    return shlex.quote(str(name))
