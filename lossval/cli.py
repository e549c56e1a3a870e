"""The ``lossval`` command line.

Exit codes: 0 success, 1 an error that is not the input's fault (MLflow unreachable; or a bug:
please report it with ``--debug`` output), 2 bad input or configuration, 3 the quality gate
refused promotion. Errors are one line on stderr; ``--debug`` adds the traceback.

Subcommands:
    value   value every row of a table against a validation table (library only, no servers)
    demo    the whole cleaning flow on a shipped dataset with injected label noise
    run     the whole cleaning flow from a YAML (or JSON) config
    verify  check that a run's row ids add up
    watch   emit a Prefect event for every data file that lands completely in a landing folder
    serve   serve the nightly, new-data and valuation deployments against PREFECT_API_URL
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lossval.errors import GateFailed, InputError, LossvalError

__all__ = ["main", "console_main", "build_parser", "one_line_warnings"]

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_GATE = 0, 1, 2, 3


def _add_valuation_options(p: argparse.ArgumentParser, *, task: bool = True) -> None:
    """``task``: offer ``--task`` (not for ``demo``, whose dataset decides it)."""
    g = p.add_argument_group("valuation")
    if task:
        g.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                       help="auto (the default) decides from the target: text, booleans and integers with at most 20 "
                            "distinct values are classes, other numbers regression")
    g.add_argument("--epochs", type=int, default=30, help="training epochs (default 30, at most 100000)")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the network, the batch order and the validation subsets, in [0, 2**32) (default 0): "
                        "the same data, options and seed give the same values on the CPU")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="lossval", description="Find and prune low-value training rows.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("value", help="value every row of DATA against a validation file; writes values.parquet")
    p.add_argument("data", help="training rows: a parquet, CSV or .csv.gz file, or a folder of them")
    p.add_argument("--target", required=True, help="target column")
    p.add_argument("--validation", required=True, help="trusted validation rows (same columns)")
    p.add_argument("--out", required=True,
                   help="output parquet: row_id (the --id-column values, of the type they are stored as; else an id "
                        "derived from the row's content), value, rank (1 = the lowest value, the first to prune)[, noise_prob]")
    p.add_argument("--id-column", help="column holding a unique row id (default: derived from row content)")
    p.add_argument("--exclude", action="append", default=[], help="column to leave out of the features (repeatable)")
    p.add_argument("--categorical", action="append", default=[],
                   help="feature column to keep categorical even if it looks numeric, e.g. a zip code (repeatable)")
    p.add_argument("--numeric", action="append", default=[],
                   help="feature column to encode as numbers even if it holds text; a value that is not a number "
                        "is an error naming its row (repeatable)")
    p.add_argument("--noise-prob", action="store_true", help="add P(noisy) from the loss mixture model")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    _add_valuation_options(p)

    p = sub.add_parser("demo", help="run the cleaning flow on a shipped dataset with injected label noise")
    p.add_argument("--workspace", default="lossval-workspace", help="where runs, the MLflow DB and artifacts go "
                   "(default ./lossval-workspace)")
    p.add_argument("--dataset", default="breast_cancer", help="breast_cancer (default), digits, 2dplanes (classification); diabetes, fried (regression)")
    p.add_argument("--noise", type=float, default=0.1, help="fraction of training labels to corrupt, 0 to 0.5 (default 0.1)")
    p.add_argument("--library-only", action="store_true", help="skip Prefect/MLflow/GX: value and prune only")
    _add_valuation_options(p, task=False)  # the dataset decides the task (diabetes: regression)

    p = sub.add_parser("run", help="run the cleaning flow from a YAML (or JSON) config")
    p.add_argument("config", help="YAML or JSON config (see examples/config.yaml; a run's logged config.json works too)")
    p.add_argument("--workspace", default="lossval-workspace", help="where runs, artifacts and the MLflow DB go "
                   "(the DB unless the config's tracking.uri names another; default ./lossval-workspace)")

    p = sub.add_parser("verify", help="check that a run's outputs account for every input row")
    p.add_argument("run_dir", help="a run folder (runs/<id> of a workspace), or its manifest.json")

    p = sub.add_parser("watch", help="emit a Prefect event for every data file that lands completely in LANDING_DIR")
    p.add_argument("landing_dir", help="folder that new data files are written into")
    p.set_defaults(_extend="watch")

    p = sub.add_parser("serve", help="serve the nightly, new-data and valuation deployments against PREFECT_API_URL")
    p.set_defaults(_extend="serve")
    for name, module in _EXTENSIONS.items():
        _register_extension_arguments(sub.choices[name], module)
    for p in sub.choices.values():  # `lossval value ... --debug` as well as `lossval --debug value ...`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return parser


# Subcommands whose options and handlers live with the deployments code: module path -> add_arguments(parser), run(args).
_EXTENSIONS = {"watch": "deployments.watch", "serve": "deployments.serve"}


def _register_extension_arguments(parser: argparse.ArgumentParser, module: str) -> None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    add = getattr(mod, "add_arguments", None)
    if add is not None:
        add(parser)


_OWN_CODE = tuple(str(Path(__file__).resolve().parents[1] / name) + os.sep
                  for name in ("lossval", "tasks", "flows", "deployments"))


def _is_ours(category: type[Warning], filename: str) -> bool:
    """A warning lossval raised on purpose: a UserWarning from lossval's own packages."""
    return issubclass(category, UserWarning) and str(filename).startswith(_OWN_CODE)


