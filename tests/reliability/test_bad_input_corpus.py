"""The bad-input corpus: every case must exit 2 with one clear line on stderr and change nothing.

Each case builds its bad input in a fresh folder (generated here, no binary blobs) and runs the
real command line in-process: ``lossval value`` for file-level problems, ``lossval run`` for
config problems (refused before Prefect starts) and, under the shared Prefect harness, for the
problems only the flow can see (splits, ids, timestamps). Checked for every case:

* exit code 2;
* stderr is exactly one line, ``lossval: error: ...``, holding the expected words (the file,
  column or row and what is wrong), and no traceback;
* no outputs are left behind (no output file, no run folder, nothing new in the workspace);
* the input files are byte-for-byte unchanged, and the MLflow registry is untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossval.cli import main
from tests.reliability._helpers import make_frame, tree_hashes, write_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # writes the bad input under a folder, returns the CLI arguments
    expect: tuple[str, ...]  # words the one stderr line must hold
    precheck_expect: tuple[str, ...] | None = None  # `lossval run`'s pre-check words, where they differ (no GX suite)


VALUE_CASES: list[Case] = []
CONFIG_CASES: list[Case] = []
FLOW_CASES: list[Case] = []


def case(table: list[Case], name: str, *expect: str, precheck: tuple[str, ...] | None = None):  # noqa: ANN201
    def register(build: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        table.append(Case(name, build, expect, precheck))
        return build
    return register


def _write(path: Path, content: pd.DataFrame | bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    elif path.suffix == ".csv":
        content.to_csv(path, index=False)
    else:
        content.to_parquet(path, index=False)
    return path


def _value_args(d: Path, train: pd.DataFrame | bytes | str | None = None, valid: pd.DataFrame | bytes | str | None = None,
                *, train_name: str = "train.csv", valid_name: str = "valid.parquet", target: str = "label",
                extra: tuple[str, ...] = ("--id-column", "id")) -> list[str]:
    """``lossval value`` arguments on a good training/validation pair, with either replaced."""
    train_path = _write(d / "in" / train_name, make_frame(120, seed=0) if train is None else train)
    valid_path = _write(d / "in" / valid_name, make_frame(40, seed=1) if valid is None else valid)
    return ["value", str(train_path), "--target", target, "--validation", str(valid_path),
            "--out", str(d / "out" / "values.parquet"), "--epochs", "1", "--quiet", *extra]


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


# ---------------------------------------------------------------- lossval value: files and columns

@case(VALUE_CASES, "empty-file", "train.csv", "empty")
def _(d: Path) -> list[str]:
    return _value_args(d, b"")


@case(VALUE_CASES, "header-only", "train.csv", "header", "no rows")
def _(d: Path) -> list[str]:
    return _value_args(d, "id,a,b,colour,label\n")


@case(VALUE_CASES, "random-bytes-parquet", "train.parquet", "not a readable parquet")
def _(d: Path) -> list[str]:
    return _value_args(d, np.random.default_rng(0).bytes(4096), train_name="train.parquet")


@case(VALUE_CASES, "truncated-parquet", "train.parquet", "truncated")
def _(d: Path) -> list[str]:
    data = _parquet_bytes(make_frame(120))
    return _value_args(d, data[: len(data) // 2], train_name="train.parquet")


@case(VALUE_CASES, "random-bytes-csv", "train.csv", "UTF-8")
def _(d: Path) -> list[str]:
    return _value_args(d, np.random.default_rng(1).bytes(4096))


@case(VALUE_CASES, "parquet-bytes-named-csv", "train.csv", "UTF-8")
def _(d: Path) -> list[str]:
    return _value_args(d, _parquet_bytes(make_frame(120)))


@case(VALUE_CASES, "zip-bytes-named-csv", "train.csv", "not a text CSV file", "NUL byte", "another format")
def _(d: Path) -> list[str]:
    # Valid UTF-8 up to the first NUL: pandas read it as a header with no rows.
    return _value_args(d, b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(1, 120)))


@case(VALUE_CASES, "latin1-csv", "train.csv", "UTF-8", "offset")
def _(d: Path) -> list[str]:
    return _value_args(d, "id,a,b,colour,label\nr1,1,2,r\xe9d,yes\n".encode("latin-1"))


@case(VALUE_CASES, "unsupported-suffix", "train.xlsx", "unsupported file type")
def _(d: Path) -> list[str]:
    return _value_args(d, b"PK\x03\x04 not really a workbook", train_name="train.xlsx")


@case(VALUE_CASES, "path-does-not-exist", "nope.csv", "no such file")
def _(d: Path) -> list[str]:
    args = _value_args(d)
    args[1] = str(d / "in" / "nope.csv")
    return args


@case(VALUE_CASES, "directory-without-data-files", "batch", "no data files")
def _(d: Path) -> list[str]:
    _write(d / "in" / "batch" / "README.txt", "data goes here\n")
    args = _value_args(d)
    args[1] = str(d / "in" / "batch")
    return args


@case(VALUE_CASES, "too-few-training-rows", "train.csv", "has 5 training rows; at least 10 are needed")
def _(d: Path) -> list[str]:
    return _value_args(d, make_frame(5, seed=0))


@case(VALUE_CASES, "mixed-schemas-in-folder", "part-2.csv", "columns differ", "'b'")
def _(d: Path) -> list[str]:
    _write(d / "in" / "batch" / "part-1.csv", make_frame(60, seed=0))
    _write(d / "in" / "batch" / "part-2.csv", make_frame(60, seed=2).rename(columns={"b": "b_renamed"}))
    args = _value_args(d)
    args[1] = str(d / "in" / "batch")
    return args


@case(VALUE_CASES, "ragged-csv-row", "train.csv", "line 3 has more values than the header's 5 column names")
def _(d: Path) -> list[str]:
    return _value_args(d, "id,a,b,colour,label\nr1,1,2,red,yes\nr2,1,2,red,yes,EXTRA\n")


@case(VALUE_CASES, "duplicate-column-names", "train.csv", "duplicate column names", "'a'")
def _(d: Path) -> list[str]:
    return _value_args(d, "id,a,a,colour,label\n" + "".join(f"r{i},1,{i},red,{'yes' if i % 2 else 'no'}\n" for i in range(30)))


@case(VALUE_CASES, "huge-number-of-columns", "train.csv", "10051 columns", "at most 10000")
def _(d: Path) -> list[str]:
    wide = pd.DataFrame(np.zeros((25, 10_050), dtype=np.int8), columns=[f"f{i}" for i in range(10_050)])
    wide["label"] = ["yes", "no"] * 12 + ["yes"]
    return _value_args(d, wide, extra=())


@case(VALUE_CASES, "missing-target-column", "train.csv", "'outcome'", "not found")
def _(d: Path) -> list[str]:
    return _value_args(d, target="outcome")


@case(VALUE_CASES, "target-all-nan", "train.csv", "'label'", "120 missing")
def _(d: Path) -> list[str]:
    return _value_args(d, make_frame(120).assign(label=None))


@case(VALUE_CASES, "target-some-nan", "train.csv", "'label'", "2 missing", "row 7")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[[7, 30], "label"] = None
    return _value_args(d, df)


@case(VALUE_CASES, "nan-in-feature", "train.csv", "'a'", "NaN", "row 12")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[12, "a"] = np.nan
    return _value_args(d, df)


@case(VALUE_CASES, "inf-in-feature", "train.parquet", "'b'", "inf", "row 3")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[3, "b"] = np.inf
    return _value_args(d, df, train_name="train.parquet")


@case(VALUE_CASES, "inf-in-validation-feature", "valid.parquet", "'a'", "inf", "row 5")
def _(d: Path) -> list[str]:
    valid = make_frame(40, seed=1)
    valid.loc[5, "a"] = -np.inf
    return _value_args(d, valid=valid)


@case(VALUE_CASES, "string-in-numeric-column", "train.csv", "'a'", "'oops'", "row 17", "--categorical a",
      "features.categorical")
def _(d: Path) -> list[str]:
    df = make_frame(120).astype({"a": object})
    df.loc[17, "a"] = "oops"
    return _value_args(d, df)


@case(VALUE_CASES, "date-column-as-feature", "train.csv", "'when'", "dates")
def _(d: Path) -> list[str]:
    df = make_frame(120).assign(when=[f"2024-01-{1 + i % 28:02d}" for i in range(120)])
    return _value_args(d, df)


@case(VALUE_CASES, "single-class", "train.csv", "'label'", "1 class")
def _(d: Path) -> list[str]:
    return _value_args(d, make_frame(120).assign(label="yes"), make_frame(40, seed=1).assign(label="yes"))


@case(VALUE_CASES, "class-missing-from-validation", "valid.parquet", "'c'", "no validation rows")
def _(d: Path) -> list[str]:
    three = ("a", "b", "c")
    valid = make_frame(60, seed=1, classes=three)
    return _value_args(d, make_frame(120, classes=three), valid[valid["label"] != "c"])


@case(VALUE_CASES, "class-missing-from-train", "valid.parquet", "'c'", "no training rows")
def _(d: Path) -> list[str]:
    return _value_args(d, make_frame(120, classes=("a", "b")), make_frame(60, seed=1, classes=("a", "b", "c")))


@case(VALUE_CASES, "validation-too-few-rows", "valid.parquet", "5 rows", "at least 10")
def _(d: Path) -> list[str]:
    return _value_args(d, valid=make_frame(40, seed=1).iloc[[0, 1, 2, 3, 39]])


@case(VALUE_CASES, "regression-target-constant", "train.csv", "'price'", "constant")
def _(d: Path) -> list[str]:
    return _value_args(d, make_frame(120).assign(price=3.5), make_frame(40, seed=1).assign(price=2.0), target="price",
                       extra=("--id-column", "id", "--exclude", "label"))


@case(VALUE_CASES, "duplicate-row-ids", "train.csv", "'id'", "duplicate ids", "'r0-5'")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[6, "id"] = "r0-5"
    return _value_args(d, df)


@case(VALUE_CASES, "empty-row-id", "train.csv", "'id'", "empty value", "row 4")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[4, "id"] = None
    return _value_args(d, df)


@case(VALUE_CASES, "validation-file-different-columns", "valid.parquet", "lacks feature column", "'b'")
def _(d: Path) -> list[str]:
    return _value_args(d, valid=make_frame(40, seed=1).rename(columns={"b": "b2"}))


@case(VALUE_CASES, "empty-validation-file", "valid.parquet", "empty")
def _(d: Path) -> list[str]:
    return _value_args(d, valid=b"")


@case(VALUE_CASES, "output-overwrites-an-input", "valid.parquet", "never overwritten")
def _(d: Path) -> list[str]:
    args = _value_args(d)
    args[args.index("--out") + 1] = args[args.index("--validation") + 1]
    return args


@case(VALUE_CASES, "validation-is-the-training-file", "train.csv", "--validation is the training data itself")
def _(d: Path) -> list[str]:
    args = _value_args(d)
    args[args.index("--validation") + 1] = args[1]
    return args


@case(VALUE_CASES, "misspelt-exclude", "train.csv", "excluded column", "'ID'", "available columns")
def _(d: Path) -> list[str]:
    return _value_args(d, extra=("--exclude", "ID"))  # would silently keep 'id' as a feature


@case(VALUE_CASES, "blank-line-before-duplicate-header", "train.csv", "duplicate column names", "'a'")
def _(d: Path) -> list[str]:
    rows = "".join(f"r{i},1,{i},red,{'yes' if i % 2 else 'no'}\n" for i in range(30))
    return _value_args(d, "\n\nid,a,a,colour,label\n" + rows)


@case(VALUE_CASES, "semicolon-separated-csv", "train.csv", "single column", "separated by ';'")
def _(d: Path) -> list[str]:
    return _value_args(d, make_frame(120).to_csv(index=False, sep=";"))


@case(VALUE_CASES, "semicolon-separated-csv-with-decimal-commas", "train.csv", "single column", "separated by ';'")
def _(d: Path) -> list[str]:
    # A European export: the decimal commas made the rows look longer than the one-name header, and the error blamed
    # a stray comma ("line 2 has more values than the header's 1 column names").
    return _value_args(d, make_frame(120).to_csv(index=False, sep=";", decimal=","))


@case(VALUE_CASES, "list-column-in-parquet", "train.parquet", "'tags'", "nested values", "row 0")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df["tags"] = [[i % 3, 1] for i in range(120)]
    return _value_args(d, df, train_name="train.parquet", extra=())  # no id column: row ids hash every column


@case(VALUE_CASES, "value-beyond-float32-in-validation", "valid.parquet", "'a'", "too far outside", "row 3")
def _(d: Path) -> list[str]:
    valid = make_frame(40, seed=1)
    valid.loc[3, "a"] = 1e40
    return _value_args(d, valid=valid)


@case(VALUE_CASES, "reserved-category-name", "train.csv", "'colour'", "'__other__'", "rename")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[5, "colour"] = "__other__"
    return _value_args(d, df)


@case(VALUE_CASES, "output-is-a-directory", "values.parquet", "is a directory")
def _(d: Path) -> list[str]:
    args = _value_args(d)
    (d / "out" / "values.parquet").mkdir(parents=True)
    return args


@case(VALUE_CASES, "output-inside-the-data-folder", "values.parquet", "inside an input data folder")
def _(d: Path) -> list[str]:
    args = _value_args(d)
    folder = d / "batch"
    _write(folder / "train.csv", make_frame(120))
    args[args.index("value") + 1] = str(folder)
    args[args.index("--out") + 1] = str(folder / "values.parquet")
    return args


# ---------------------------------------------------------------- lossval run: configuration

def _run_args(d: Path, **config) -> list[str]:
    data = _write(d / "in" / "data.csv", make_frame(120))
    cfg = write_config(d / "in" / "config.yaml", **{"data": str(data), **config})
    return ["run", str(cfg), "--workspace", str(d / "ws")]


@case(CONFIG_CASES, "config-unknown-key", "config.yaml", "unknown key", "'polcy'", "pruning")
def _(d: Path) -> list[str]:
    return _run_args(d, pruning={"polcy": "fraction"})


@case(CONFIG_CASES, "config-validation-file-is-the-data", "config.yaml", "'validation.path' and 'data' are the same file")
def _(d: Path) -> list[str]:
    return _run_args(d, validation={"strategy": "file", "path": str(d / "in" / "." / "data.csv")})  # spelt otherwise


@case(CONFIG_CASES, "config-unknown-top-level-key", "config.yaml", "unknown key", "'lossvall'")
def _(d: Path) -> list[str]:
    return _run_args(d, lossvall={"epochs": 2})


@case(CONFIG_CASES, "config-wrong-type", "config.yaml", "'lossval.epochs'", "must be int", "'ten'")
def _(d: Path) -> list[str]:
    return _run_args(d, lossval={"epochs": "ten"})


@case(CONFIG_CASES, "config-section-not-a-mapping", "config.yaml", "section 'pruning' must be a mapping")
def _(d: Path) -> list[str]:
    return _run_args(d, pruning=[0.1, 0.2])


@case(CONFIG_CASES, "config-negative-prune-fraction", "config.yaml", "'pruning.max_prune_fraction'", "-0.1")
def _(d: Path) -> list[str]:
    return _run_args(d, pruning={"max_prune_fraction": -0.1})


@case(CONFIG_CASES, "config-prune-fraction-above-1", "config.yaml", "'pruning.max_prune_fraction'", "1.5")
def _(d: Path) -> list[str]:
    return _run_args(d, pruning={"max_prune_fraction": 1.5})


@case(CONFIG_CASES, "config-not-yaml", "config.yaml", "not valid YAML", "line 3")
def _(d: Path) -> list[str]:
    args = _run_args(d)
    Path(args[1]).write_text("data: data.csv\ntarget: [label\nseed: 1\n")
    return args


@case(CONFIG_CASES, "config-missing-target", "config.yaml", "'target' is required")
def _(d: Path) -> list[str]:
    args = _run_args(d)
    Path(args[1]).write_text(f"data: {d / 'in' / 'data.csv'}\n")
    return args


@case(CONFIG_CASES, "config-file-not-found", "missing.yaml", "not found")
def _(d: Path) -> list[str]:
    args = _run_args(d)
    args[1] = str(d / "in" / "missing.yaml")
    return args


@case(CONFIG_CASES, "config-data-path-does-not-exist", "nope.csv", "no such file")
def _(d: Path) -> list[str]:
    return _run_args(d, data=str(d / "in" / "nope.csv"))


@case(CONFIG_CASES, "config-validation-file-does-not-exist", "valid-missing.csv", "no such file")
def _(d: Path) -> list[str]:
    return _run_args(d, validation={"strategy": "file", "path": str(d / "in" / "valid-missing.csv")})


@case(CONFIG_CASES, "config-target-misspelt", "data.csv", "'lable'", "config key 'target'", "did you mean 'label'?")
def _(d: Path) -> list[str]:
    return _run_args(d, target="lable")


@case(CONFIG_CASES, "config-validation-column-missing", "data.csv", "'trusted'", "config key 'validation.column'")
def _(d: Path) -> list[str]:
    return _run_args(d, validation={"strategy": "column", "column": "trusted"})


@case(CONFIG_CASES, "config-categorical-misspelt", "data.csv", "'colur'", "config key 'features.categorical'",
      "did you mean 'colour'?")
def _(d: Path) -> list[str]:
    return _run_args(d, features={"categorical": ["colur"]})


@case(CONFIG_CASES, "config-device-this-machine-lacks", "config.yaml", "'lossval.device'", "no CUDA GPU")
def _(d: Path) -> list[str]:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    return _run_args(d, lossval={"epochs": 2, "device": "cuda"})


@case(CONFIG_CASES, "workspace-is-a-file", "ws-file", "must be a folder")
def _(d: Path) -> list[str]:
    args = _run_args(d)
    _write(d / "in" / "ws-file", "not a folder\n")
    return args[:-1] + [str(d / "in" / "ws-file")]


# ---------------------------------------------------------------- lossval run: what only the flow sees

def _flow_config(d: Path, data: pd.DataFrame | bytes | str | None = None, *, valid: pd.DataFrame | None = None, **config) -> list[str]:
    data_path = _write(d / "in" / "data.csv", make_frame(120) if data is None else data)
    if valid is not None:
        config["validation"] = {"strategy": "file", "path": str(_write(d / "in" / "valid.csv", valid))}
    cfg = write_config(d / "in" / "config.yaml", **{"data": str(data_path), "dataset": "corpus", **config})
    return ["run", str(cfg)]


@case(FLOW_CASES, "flow-duplicate-row-ids", "data.csv", "'id'", "duplicate ids", "'r0-9'")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[10, "id"] = "r0-9"
    return _flow_config(d, df)


@case(FLOW_CASES, "flow-constant-regression-test-target", "test.csv", "'label'", "constant", "test_path")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df["label"] = (df["a"] * 2.0 + df["b"]).round(4)
    test = make_frame(30, seed=3).assign(label=2.0)  # R^2 is 0 for any model: the gate could not compare
    return _flow_config(d, df, test_path=str(_write(d / "in" / "test.csv", test)), task="regression")


@case(FLOW_CASES, "flow-misspelt-exclude", "data.csv", "'Colour'", "config key 'features.exclude'", "did you mean 'colour'?")
def _(d: Path) -> list[str]:
    return _flow_config(d, features={"exclude": ["Colour"]})


@case(FLOW_CASES, "flow-reserved-row-id-column", "data.csv", "'row_id'", "reserves")
def _(d: Path) -> list[str]:
    return _flow_config(d, make_frame(120).assign(row_id=range(120)))


@case(FLOW_CASES, "flow-too-few-rows", "data.csv", "has 15 data row(s)", "needs at least 20")
def _(d: Path) -> list[str]:
    return _flow_config(d, make_frame(15))


@case(FLOW_CASES, "flow-target-mostly-empty", "data.csv", "expect_column_values_to_not_be_null", "'label'",
      precheck=("data.csv", "target column 'label' has 91 empty value(s), first at row 0"))
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[:90, "label"] = None
    return _flow_config(d, df)


@case(FLOW_CASES, "flow-inf-in-feature-names-the-input-row", "data.csv", "'a'", "inf", "row 77")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[77, "a"] = np.inf
    return _flow_config(d, df)


@case(FLOW_CASES, "flow-string-in-numeric-column", "data.csv", "'b'", "'n/a?'", "row 50")
def _(d: Path) -> list[str]:
    df = make_frame(120).astype({"b": object})
    df.loc[50, "b"] = "n/a?"
    return _flow_config(d, df)


@case(FLOW_CASES, "flow-semicolon-separated-data", "data.csv", "single column", "separated by ';'")
def _(d: Path) -> list[str]:  # not "column 'label' not found": the start-up check leaves this header to the reader
    return _flow_config(d, make_frame(120).to_csv(index=False, sep=";"))


@case(FLOW_CASES, "flow-empty-data-file", "data.csv", "file is empty (0 bytes)")
def _(d: Path) -> list[str]:
    return _flow_config(d, b"")


@case(FLOW_CASES, "flow-metric-limit-of-the-other-task", "config.yaml", "names ['rmse']",
      "which a classification run does not report (the task was inferred from the target")
def _(d: Path) -> list[str]:  # refused before valuation, not by the gate after a whole run
    return _flow_config(d, gate={"metric_limits": {"rmse": 0.1}})


@case(FLOW_CASES, "flow-single-class", "data.csv", "'label'", "1 class")
def _(d: Path) -> list[str]:
    return _flow_config(d, make_frame(120).assign(label="yes"))


@case(FLOW_CASES, "flow-regression-target-constant", "data.csv", "'price'", "constant")
def _(d: Path) -> list[str]:
    return _flow_config(d, make_frame(120).assign(price=4.25).drop(columns="label"), target="price")


@case(FLOW_CASES, "flow-class-missing-from-validation-file", "valid.csv", "'c'", "no validation rows")
def _(d: Path) -> list[str]:
    three = ("a", "b", "c")
    valid = make_frame(60, seed=1, classes=three)
    return _flow_config(d, make_frame(120, classes=three), valid=valid[valid["label"] != "c"])


@case(FLOW_CASES, "flow-class-missing-from-train", "valid.csv", "'c'", "not among the classes")
def _(d: Path) -> list[str]:
    return _flow_config(d, make_frame(120, classes=("a", "b")), valid=make_frame(60, seed=1, classes=("a", "b", "c")))


@case(FLOW_CASES, "flow-rare-class-gets-no-validation-rows", "data.csv", "'rare'", "no validation rows")
def _(d: Path) -> list[str]:
    df = make_frame(120)
    df.loc[[3], "label"] = "rare"  # 1 row: it cannot be in both splits (2 rows would give one to each)
    return _flow_config(d, df)


@case(FLOW_CASES, "flow-validation-split-too-small", "data.csv", "'stratified' validation split has 6 rows")
def _(d: Path) -> list[str]:
    return _flow_config(d, validation={"strategy": "stratified", "fraction": 0.05})


@case(FLOW_CASES, "flow-validation-file-too-small", "valid.csv", "has 4 rows", "at least 10")
def _(d: Path) -> list[str]:
    return _flow_config(d, valid=make_frame(4, seed=1))


@case(FLOW_CASES, "flow-validation-file-different-columns", "valid.csv", "lacks column", "'b'")
def _(d: Path) -> list[str]:
    return _flow_config(d, valid=make_frame(40, seed=1).rename(columns={"b": "B"}))


@case(FLOW_CASES, "flow-nan-in-validation-file", "valid.csv", "'a'", "NaN", "row 3")
def _(d: Path) -> list[str]:
    valid = make_frame(40, seed=1)
    valid.loc[3, "a"] = np.nan
    return _flow_config(d, valid=valid)


@case(FLOW_CASES, "flow-latest-timestamp-does-not-parse", "data.csv", "'ts'", "do not parse", "row 9", "'last tuesday'")
def _(d: Path) -> list[str]:
    df = make_frame(120).assign(ts=[f"2024-02-{1 + i % 28:02d}T10:00:00" for i in range(120)])
    df.loc[9, "ts"] = "last tuesday"
    return _flow_config(d, df, validation={"strategy": "latest", "timestamp_column": "ts", "fraction": 0.2})


@case(FLOW_CASES, "flow-trusted-column-not-boolean", "data.csv", "'trusted'", "boolean", "'maybe'")
def _(d: Path) -> list[str]:
    df = make_frame(120).assign(trusted=["yes", "no", "no", "no", "no"] * 24)
    df.loc[8, "trusted"] = "maybe"
    return _flow_config(d, df, validation={"strategy": "column", "column": "trusted"})


# ---------------------------------------------------------------- the checks

def _check_handled(case_: Case, code: int, err: str, out: str, expect_out_empty: bool = True) -> None:
    assert code == 2, f"{case_.name}: exit {code}, stderr {err!r}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{case_.name}: expected one line on stderr, got {lines}"
    assert lines[0].startswith("lossval: error: "), lines[0]
    for word in case_.expect:
        assert word in lines[0], f"{case_.name}: {word!r} not in {lines[0]!r}"
    if expect_out_empty:
        assert out == "", out


@pytest.mark.corpus
@pytest.mark.parametrize("case_", VALUE_CASES + CONFIG_CASES, ids=lambda c: c.name)
def test_bad_input_is_refused_cleanly(case_: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = case_.build(tmp_path)
    inputs = tree_hashes(tmp_path / "in")
    code = main(argv)
    captured = capsys.readouterr()
    _check_handled(case_, code, captured.err, captured.out)
    assert tree_hashes(tmp_path / "in") == inputs  # inputs untouched
    assert tree_hashes(tmp_path / "out") == {}  # no output, not even a temporary file
    assert not (tmp_path / "ws").exists()  # config problems: refused before anything is created
    assert not list(tmp_path.rglob("mlflow.db"))


def test_a_column_declared_categorical_is_encoded_not_refused(tmp_path: Path) -> None:
    # The fix the message above offers for a code-like column: declare it categorical.
    df = make_frame(120).astype({"a": object})
    df.loc[17, "a"] = "oops"
    argv = _value_args(tmp_path, df, extra=("--id-column", "id", "--categorical", "a"))
    assert main(argv) == 0
    assert len(pd.read_parquet(tmp_path / "out" / "values.parquet")) == 120


def _good_run(root: Path) -> Path:
    """A workspace holding one completed run (so the registry has a version to protect)."""
    ws = root / "ws"
    data = _write(root / "good" / "data.csv", make_frame(120, seed=5))
    cfg = write_config(root / "good" / "config.yaml", data=str(data), dataset="corpus")
    assert main(["run", str(cfg), "--workspace", str(ws)]) == 0
    assert len(list((ws / "runs").iterdir())) == 1
    return ws


@pytest.fixture(scope="module")
def flow_workspace(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    return _good_run(tmp_path_factory.mktemp("corpus-flow"))


@pytest.mark.corpus
@pytest.mark.flow
@pytest.mark.parametrize("path", ["flow", "precheck"])
@pytest.mark.parametrize("case_", FLOW_CASES, ids=lambda c: c.name)
def test_bad_input_fails_the_flow_cleanly(case_: Case, path: str, flow_workspace: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], prefect_console, monkeypatch) -> None:
    # "flow": the stages themselves refuse it (data too large for `lossval run`'s pre-check); "precheck": small data,
    # refused before Prefect starts (flows.runner.check_small_data), with the same words but where the raw-data GX
    # suite, which the pre-check does not run, would have spoken first.
    import dataclasses

    import flows.runner

    if path == "flow":
        monkeypatch.setattr(flows.runner, "PRECHECK_MAX_BYTES", -1)
    elif case_.precheck_expect is not None:
        case_ = dataclasses.replace(case_, expect=case_.precheck_expect)
    argv = case_.build(tmp_path) + ["--workspace", str(flow_workspace)]
    inputs = tree_hashes(tmp_path / "in")
    workspace = tree_hashes(flow_workspace)  # runs, snapshots, values, mlflow.db (the registry)
    code = main(argv)
    captured = capsys.readouterr()
    # What a user's terminal shows: our stderr plus Prefect's console handler.
    _check_handled(case_, code, captured.err + prefect_console.getvalue(), captured.out)
    assert tree_hashes(tmp_path / "in") == inputs
    assert tree_hashes(flow_workspace) == workspace  # nothing left behind, registry unchanged


@pytest.mark.flow
def test_bad_input_leaves_no_new_workspace_behind(tmp_path: Path, prefect_harness: None, monkeypatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # --workspace names folders that do not exist yet: data refused at ingest must not leave them, empty, behind.
    case_ = FLOW_CASES[0]
    ws = tmp_path / "new" / "ws"
    code = main(case_.build(tmp_path) + ["--workspace", str(ws)])
    assert code == 2, capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # A folder that existed before is never removed, even named through '..' from a missing one.
    (tmp_path / "existing").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(case_.build(tmp_path) + ["--workspace", "missing/../existing"]) == 2
    assert (tmp_path / "existing").is_dir()


@pytest.mark.flow
def test_bad_input_through_a_real_process_prints_one_line(flow_workspace: Path, tmp_path: Path) -> None:
    """The same as above in a separate `python -m lossval.cli` process: the terminal a user sees."""
    from prefect.settings import PREFECT_API_URL

    case_ = FLOW_CASES[0]
    argv = case_.build(tmp_path) + ["--workspace", str(flow_workspace)]
    workspace = tree_hashes(flow_workspace)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    proc = subprocess.run([sys.executable, "-m", "lossval.cli", *argv], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=env)
    _check_handled(case_, proc.returncode, proc.stderr, proc.stdout)
    assert tree_hashes(flow_workspace) == workspace


def test_debug_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = VALUE_CASES[0].build(tmp_path)
    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("lossval: error: ")
