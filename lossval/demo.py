"""Demo data: a real dataset shipped with scikit-learn, with known label noise injected.

Used by ``lossval demo`` (library-only and pipeline versions) so both show how well the
pruned rows match the rows whose labels were corrupted.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossval.errors import ConfigError, InputError
from lossval.io import write_json, write_parquet

__all__ = ["DemoData", "check_demo_options", "check_valuation_options", "demo_data_dir", "detection_scores", "make_demo_data", "run_library_demo"]

_DEMO_SETS = {"breast_cancer": "cls_breast_cancer", "digits": "cls_digits", "diabetes": "reg_diabetes",
              "fried": "reg_fried", "2dplanes": "cls_2dplanes"}
# 2dplanes' features take 2 or 3 values each, so random validation and test rows repeat training rows' features (with
# seed 0, 8 of 800 did, and 5 test rows repeated validation rows): the split stage warned three times about files the
# user never wrote. The demo draws spare rows and skips those; the other sets keep the rows they always had.
_SPARE_ROWS = {"2dplanes": 500}


@dataclass(frozen=True)
class DemoData:
    """Paths of a generated demo dataset.

    Attributes:
        train_path: parquet of the training rows (labels partly corrupted), with an ``id`` column.
        validation_path: parquet of trusted, clean validation rows.
        test_path: parquet of clean test rows.
        truth_path: JSON with the ids of the corrupted rows (never read by the pipeline).
        target: target column name. task: classification or regression.
        noisy_ids: ids of the corrupted training rows.
    """

    train_path: Path
    validation_path: Path
    test_path: Path
    truth_path: Path
    target: str
    task: str
    noisy_ids: frozenset[str]


def detection_scores(report: dict) -> str:
    """The demo's "(precision, recall, F1)" of a :func:`lossval.metrics.detection_report`; with no noise
    injected (``--noise 0``) there is nothing to score, and it says so instead of printing zeros."""
    if not report["noisy"]:
        return "(no rows were corrupted, so there is nothing to score: every pruned row was a clean one)"
    return f"(precision {report['precision']:.2f}, recall {report['recall']:.2f}, F1 {report['f1']:.2f})"


def check_demo_options(*, dataset: str, noise: float, seed: int = 0, epochs: int = 1, device: str = "auto") -> None:
    """The options of ``lossval demo``, before any work starts; raises :class:`InputError` (exit 2) naming the option.

    A negative ``--seed`` was reported as a lossval bug, and ``--epochs 0`` or a device this
    machine lacks only after the Prefect server had started and the demo data was written (40 s).
    """
    if dataset not in _DEMO_SETS:
        raise InputError(f"unknown demo dataset {dataset!r}; choose one of {sorted(_DEMO_SETS)}.")
    if not 0.0 <= noise <= 0.5:
        raise InputError(f"--noise must be between 0 and 0.5, got {noise}.")
    check_valuation_options(seed=seed, epochs=epochs, device=device)


def check_valuation_options(*, seed: int = 0, epochs: int = 1, device: str = "auto") -> None:
    """``--seed``, ``--epochs`` and ``--device`` of ``lossval demo`` and ``lossval value``, before any file is read or
    written; raises :class:`InputError` (exit 2) naming the option."""
    from lossval._torchutil import resolve_device
    from lossval.valuation import MAX_EPOCHS

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InputError(f"--seed must be an integer in [0, 2**32), got {seed}.")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        raise InputError(f"--epochs must be an integer between 1 and {MAX_EPOCHS}, got {epochs}.")
    try:
        resolve_device(device)
    except ConfigError as exc:
        raise InputError(f"--device: {exc}") from None


def demo_data_dir(workspace: Path, *, dataset: str, noise: float, seed: int) -> Path:
    """Where the demo writes its data for these options: ``demo-data/breast_cancer-noise0.1-seed0``.

    One folder per (dataset, noise, seed), so a demo run with other options never rewrites the
    files an earlier run's config (logged with it to MLflow) names.
    """
    return Path(workspace) / "demo-data" / f"{dataset}-noise{noise:g}-seed{seed}"


def make_demo_data(*, dataset: str, noise: float, seed: int, out_dir: Path) -> DemoData:
    """Write a train/validation/test split of a shipped dataset with ``noise`` of the train labels corrupted.

    Classification labels are replaced by another class; regression targets by another
    row's target. Validation and test rows are clean (the trusted split). 2dplanes' validation and test rows
    repeat no training row's features, and its test rows no validation row's (spare rows are drawn for that).

    Args:
        dataset: ``breast_cancer``, ``digits``, ``diabetes``, ``fried`` or ``2dplanes``.
        noise: Fraction of training rows to corrupt, in [0, 0.5].
        seed: Seed of the split and the corruption.
        out_dir: Folder for the files (created).
    """
    from lossval.datasets import inject_noise, load_dataset

    check_demo_options(dataset=dataset, noise=noise, seed=seed)
    spare = _SPARE_ROWS.get(dataset, 0)
    ds = load_dataset(_DEMO_SETS[dataset], n=2000 + spare if dataset in ("fried", "2dplanes") else None, seed=seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds.y))
    n_rows = len(order) - spare
    n_train, n_valid = int(0.6 * n_rows), int(0.2 * n_rows)
    if spare:
        parts = _parts_without_repeats(ds.X, order, sizes=(n_train, n_valid, n_rows - n_train - n_valid))
    else:
        parts = {"train": order[:n_train], "validation": order[n_train:n_train + n_valid],
                 "test": order[n_train + n_valid:]}
    target = "diagnosis" if dataset == "breast_cancer" else "target"
    names = [str(n).replace(" ", "_") for n in ds.feature_names]

    def frame(rows: np.ndarray, X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(X, columns=names)
        if dataset == "breast_cancer":
            df[target] = np.where(y == 0, "malignant", "benign")  # string labels, as in real tables
        else:
            df[target] = y
        df.insert(0, "id", [f"{dataset}-{i:05d}" for i in rows])
        return df

    tr = parts["train"]
    X_noisy, y_noisy, mask = inject_noise(ds.X[tr], ds.y[tr], kind="label", fraction=noise, task=ds.task, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = frame(tr, X_noisy, y_noisy)
    noisy_ids = frozenset(train.loc[mask, "id"].tolist())
    paths = {
        "train": write_parquet(train, out_dir / "train.parquet"),
        "validation": write_parquet(frame(parts["validation"], ds.X[parts["validation"]], ds.y[parts["validation"]]), out_dir / "validation.parquet"),
        "test": write_parquet(frame(parts["test"], ds.X[parts["test"]], ds.y[parts["test"]]), out_dir / "test.parquet"),
    }
    truth = write_json({"dataset": dataset, "noise": noise, "seed": seed, "noisy_ids": sorted(noisy_ids)}, out_dir / "truth.json")
    return DemoData(paths["train"], paths["validation"], paths["test"], truth, target, ds.task, noisy_ids)


def _parts_without_repeats(X: np.ndarray, order: np.ndarray, *, sizes: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Train, validation and test rows taken in ``order``, skipping any validation or test row whose features equal
    those of a training row, or (for test) of a validation row.

    Args:
        X: Features, shape ``(n, d)``. order: a permutation of ``range(n)``.
        sizes: Rows of train, validation and test; the rows of ``order`` left over are not used.

    Returns:
        ``{"train": ..., "validation": ..., "test": ...}``, arrays of row indices into ``X``.
    """
    n_train, n_valid, n_test = sizes
    seen = {X[i].tobytes() for i in order[:n_train]}
    parts = {"train": order[:n_train]}
    rest = iter(order[n_train:])
    for name, size in (("validation", n_valid), ("test", n_test)):
        taken = []
        for i in rest:
            if X[i].tobytes() not in seen:
                taken.append(i)
                if len(taken) == size:
                    break
        if len(taken) < size:  # not reached: seeds 0-299 of 2dplanes used at most 42 of its 500 spare rows
            raise RuntimeError(f"the demo drew too few spare rows for a {name} split of {size} rows without "
                               "repeated training rows; this is a lossval bug, please report it.")
        parts[name] = np.asarray(taken, dtype=order.dtype)
        seen.update(X[i].tobytes() for i in taken)
    return parts