def _show_warning(message, category, filename, lineno, file=None, line=None, *, _default=warnings.showwarning) -> None:
    """Our own warnings as ``lossval: warning: ...`` lines; anyone else's in Python's usual form."""
    if _is_ours(category, filename):
        print(f"lossval: warning: {message}", file=file if file is not None else sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def _format_warning(message, category, filename, lineno, line=None, *, _default=warnings.formatwarning) -> str:
    """The text a logger shows for a warning (Prefect logs them inside tasks): ours without a source line."""
    if _is_ours(category, filename):
        return str(message)
    return _default(message, category, filename, lineno, line)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """lossval's own warnings as one line each, for the console script; Python's hooks restored after."""
    show, fmt = warnings.showwarning, warnings.formatwarning
    warnings.showwarning, warnings.formatwarning = _show_warning, _format_warning
    try:
        yield
    finally:
        warnings.showwarning, warnings.formatwarning = show, fmt


def console_main() -> int:
    """The ``lossval`` console script: :func:`main` with one-line warnings, SIGTERM as an interrupt.

    :func:`main` itself leaves Python's warning hooks alone, so a caller (or pytest) that
    records warnings still sees them as warnings. Once the command has returned, a SIGTERM ends this
    process with the command's status: call it only as the process's last act (the entry point,
    ``python -m lossval``).
    """
    _ignore_signals_after_exit_handlers()
    with one_line_warnings(), _sigterm_as_interrupt():
        code = main()
    _exit_with_on_sigterm(code)
    return code


def _ignore_signals_after_exit_handlers() -> None:
    """Once the exit handlers registered from now on have run, ignore SIGINT and SIGTERM until the process ends.

    After them Python puts its own signal handlers back to the system's default and then tears its modules down
    (about half a second with torch and pandas loaded): a Ctrl-C there killed a command that had finished, its output
    complete, with the status 130 that says "interrupted, unfinished run folder removed". An ignored signal stays
    ignored through that. Registered before the command runs, so Prefect's, MLflow's and torch's exit handlers, which
    they register as the command uses them, run before it, while :func:`_exit_with_on_sigterm`'s handler still ends a
    hanging one at the first Ctrl-C.
    """
    import atexit
    import signal
    import threading

    def ignore() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing to do
                signal.signal(signum, signal.SIG_IGN)

    if threading.current_thread() is threading.main_thread():
        atexit.register(ignore)


def _exit_with_on_sigterm(code: int) -> None:
    """The command has finished: a SIGTERM or Ctrl-C from now on ends the process at once with the command's status.

    Python's shutdown after a flow run (Prefect's clients, torch) takes about 3 s, when the summary is printed and
    the run folder complete; Python's default there killed the process silently with 143, which says "terminated,
    unfinished run folder removed", for a run that had completed, even been promoted, and a Ctrl-C there printed an
    "Exception ignored in atexit callback" traceback under the summary. Not ignored: a shutdown that hangs (a child
    process joined at exit) still stops at the first SIGTERM or Ctrl-C.
    """
    import signal
    import threading

    def exit_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, exit_now)
        signal.signal(signal.SIGINT, exit_now)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the job, ``timeout``): unwound like Ctrl-C, so clean-up runs."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` for the console script (main thread only), and back after.

    Python's default for SIGTERM is to die at once: no ``finally``, no ``atexit``, so the unfinished
    run folder stayed for the next run to sweep and Prefect's temporary server was left running.
    A SIGINT or SIGTERM whose exception Python drops (raised inside a finalizer) is sent again.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated()

    hook = sys.unraisablehook

    def deliver_again(unraisable: Any) -> None:
        # A signal's exception raised while a finalizer (__del__) runs is printed and dropped ("Exception ignored
        # in ..."): a Ctrl-C that landed there left a long valuation running. Send the signal again, from another
        # thread a moment later (sent from here, it would be raised inside this hook and dropped too), so that its
        # exception is raised where it can unwind the command.
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            signum = signal.SIGTERM if isinstance(unraisable.exc_value, _Terminated) else signal.SIGINT
            again = threading.Timer(0.05, os.kill, (os.getpid(), signum))
            again.daemon = True
            again.start()
            return
        hook(unraisable)

    previous = signal.signal(signal.SIGTERM, terminate)
    sys.unraisablehook = deliver_again
    try:
        yield
    finally:
        sys.unraisablehook = hook
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``lossval`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        if args.command in _EXTENSIONS:
            import importlib

            return importlib.import_module(_EXTENSIONS[args.command]).run(args)
        handler = {"value": _cmd_value, "demo": _cmd_demo, "run": _cmd_run, "verify": _cmd_verify}[args.command]
        return handler(args)
    except InputError as exc:
        _report_error("error", exc, debug=args.debug)
        return EXIT_BAD_INPUT
    except GateFailed as exc:  # the local wording: this terminal is the user's, not Prefect's or MLflow's
        _report_error("gate failed", exc.local_message or exc, debug=False)
        return EXIT_GATE
    except LossvalError as exc:  # the local wording too (MLflow unreachable after a refusal, log_quarantine false)
        if exc.local_message is not None and args.debug:
            traceback.print_exception(exc)
        _report_error("error", exc.local_message or exc, debug=args.debug)
        return EXIT_ERROR
    except _Terminated:
        kept = ("; a run stopped while logging to MLflow keeps its complete run folder (its manifest's mlflow status "
                "says failed): rerun to log and register it") if args.command in ("run", "demo") else ""
        removed = "" if args.command in ("watch", "serve") else "; unfinished outputs removed"  # they write none
        print(f"lossval: terminated (SIGTERM){removed}{kept}", file=sys.stderr)
        return 128 + 15
    except KeyboardInterrupt:
        print("lossval: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lossval value ... | head`: the reader left; nothing to report
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_ERROR
    except Exception as exc:
        text = _os_error_text(exc) if isinstance(exc, OSError) else None
        if text is None and _is_connection_error(exc):
            api = _prefect_api_url()
            text = (f"cannot connect to a server ({type(exc).__name__}: {str(exc).strip()[:200]})"
                    + (f"; is the Prefect server at {api} (PREFECT_API_URL) running?" if api else ""))
        if text is None:  # not a refusal we can explain: a bug
            return _report_bug(exc, debug=args.debug)
        if args.debug:
            traceback.print_exception(exc)
        _report_error("error", text, debug=False)
        return EXIT_BAD_INPUT if isinstance(exc, _PATH_ERRORS) else EXIT_ERROR


def _prefect_api_url() -> str | None:
    """The Prefect API URL in effect: the environment's PREFECT_API_URL, else the active Prefect profile's."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()  # the environment wins, as in Prefect


def _is_connection_error(exc: BaseException) -> bool:
    """A connection refused or not made (the OS's, or httpx's, which Prefect's client uses), anywhere in the chain.

    A server that is not running; a connection reset midway stays a bug report.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConnectionRefusedError) or type(exc).__name__ in ("ConnectError", "ConnectTimeout"):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _report_bug(exc: BaseException, *, debug: bool) -> int:
    """A bug: one line, the traceback under ``--debug``."""
    _report_error("unexpected error (a bug: rerun with --debug and report the traceback)", exc, debug=debug,
                  name_type=True)
    return EXIT_ERROR


# A path the user gave is missing, unreadable, unwritable, or of the wrong kind: their input (exit 2).
_PATH_ADVICE: dict[type[OSError], str] = {
    PermissionError: "check the permissions: inputs must be readable, the output and workspace folders writable",
    FileNotFoundError: ("check the path (a relative path on the command line is taken from the current directory, "
                        "one in a config file from the config's folder)"),
    FileExistsError: "a file is in the way of a folder lossval needs there; choose another path",
    NotADirectoryError: "part of the path is a file, not a folder; choose another path",
    IsADirectoryError: "a folder is where a file was expected; give the file's path",
}
_PATH_ERRORS = tuple(_PATH_ADVICE)