def run_library_demo(*, dataset: str, noise: float, workspace: Path, epochs: int, device: str, seed: int) -> int:
    """Value and prune the demo data with the library alone; print how well pruning found the noise."""
    from lossval.encoding import TabularEncoder
    from lossval.metrics import detection_report
    from lossval.pruning import TwoMeansPolicy, prune
    from lossval.valuation import LossVal

    check_demo_options(dataset=dataset, noise=noise, seed=seed, epochs=epochs, device=device)
    data = make_demo_data(dataset=dataset, noise=noise, seed=seed,
                          out_dir=demo_data_dir(workspace, dataset=dataset, noise=noise, seed=seed))
    train = pd.read_parquet(data.train_path)
    valid = pd.read_parquet(data.validation_path)
    enc = TabularEncoder(target=data.target, task=data.task, exclude=["id"]).fit(train)
    t0 = time.perf_counter()
    lv = LossVal(task=data.task, epochs=epochs, device=device, seed=seed).fit(
        enc.transform(train), train[data.target].to_numpy(), enc.transform(valid), valid[data.target].to_numpy(),
        one_hot_columns=enc.one_hot_positions())
    seconds = time.perf_counter() - t0
    labels = train[data.target].to_numpy() if data.task == "classification" else None
    decision = prune(lv.values_, policy=TwoMeansPolicy(), max_prune_fraction=0.2, labels=labels)
    noisy = train["id"].isin(data.noisy_ids).to_numpy()
    report = detection_report(~decision.keep, noisy)
    out = data.train_path.parent / "values.parquet"
    write_parquet(pd.DataFrame({"row_id": train["id"], "value": lv.values_, "kept": decision.keep}), out)
    print(f"{dataset}: valued {len(train)} rows in {seconds:.1f}s on {lv.device_}; "
          f"pruned {report['flagged']} rows (two-means, capped at 20%)")
    print(f"injected label noise: {report['noisy']} rows; pruned rows that were noisy: {report['true_positives']} "
          f"{detection_scores(report)}")
    print(f"values: {out}", file=sys.stdout)
    return 0