# The machine's file system, not the input: exit 1 with the system's words.
_MACHINE_ERRNOS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space or raise the quota",
                   errno.EROFS: "the file system is mounted read-only; choose a writable place", errno.EIO: "check the disk"}


def _os_error_text(exc: OSError) -> str | None:
    """``PATH: what the system said; what to do`` for a file-system refusal about a path; None otherwise.

    Path errors count only with the path they are about (``exc.filename``): one without it came
    from somewhere else (a socket, a library's internals) and is left to the bug report.
    """
    if not exc.filename:
        return None
    where, what = f"{exc.filename}: ", exc.strerror or str(exc)
    if not isinstance(exc, _PATH_ERRORS):
        advice = _MACHINE_ERRNOS.get(exc.errno)
        return None if advice is None else f"{where}{what}; {advice}, then rerun."
    advice = next(text for kind, text in _PATH_ADVICE.items() if isinstance(exc, kind))
    return f"{where}{what}; {advice}."


def _report_error(kind: str, exc: BaseException | str, *, debug: bool, name_type: bool = False) -> None:
    """One line on stderr (``lossval: <kind>: <message>``); the traceback first under ``--debug``."""
    if debug and isinstance(exc, BaseException):
        traceback.print_exception(exc)
    text = " ".join(str(exc).split())  # one line, whatever the message held
    if isinstance(exc, InputError):
        text += _csv_line_note(exc, text)
    print(f"lossval: {kind}: {type(exc).__name__ + ': ' if name_type else ''}{text}", file=sys.stderr)


def _csv_line_note(exc: InputError, text: str) -> str:
    """Where a row the error names is: " (row 17 is line 19 of the file)" for a CSV file; for a folder, the file
    that holds it and its row there (and line, for a CSV). "" when the error names no row of a file or folder."""
    from lossval._files import is_csv_file
    from lossval.io import csv_line_of_row, file_of_folder_row

    found = re.search(r"\bat row (\d+)\b", text)
    source = Path(exc.source) if exc.source else None
    if found is None or source is None:
        return ""
    row = int(found.group(1))
    if source.is_dir():
        located = file_of_folder_row(source, row)
        if located is None:
            return ""
        path, row_there = located
        line = csv_line_of_row(path, row_there) if is_csv_file(path) else None
        return (f" (rows count from 0 across the folder's files in name order: row {row} is row {row_there} of "
                f"{path.name}" + (f", line {line} of that file)" if line is not None else ")"))
    if not is_csv_file(source) or not source.is_file():
        return ""
    line = csv_line_of_row(source, row)
    return "" if line is None else f" (rows count from 0 below the header: row {row} is line {line} of the file)"


def _cmd_value(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from lossval.demo import check_valuation_options
    from lossval.encoding import TabularEncoder
    from lossval.io import (assign_row_ids, check_writable_folder, is_text_dtype, missing_column_hint,
                            numeric_features, read_as_data_of, read_table, sweep_orphaned_temp_files, text_columns_of,
                            unicode_twin, write_parquet)
    from lossval.splitting import MIN_TRAIN_ROWS, check_validation, first_shared_row, shared_rows, shared_rows_note
    from lossval.valuation import LossVal, describe_clipped

    # before any file is read, naming the option (as demo does): LossVal checked them after reading and encoding
    check_valuation_options(seed=args.seed, epochs=args.epochs, device=args.device)
    out = Path(args.out)
    inputs = {Path(args.data).resolve(), Path(args.validation).resolve()}
    if len(inputs) == 1:  # every row would be valued against itself
        raise InputError("--validation is the training data itself; give rows set aside from training (a trusted "
                         "split), not the data being valued.", source=args.validation)
    if args.id_column is not None and args.id_column == args.target:
        raise InputError(f"--id-column and --target are both {args.target!r}: row ids name rows, the target is what "
                         "is predicted; give the id column, or leave --id-column out.")
    for inner, folder, name in ((args.validation, args.data, "--validation"), (args.data, args.validation, "DATA")):
        if read_as_data_of(folder, inner):
            raise InputError(f"{name} lies in the folder {folder}, which is read as a whole: its rows would be on both "
                             "sides. Move it out of that folder.", source=str(inner))
    if out.resolve() in inputs:
        raise InputError("--out must not be one of the input files; inputs are never overwritten.", source=str(out))
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise InputError("--out must end in .parquet (or .pq).", source=str(out))
    if out.is_dir():
        raise InputError("--out is a directory; give the path of the .parquet file to write.", source=str(out))
    if any(p.is_dir() and out.resolve().parent == p for p in inputs):
        raise InputError("--out must not be inside an input data folder: the next run would read it as data.",
                         source=str(out))
    check_writable_folder(out.parent, what=f"--out {out}")  # before the work, not when writing its result
    sweep_orphaned_temp_files(out.parent, recursive=False, of=out.name)  # a killed earlier write of this file
    text = [args.id_column, *args.categorical]  # codes stay as written in a CSV ("02139", not 2139)
    # --validation may be a folder inside the DATA folder (data/holdout.parquet/): left out of the training rows
    numeric = numeric_features(args.numeric, target=args.target, id_column=args.id_column, exclude=args.exclude)
    idle = [c for c in args.numeric if c not in numeric]
    if idle:  # as a config's features.numeric is warned about (lossval.config): the encoder reads no such declaration
        roles = {args.target: "the --target", args.id_column: "the --id-column"}
        named = ", ".join(f"{c!r} ({roles.get(c, 'in --exclude')})" for c in idle)
        it = "it" if len(idle) == 1 else "them"
        warnings.warn(f"--numeric names {named}, which {'is no feature' if it == 'it' else 'are no features'}: "
                      f"declaring {it} numeric has no effect.", UserWarning, stacklevel=2)
    train = read_table(args.data, text_columns=text, numeric_columns=numeric, set_aside=[args.validation])
    if args.target in train.columns and is_text_dtype(train[args.target].dtype):  # "1" in training: "1" here too
        text.append(args.target)
    valid = read_table(args.validation, text_columns=[*text, *text_columns_of(train, skip=numeric)],
                       numeric_columns=numeric)  # "NA" text as in training; missing in declared numbers
    for name, df, src in (("training", train, args.data), ("validation", valid, args.validation)):
        if args.target not in df.columns:
            raise InputError(f"target column {args.target!r} not found in the {name} file"
                             + missing_column_hint(args.target, [str(c) for c in df.columns]), source=src)
    if len(train) < MIN_TRAIN_ROWS:  # as lossval run: fewer rows than this cannot be valued meaningfully
        raise InputError(f"has {len(train)} training rows; at least {MIN_TRAIN_ROWS} are needed.", source=args.data)
    row_ids = assign_row_ids(train, id_column=args.id_column, source=args.data)
    exclude = list(args.exclude) + ([args.id_column] if args.id_column else [])
    encoder = TabularEncoder(target=args.target, task=args.task, exclude=exclude or None,
                             categorical=list(args.categorical) or None, numeric=list(args.numeric) or None,
                             source=args.data).fit(train)
    missing = [c for c in encoder.feature_columns_ if c not in valid.columns]
    if missing:
        names = [str(c) for c in valid.columns]
        lookalike = next((str(c) for c in missing if unicode_twin(str(c), names) is not None), None)
        hint = (f" It has {unicode_twin(lookalike, names)!r}, which looks the same as {lookalike!r} but is written "
                "with other Unicode characters (NFD against NFC): save both files with the same form of the names."
                if lookalike is not None else "")
        raise InputError(f"validation file lacks feature column(s) {missing[:5]} that the training file has.{hint}",
                         source=args.validation)
    extra = [str(c) for c in valid.columns if c not in train.columns]
    if extra:
        warnings.warn(f"{args.validation}: column(s) {extra[:5]} are not in {args.data} and are ignored.",
                      UserWarning, stacklevel=1)
    check_validation(train[args.target], valid[args.target], task=encoder.task_, target=args.target, source=args.data,
                     validation_source=args.validation)
    shared = shared_rows(valid, train, ignore=(args.id_column,))
    if shared.any():
        warnings.warn(f"{args.validation}: {int(shared.sum())} of {len(valid)} validation rows also appear, identical, "
                      f"in {args.data}, first at validation {first_shared_row(valid, train, shared, ignore=(args.id_column,))}; "
                      "they are valued against "
                      "themselves and look valuable for no good reason. Remove them from one of the two files"
                      + shared_rows_note(valid, train, ignore=(args.id_column,)) + ".",
                      UserWarning, stacklevel=1)  # stacklevel 1: from this file, shown as a lossval warning
    X = encoder.transform(train)
    X_val = encoder.transform(valid, source=args.validation)
    # The encoder's checks of the target (labels it knows; numbers, no NaN/inf for regression), naming the file;
    # a regression target of numbers stored as text as numbers, which LossVal.fit takes.
    y = encoder.valuation_target(train[args.target], source=args.data)
    y_val = encoder.valuation_target(valid[args.target], source=args.validation)

    lv = LossVal(task=encoder.task_, epochs=args.epochs, device=args.device, seed=args.seed, verbose=not args.quiet)
    t0 = time.perf_counter()
    lv.fit(X, y, X_val, y_val, one_hot_columns=encoder.one_hot_positions(), feature_names=encoder.encoded_names_)
    seconds = time.perf_counter() - t0
    # Ids as stored (int ids stay int), so the values join back onto the data by its own column.
    ids = train[args.id_column].to_numpy() if args.id_column else row_ids.to_numpy()
    table = pd.DataFrame({"row_id": ids, "value": lv.values_})
    table["rank"] = table["value"].rank(method="first").astype("int64")  # 1 = least valuable
    if args.noise_prob:
        table["noise_prob"] = lv.noise_probability()
    write_parquet(table, out)
    if not args.quiet:
        lowest = table.nsmallest(5, "value")
        lowest.insert(1, args.target if args.target not in lowest.columns else f"data:{args.target}",
                      train[args.target].to_numpy()[lowest.index.to_numpy()])  # what the row says, to judge it by
        print(f"valued {len(table)} rows ({encoder.task_}, {X.shape[1]} encoded features, "
              f"{len(X_val)} validation rows) in {seconds:.1f}s on {lv.device_}")
        print(f"wrote {out}")
        clipped = describe_clipped(lv.clipped_counts(encoder.encoded_names_, args.target),
                                   lv.clipped_counts(encoder.encoded_names_, args.target, validation=True))
        if clipped:
            print(clipped)
        if lv.n_duplicate_rows_:
            print(f"{lv.n_duplicate_rows_} rows are identical (features and label) to another row and share its value")
        print("lowest-value rows:")
        print(lowest.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        n_neg = int(np.sum(lv.values_ <= 0))
        if n_neg:
            print(f"{n_neg} rows have weight 0 (the model learned to ignore them)")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.library_only:
        from lossval.demo import run_library_demo

        return run_library_demo(dataset=args.dataset, noise=args.noise, workspace=Path(args.workspace),
                                 epochs=args.epochs, device=args.device, seed=args.seed)
    try:
        from flows.runner import run_demo
    except ImportError as exc:
        raise LossvalError(
            f"the pipeline needs the 'pipeline' extra ({exc}); install with pip install 'lossval[pipeline]' "
            "or run `lossval demo --library-only`."
        ) from None
    return run_demo(dataset=args.dataset, noise=args.noise, workspace=Path(args.workspace),
                    epochs=args.epochs, device=args.device, seed=args.seed)


def _cmd_run(args: argparse.Namespace) -> int:
    from flows.runner import run_from_config

    return run_from_config(Path(args.config), workspace=Path(args.workspace), debug=args.debug)


def _cmd_verify(args: argparse.Namespace) -> int:
    from lossval.io import read_json
    from lossval.manifest import MANIFEST_NAME, checked_counts, content_hash_note, verify_run

    run_dir = Path(args.run_dir)
    if run_dir.name == MANIFEST_NAME and run_dir.is_file():  # the manifest itself: its run folder is meant
        run_dir = run_dir.parent
    problems = _runs_holder(run_dir) or verify_run(run_dir)
    if problems:
        for line in problems:
            print(f"lossval verify: {line}", file=sys.stderr)
        return EXIT_ERROR
    manifest = read_json(run_dir / MANIFEST_NAME)
    counts = checked_counts(manifest)
    print(f"{run_dir}: every input row is accounted for" + (f": {counts}" if counts else ""))
    note = content_hash_note(manifest)
    if note is not None:
        print(f"note: {note}")
    tracking = manifest.get("mlflow") or {}
    if tracking.get("status") == "pending":  # stopped after its data outputs, while logging or just after
        print(f"note: this run's MLflow outcome was not recorded (it stopped while logging or registering, or could "
              f"not write its manifest after that); a model may have been registered from it: look for runs tagged "
              f"lossval_run_id = '{manifest.get('run_id')}' in {tracking.get('tracking_uri', 'its MLflow store')}")
    elif tracking.get("status") not in (None, "ok"):
        print(f"note: MLflow tracking {tracking['status']} for this run; no model was registered from it")
    return EXIT_OK


def _runs_holder(run_dir: Path) -> list[str]:
    """``lossval verify``'s refusal of a workspace or a folder of runs given for a run folder, naming its newest run;
    else nothing (:func:`lossval.manifest.verify_run` checks the folder)."""
    from lossval.manifest import MANIFEST_NAME, PARTIAL_SUFFIX, unfinished

    if not run_dir.is_dir() or (run_dir / MANIFEST_NAME).exists() or unfinished(run_dir):
        return []
    holder = run_dir / "runs" if (run_dir / "runs").is_dir() else run_dir  # a workspace, or its runs/ folder
    runs = sorted((p for p in holder.iterdir() if not p.name.endswith(PARTIAL_SUFFIX)
                   and (p / MANIFEST_NAME).is_file()), key=lambda p: p.stat().st_mtime)
    if not runs and holder == run_dir:
        return []
    what = "a workspace" if holder != run_dir else "a folder of runs"
    return [f"{run_dir} is {what}, not a run folder; give one of its runs"
            + (f", e.g. {runs[-1]} (the newest)" if runs else " (it has no completed run)")]


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(console_main())
