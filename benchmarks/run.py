"""Detection quality and pruning benefit of LossVal and its peers on the seven benchmark datasets.

For every (dataset, noise kind, noise fraction, seed) the training split gets a known noisy
subset (:func:`lossval.datasets.inject_noise`); each method values the training rows; the
lowest values should be the noisy rows. Per (cell, validation setting, method) it records
the F1 of the two-means lower cluster and of the lowest ``p``%, the number flagged, the share
of negative values and seconds. For the LossVal methods it also retrains the plain MLP
without the flagged rows and reports how much of the before/oracle gap that recovers.

Usage::

    python -m benchmarks.run --jobs 2             # full suite: 7 datasets, noise 5/10/15/20%, 3 seeds, both valid settings
    python -m benchmarks.run --fractions 0.1      # the 10% column only (the reference figures' setting)
    python -m benchmarks.run --quick              # 2 datasets, label+feature, clean valid, 1 seed
    python -m benchmarks.run --only reg_fried --methods lossval,plain_loss
    python -m benchmarks.run --variant wlr03:weight_lr=0.03 --variant lc0:label_cost=0.0

Writes ``quality.json`` and ``quality.md`` (atomically) under ``--out-dir``
(default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Config", "parse_args", "run_chunk", "main", "REFERENCE_CLEAN", "REFERENCE_NOISY_VALID"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASE_METHODS = ("lossval", "lossval_paper", "loss_mixture", "plain_loss", "plain_loss_paper_arch",
                "cleanlab_label_quality", "cleanlab_knn_shapley")
QUICK_DATASETS = ("cls_breast_cancer", "reg_diabetes")
SUITE_FRACTIONS = (0.05, 0.1, 0.15, 0.2)  # the issue's noise rates
PLAIN_LAST_EPOCHS = 5
VALID_NOISE_SEED_OFFSET = 1000  # the noisy validation split uses seed + this
MIN_PRUNE_GAP = 0.005  # accuracy / R^2 points; below it "gap recovered" is a ratio of noise

# Reference figures of the public LossVal code (twibiral/LossVal @59f4b18, paper settings) and
# of plain-loss on this suite, 10% noise, means over seeds 0-2, as the team measured them (the
# "LossVal reference anchor" table of shared/reference/lossval_reference_suite.md, a team file
# outside this repository; the figures are copied here so the comparison needs nothing else).
# (dataset, noise) -> (LossVal f1_2means, LossVal f1_top10, plain f1_2means, plain f1_top10)
REFERENCE_CLEAN: dict[tuple[str, str], tuple[float, float, float, float]] = {
    ("cls_2dplanes", "feature"): (0.214, 0.147, 0.157, 0.157),
    ("cls_2dplanes", "label"): (0.456, 0.527, 0.425, 0.427),
    ("cls_2dplanes", "mixed"): (0.297, 0.350, 0.271, 0.283),
    ("cls_breast_cancer", "feature"): (0.201, 0.118, 0.000, 0.069),
    ("cls_breast_cancer", "label"): (0.699, 0.824, 0.599, 0.657),
    ("cls_breast_cancer", "mixed"): (0.385, 0.471, 0.380, 0.471),
    ("cls_digits", "feature"): (0.218, 0.162, 0.106, 0.174),
    ("cls_digits", "label"): (0.609, 0.860, 0.767, 0.785),
    ("cls_digits", "mixed"): (0.324, 0.514, 0.446, 0.480),
    ("cls_fried", "feature"): (0.193, 0.190, 0.167, 0.183),
    ("cls_fried", "label"): (0.489, 0.663, 0.481, 0.503),
    ("cls_fried", "mixed"): (0.357, 0.463, 0.378, 0.407),
    ("reg_2dplanes", "feature"): (0.224, 0.173, 0.134, 0.123),
    ("reg_2dplanes", "label"): (0.309, 0.427, 0.296, 0.417),
    ("reg_2dplanes", "mixed"): (0.283, 0.303, 0.157, 0.260),
    ("reg_diabetes", "feature"): (0.163, 0.064, 0.034, 0.038),
    ("reg_diabetes", "label"): (0.239, 0.218, 0.209, 0.308),
    ("reg_diabetes", "mixed"): (0.232, 0.154, 0.140, 0.141),
    ("reg_fried", "feature"): (0.338, 0.397, 0.051, 0.283),
    ("reg_fried", "label"): (0.464, 0.620, 0.197, 0.460),
    ("reg_fried", "mixed"): (0.406, 0.530, 0.111, 0.423),
}
# Same file, the reference's "paper" setting (validation noised too) = our "noisy" setting:
# (dataset, noise) -> (LossVal f1_2means, LossVal f1_top10); plain is the same in both settings.
REFERENCE_NOISY_VALID: dict[tuple[str, str], tuple[float, float]] = {
    ("cls_2dplanes", "feature"): (0.213, 0.140), ("cls_2dplanes", "label"): (0.456, 0.527),
    ("cls_2dplanes", "mixed"): (0.284, 0.327), ("cls_breast_cancer", "feature"): (0.198, 0.147),
    ("cls_breast_cancer", "label"): (0.699, 0.824), ("cls_breast_cancer", "mixed"): (0.391, 0.471),
    ("cls_digits", "feature"): (0.218, 0.193), ("cls_digits", "label"): (0.609, 0.860),
    ("cls_digits", "mixed"): (0.442, 0.505), ("cls_fried", "feature"): (0.191, 0.217),
    ("cls_fried", "label"): (0.489, 0.663), ("cls_fried", "mixed"): (0.362, 0.457),
    ("reg_2dplanes", "feature"): (0.231, 0.187), ("reg_2dplanes", "label"): (0.309, 0.427),
    ("reg_2dplanes", "mixed"): (0.278, 0.303), ("reg_diabetes", "feature"): (0.155, 0.090),
    ("reg_diabetes", "label"): (0.239, 0.218), ("reg_diabetes", "mixed"): (0.243, 0.154),
    ("reg_fried", "feature"): (0.338, 0.387), ("reg_fried", "label"): (0.464, 0.620),
    ("reg_fried", "mixed"): (0.410, 0.537),
}
# Same file, "LossVal weight stats": share of negative weights and #flagged vs #noisy.
REFERENCE_FRAC_NEGATIVE = 0.1376
REFERENCE_FLAGGED, REFERENCE_NOISY = 242.2, 81.0


@dataclass
class Config:
    """What one benchmark run covers (see ``--help``)."""

    datasets: list[str]
    noise_kinds: list[str]
    fractions: list[float]
    valid_settings: list[str]
    seeds: list[int]
    methods: list[str]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int | None = None
    out_dir: str = str(RESULTS_DIR)
    jobs: int = 1
    quick: bool = False
    from_json: list[str] = field(default_factory=list)
    target_noise: float | None = None  # generated sets' target noise sd; None = the suite's (lossval.datasets)


# ---------------------------------------------------------------------------- arguments
def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low == "none":
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse ``NAME:kw=val,kw=val`` into ``(NAME, {kw: val})`` (values: int, float, None, bool, str)."""
    name, _, body = spec.partition(":")
    name = name.strip()
    if not name or name in BASE_METHODS:
        raise SystemExit(f"--variant {spec!r}: give a new method name before ':' (not one of {BASE_METHODS})")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {spec!r}: {item!r} is not kw=value")
        kwargs[key.strip()] = _parse_value(value)
    return name, kwargs


def _noise_sd(text: str) -> float:
    """argparse type of --target-noise: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0.0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> Config:
    """Turn command-line arguments into a :class:`Config`."""
    from lossval.datasets import DATASETS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 datasets, label+feature noise, clean validation, 1 seed (< 2 min)")
    parser.add_argument("--only", default=None, help="comma list of datasets to run (filter)")
    parser.add_argument("--noise", default=None, help="comma list of noise kinds (label,feature,mixed)")
    parser.add_argument("--valid", default=None, help="comma list of validation settings (clean,noisy)")
    parser.add_argument("--fractions", default=None,
                        help="comma list of noise fractions (default 0.05,0.1,0.15,0.2, the suite's; quick: 0.1)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default 3; quick 1)")
    parser.add_argument("--methods", default=None, help=f"comma list (filter) of {', '.join(BASE_METHODS)} and variants")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:kw=val,...",
                        help="add a method: LossVal defaults with these constructor kwargs")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs of every trained model")
    parser.add_argument("--target-noise", type=_noise_sd, default=None, metavar="SD",
                        help="standard deviation of the generated sets' target noise (fried, 2dplanes; default: the "
                             "suite's, lossval.datasets.FRIED_NOISE_STD and PLANES_NOISE_STD); to check how the "
                             "figures depend on the data")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (1 thread each; default 1)")
    parser.add_argument("--out-dir", default=None,
                        help=f"where quality.json/.md go (default {RESULTS_DIR.name}/ of benchmarks/, whose files the README "
                             f"quotes; --quick: {RESULTS_DIR.name}/quick/, so a quick run never replaces them)")
    parser.add_argument("--from-json", default=None, metavar="PATH[,PATH]",
                        help="run nothing: merge these quality.json files and re-render json + md")
    args = parser.parse_args(argv)

    datasets = list(QUICK_DATASETS) if args.quick else list(DATASETS)
    noise_kinds = ["label", "feature"] if args.quick else ["label", "feature", "mixed"]
    valid = ["clean"] if args.quick else ["clean", "noisy"]
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    if args.only:
        wanted = [d.strip() for d in args.only.split(",") if d.strip()]
        unknown = [d for d in wanted if d not in DATASETS]
        if unknown:
            raise SystemExit(f"--only: unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
        datasets = wanted
    if args.noise:
        noise_kinds = [k.strip() for k in args.noise.split(",") if k.strip()]
    if args.valid:
        valid = [v.strip() for v in args.valid.split(",") if v.strip()]
        if any(v not in ("clean", "noisy") for v in valid):
            raise SystemExit("--valid takes clean and/or noisy")
    variants = dict(parse_variant(spec) for spec in args.variant)
    methods = list(BASE_METHODS) + list(variants)
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in methods]
        if unknown:
            raise SystemExit(f"--methods: unknown {unknown}; choose from {methods}")
        methods = [m for m in methods if m in wanted]
    if args.fractions is None:
        fractions = [0.1] if args.quick else list(SUITE_FRACTIONS)
    else:
        try:
            fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
        except ValueError:
            raise SystemExit(f"--fractions: expected numbers like 0.05,0.1, got {args.fractions!r}") from None
        if not fractions or any(not 0.0 < f < 1.0 for f in fractions):
            raise SystemExit(f"--fractions: each fraction must be in (0, 1), got {args.fractions!r}")
    return Config(datasets=datasets, noise_kinds=noise_kinds, fractions=fractions, valid_settings=valid,
                  seeds=list(range(n_seeds)), methods=methods, variants=variants, epochs=args.epochs,
                  out_dir=args.out_dir or str(RESULTS_DIR / "quick" if args.quick else RESULTS_DIR),
                  jobs=max(1, args.jobs), quick=args.quick,
                  from_json=[p for p in (args.from_json or "").split(",") if p], target_noise=args.target_noise)


# ---------------------------------------------------------------------------- scoring
def _cleanlab_version() -> str | None:
    try:
        import cleanlab
    except ImportError:
        return None
    return str(cleanlab.__version__)


def detection_scores(values: np.ndarray, noisy: np.ndarray, fraction: float) -> dict[str, Any]:
    """Two-means and lowest-``fraction`` F1 of ``values`` (low = noisy) against ``noisy``."""
    from lossval.metrics import detection_f1, detection_report
    from lossval.pruning import two_means_threshold

    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return {"status": "non-finite values", "f1_2means": float("nan"), "f1_top": float("nan"),
                "n_flagged": 0, "frac_negative": float("nan"), "flagged": None}
    flagged = values < two_means_threshold(values)
    top = np.zeros(values.size, dtype=bool)
    top[np.argsort(values, kind="stable")[: int(round(fraction * values.size))]] = True
    report = detection_report(flagged, noisy)
    return {"status": "ok", "f1_2means": detection_f1(flagged, noisy), "f1_top": detection_f1(top, noisy),
            "precision_2means": float(report["precision"]), "recall_2means": float(report["recall"]),
            "n_flagged": int(flagged.sum()), "frac_negative": float((values < 0).mean()), "flagged": flagged}


# ---------------------------------------------------------------------------- one chunk
def _cell_data(dataset: str, noise: str, fraction: float, seed: int,
               target_noise: float | None = None) -> dict[str, Any]:
    from lossval.datasets import GENERATED_DATASETS, inject_noise, load_dataset, split_dataset

    ds = load_dataset(dataset, seed=seed, target_noise=target_noise if dataset in GENERATED_DATASETS else None)
    split = split_dataset(ds, seed=seed)
    n_classes = ds.n_classes
    X, y, noisy = inject_noise(split.X_train, split.y_train, kind=noise, fraction=fraction, task=ds.task,
                               seed=seed, n_classes=n_classes)
    Xv_noisy, yv_noisy, _ = inject_noise(split.X_valid, split.y_valid, kind=noise, fraction=fraction,
                                         task=ds.task, seed=seed + VALID_NOISE_SEED_OFFSET, n_classes=n_classes)
    return {"task": ds.task, "n_outputs": n_classes if ds.task == "classification" else 1,
            "X": X, "y": y, "noisy": noisy, "X_test": split.X_test, "y_test": split.y_test,
            "valid": {"clean": (split.X_valid, split.y_valid), "noisy": (Xv_noisy, yv_noisy)}}


def _lossval_model(method: str, task: str, seed: int, cfg: Config) -> Any:
    from lossval import LossVal

    over = {} if cfg.epochs is None else {"epochs": cfg.epochs}
    if method == "lossval_paper":
        return LossVal.paper_settings(task, verbose=False, seed=seed, device="cpu", **over)
    kwargs = {**over, **cfg.variants.get(method, {})}
    return LossVal(task=task, verbose=False, seed=seed, device="cpu", **kwargs)


def run_chunk(cfg: Config, dataset: str, noise: str) -> list[dict[str, Any]]:
    """All records of one (dataset, noise kind): every fraction, seed, validation setting, method."""
    import torch

    from benchmarks._plain import default_training, score_model, train_plain
    from lossval import LossVal

    torch.set_num_threads(1)
    _warm_up()
    from lossval.datasets import target_noise_std

    train = default_training()
    if cfg.epochs is not None:
        train["epochs"] = cfg.epochs
    have_cleanlab = _cleanlab_version() is not None
    lossval_like = ["lossval", "lossval_paper", *cfg.variants]
    records: list[dict[str, Any]] = []
    for fraction in cfg.fractions:
        for seed in cfg.seeds:
            data = _cell_data(dataset, noise, fraction, seed, cfg.target_noise)
            task, X, y, noisy = data["task"], data["X"], data["y"], data["noisy"]
            key = {"dataset": dataset, "task": task, "noise": noise, "fraction": fraction, "seed": seed,
                   "n_train": int(X.shape[0]), "n_noisy": int(noisy.sum()),
                   "target_noise": target_noise_std(dataset, cfg.target_noise)}

            def retrain(keep: np.ndarray) -> float:
                model, _ = train_plain(X[keep], y[keep], task=task, n_outputs=data["n_outputs"], seed=seed, **train)
                return score_model(model, data["X_test"], data["y_test"], task=task)

            # Rows' training data is the same in both validation settings: fit these once.
            shared: dict[str, tuple[np.ndarray, float, dict[str, Any]]] = {}
            # plain_loss: lossval's MLP; plain_loss_paper_arch: the paper's MLP, the reference's plain baseline.
            paper_params = LossVal.paper_settings(task).get_params()
            for method, arch in (("plain_loss", {}),
                                 ("plain_loss_paper_arch", {k: paper_params[k] for k in ("n_layers", "width", "activation")})):
                if method not in cfg.methods:
                    continue
                t0 = time.perf_counter()
                _, hist = train_plain(X, y, task=task, n_outputs=data["n_outputs"], seed=seed, **train, **arch)
                shared[method] = (-hist[-PLAIN_LAST_EPOCHS:].mean(axis=0), time.perf_counter() - t0, {})
            if have_cleanlab and task == "classification":
                shared.update(_cleanlab_methods(cfg, X, y, noisy, seed))
            prune_base: dict[str, float] = {}
            if any(m in cfg.methods for m in lossval_like):
                prune_base = {"before": retrain(np.ones(X.shape[0], dtype=bool)), "oracle": retrain(~noisy)}

            for valid in cfg.valid_settings:
                X_val, y_val = data["valid"][valid]
                line = []
                fits: dict[str, tuple[np.ndarray, float, dict[str, Any]]] = dict(shared)
                need_default = "lossval" in cfg.methods or "loss_mixture" in cfg.methods
                for method in lossval_like:
                    if method not in cfg.methods and not (method == "lossval" and need_default):
                        continue
                    lv = _lossval_model(method, task, seed, cfg)
                    t0 = time.perf_counter()
                    lv.fit(X, y, X_val, y_val)
                    seconds = time.perf_counter() - t0
                    fits[method] = (lv.values_, seconds, {})
                    if method == "lossval" and "loss_mixture" in cfg.methods:
                        t1 = time.perf_counter()
                        # as a run computes it: the default last epochs (10), identical rows sharing one P(noisy)
                        p_noisy = lv.noise_probability()
                        fits["loss_mixture"] = (1.0 - p_noisy, seconds + time.perf_counter() - t1, {})
                for method in cfg.methods:
                    if method not in fits:
                        continue
                    values, seconds, extra = fits[method]
                    scores = detection_scores(values, noisy, fraction)
                    flagged = scores.pop("flagged")
                    if method not in lossval_like:  # scores, not weights: the sign means nothing
                        scores["frac_negative"] = None
                    rec = {**key, "valid": valid, "method": method, "seconds": seconds, **scores, **extra}
                    if method in lossval_like and flagged is not None:
                        after = retrain(~flagged)
                        gap = prune_base["oracle"] - prune_base["before"]
                        rec.update({"prune_metric": "accuracy" if task == "classification" else "r2",
                                    "prune_before": prune_base["before"], "prune_after": after,
                                    "prune_oracle": prune_base["oracle"], "n_dropped": int(flagged.sum()),
                                    "gap_recovered": (after - prune_base["before"]) / gap if abs(gap) > 1e-12 else None})
                    records.append(rec)
                    line.append(f"{method} {rec['f1_2means']:.3f}/{rec['f1_top']:.3f} ({seconds:.1f}s)")
                print(f"[{dataset} {noise} p={fraction:g} seed={seed} valid={valid}] f1 2means/top: "
                      + " | ".join(line), flush=True)
    return records


def _warm_up() -> None:
    """One tiny fit of each trainer so lazy imports and torch's first-call costs are not timed."""
    from benchmarks._plain import train_plain
    from lossval import LossVal

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    train_plain(X, y, task="classification", n_outputs=2, epochs=1, batch_size=32, lr=0.01, seed=0)
    LossVal(task="classification", epochs=1, verbose=False, device="cpu").fit(X, y, X[:16], y[:16])
    LossVal.paper_settings("classification", epochs=1, verbose=False, device="cpu").fit(X, y, X[:16], y[:16])


def cleanlab_out_of_fold(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold class probabilities for cleanlab: 5-fold stratified ``LogisticRegression``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return cross_val_predict(LogisticRegression(max_iter=2000), X, y, cv=folds, method="predict_proba")


def _cleanlab_methods(cfg: Config, X: np.ndarray, y: np.ndarray, noisy: np.ndarray,
                      seed: int) -> dict[str, tuple[np.ndarray, float, dict[str, Any]]]:
    """cleanlab peers on the noisy training rows (classification only)."""
    from lossval.metrics import detection_f1

    out: dict[str, tuple[np.ndarray, float, dict[str, Any]]] = {}
    if "cleanlab_label_quality" in cfg.methods:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        t0 = time.perf_counter()
        pred_probs = cleanlab_out_of_fold(X, y, seed)
        values = get_label_quality_scores(y, pred_probs)
        issues = find_label_issues(y, pred_probs, n_jobs=1)  # its own pool breaks inside our workers
        out["cleanlab_label_quality"] = (values, time.perf_counter() - t0,
                                         {"f1_native": detection_f1(issues, noisy), "n_native": int(issues.sum())})
    if "cleanlab_knn_shapley" in cfg.methods:
        from cleanlab.data_valuation import data_shapley_knn

        t0 = time.perf_counter()
        values = data_shapley_knn(y, features=X, k=10)
        issues = values < 0.5  # Datalab's data-valuation issue threshold
        out["cleanlab_knn_shapley"] = (values, time.perf_counter() - t0,
                                       {"f1_native": detection_f1(issues, noisy), "n_native": int(issues.sum())})
    return out


# ---------------------------------------------------------------------------- summaries
def _kind(task: str) -> str:
    return "cls" if task == "classification" else "reg"


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else float("nan")


def _std(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def overall_means(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means of f1_2means / f1_top / seconds per (fraction, valid, noise, task kind, method)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["fraction"], r["valid"], r["noise"], _kind(r["task"]), r["method"])].append(r)
    rows = []
    for (fraction, valid, noise, kind, method), rs in groups.items():
        rows.append({"fraction": fraction, "valid": valid, "noise": noise, "kind": kind, "method": method,
                     "n": len(rs), "f1_2means": _mean([r["f1_2means"] for r in rs]),
                     "f1_top": _mean([r["f1_top"] for r in rs]), "seconds": _mean([r["seconds"] for r in rs]),
                     "frac_negative": _mean([r["frac_negative"] for r in rs]),
                     "n_flagged": _mean([r["n_flagged"] for r in rs]), "n_noisy": _mean([r["n_noisy"] for r in rs]),
                     "datasets": sorted({r["dataset"] for r in rs})})
    return rows


def reference_for(row: dict[str, Any]) -> tuple[float, float] | None:
    """Reference (f1_2means, f1_top10) for lossval_paper / plain-loss rows at 10% noise, same datasets.

    The reference's plain baseline trained the paper's MLP, so ``plain_loss_paper_arch`` is its
    like-for-like row (for regression the paper's MLP is lossval's default, both rows agree).
    """
    if abs(row["fraction"] - 0.1) > 1e-9 or row["method"] not in ("lossval_paper", "plain_loss", "plain_loss_paper_arch"):
        return None
    pairs = []
    for ds in row["datasets"]:
        clean = REFERENCE_CLEAN.get((ds, row["noise"]))
        if clean is None:
            return None
        if row["method"].startswith("plain_loss"):
            pairs.append(clean[2:])
        elif row["valid"] == "clean":
            pairs.append(clean[:2])
        else:
            pairs.append(REFERENCE_NOISY_VALID[(ds, row["noise"])])
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


def reference_by_dataset(records: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: the paper settings and the paper-MLP plain ranking against the reference code, per dataset.

    10% noise, clean validation (the reference's own rate and our product setting); mean over seeds.
    """
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if abs(r["fraction"] - 0.1) < 1e-9 and r["valid"] == "clean" and r["method"] in (
                "lossval_paper", "plain_loss_paper_arch"):
            cells[(r["dataset"], r["noise"], r["method"])].append(r)
    rows = []
    for (ds, noise), ref in sorted(REFERENCE_CLEAN.items()):
        paper, plain = cells.get((ds, noise, "lossval_paper")), cells.get((ds, noise, "plain_loss_paper_arch"))
        if not paper:
            continue
        two, top = _mean([r["f1_2means"] for r in paper]), _mean([r["f1_top"] for r in paper])
        plain_text = (f"{_fmt(_mean([r['f1_2means'] for r in plain]))} / {_fmt(_mean([r['f1_top'] for r in plain]))}"
                      if plain else "")
        rows.append(f"| {ds} | {noise} | {_fmt(two)} | {_fmt(ref[0])} | {two - ref[0]:+.3f} | {_fmt(top)} | "
                    f"{_fmt(ref[1])} | {plain_text} | {_fmt(ref[2])} / {_fmt(ref[3])} |")
    if not rows:
        return []
    return ["", "## Paper settings against the reference code, per dataset (10% noise, clean validation)", "",
            "Two-means and lowest-10% F1, mean over seeds; reference = public LossVal @59f4b18 and its plain "
            "baseline on the paper's MLP.", "",
            "| dataset | noise | paper 2-means | reference | diff | paper top-10% | reference | "
            "plain (paper MLP) 2-means / top | reference |", "|" + "---|" * 9, *rows]


def lossval_vs_others(records: list[dict[str, Any]], variants: list[str]) -> list[dict[str, Any]]:
    """Per (fraction, valid, noise, task kind): lossval's mean two-means F1, the paper settings', the best other's."""
    by_group: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in overall_means(records):
        by_group[(row["fraction"], row["valid"], row["noise"], row["kind"])][row["method"]] = row["f1_2means"]
    out = []
    for (fraction, valid, noise, kind), f1 in sorted(by_group.items()):
        rivals = {m: v for m, v in f1.items() if m != "lossval" and m not in variants}
        if "lossval" not in f1 or not rivals:
            continue
        best = max(rivals, key=rivals.get)
        out.append({"fraction": fraction, "valid": valid, "noise": noise, "kind": kind, "lossval": f1["lossval"],
                    "paper": f1.get("lossval_paper"), "best_other": best, "best_other_f1": rivals[best],
                    "margin": f1["lossval"] - rivals[best]})
    return out


def gap_recovered(records: list[dict[str, Any]]) -> float | None:
    """Share of the before->oracle gain that dropping the flagged rows recovered, over ``records``.

    ``sum(after - before) / sum(oracle - before)``, or None when the mean oracle gain is below
    :data:`MIN_PRUNE_GAP` (a ratio of noise). One rule for every table: a mean of per-seed ratios
    would blow up on seeds whose gap is near zero.
    """
    rs = [r for r in records if "prune_after" in r]
    if not rs:
        return None
    gap = sum(r["prune_oracle"] - r["prune_before"] for r in rs)
    if gap / len(rs) < MIN_PRUNE_GAP:
        return None
    return sum(r["prune_after"] - r["prune_before"] for r in rs) / gap


def evaluate_targets(records: list[dict[str, Any]], variants: list[str]) -> list[dict[str, Any]]:
    """The issue's targets, each with PASS/FAIL computed from ``records``."""
    targets: list[dict[str, Any]] = []
    best_fail, margin_fail, best_details, margin_details = [], [], [], []
    for row in lossval_vs_others(records, variants):
        label = "p={:g} {} {} {}".format(row["fraction"], row["valid"], row["noise"], row["kind"])
        ok = row["margin"] > 0
        best_details.append(f"{label}: lossval {row['lossval']:.3f} vs best other "
                            f"{row['best_other']} {row['best_other_f1']:.3f} {'ok' if ok else 'FAIL'}")
        if not ok:
            best_fail.append(label)
        if row["paper"] is not None:
            diff = row["lossval"] - row["paper"]
            ok = diff >= 0.05
            margin_details.append(f"{label}: lossval - lossval_paper = {diff:+.3f} {'ok' if ok else 'FAIL'}")
            if not ok:
                margin_fail.append(label)
    targets.append({"target": "lossval has the highest mean two-means F1 of all methods in every noise type "
                              "and both task kinds (per validation setting)",
                    "pass": bool(best_details) and not best_fail, "details": best_details})
    targets.append({"target": "lossval mean two-means F1 >= lossval_paper + 0.05 in every noise type and task kind",
                    "pass": bool(margin_details) and not margin_fail, "details": margin_details})
    prune_details, prune_fail = [], []
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["method"] == "lossval" and "prune_after" in r:
            groups[(r["fraction"], r["valid"], r["noise"], _kind(r["task"]))].append(r)
    for group, rs in sorted(groups.items()):
        gap = sum(r["prune_oracle"] - r["prune_before"] for r in rs) / len(rs)
        got = sum(r["prune_after"] - r["prune_before"] for r in rs) / len(rs)
        head = "p={:g} {} {} {}: ".format(*group) + f"after-before {got:+.4f}, oracle-before {gap:+.4f}"
        share = gap_recovered(rs)
        if share is None:  # the oracle barely beats (or loses to) training on everything
            prune_details.append(f"{head}: n/a (oracle gap < {MIN_PRUNE_GAP})")
            continue
        ok = share >= 0.5
        prune_details.append(f"{head} = {share:.2f} recovered {'ok' if ok else 'FAIL'}")
        if not ok:
            prune_fail.append(group)
    n_scored = sum("n/a" not in d for d in prune_details)  # None = nothing to judge
    targets.append({"target": "dropping lossval's two-means flagged rows (no 20% cap) recovers >= half of the "
                              "before->oracle gap in every (noise, task kind) group whose oracle gap is >= "
                              f"{MIN_PRUNE_GAP} (mean(after-before) / mean(oracle-before))",
                    "pass": (not prune_fail) if n_scored else None, "details": prune_details})
    return targets


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def render_markdown(cfg: Config, records: list[dict[str, Any]], meta: dict[str, Any],
                    targets: list[dict[str, Any]]) -> str:
    """quality.md: overall table, targets, weight stats, pruning, per-cell table."""
    lines = ["# LossVal benchmark: detection quality and pruning benefit", ""]
    target_noise = _target_noise_text(records)
    lines += [f"Generated {meta['generated']} by `{meta['command']}` in {meta['wall_seconds']:.0f} s "
              f"(torch {meta['torch']}, {meta['threads']} thread per process, {cfg.jobs} process(es), "
              f"CPU {meta['machine']}; cleanlab: {meta['cleanlab']}).", "",
              f"Datasets: {', '.join(cfg.datasets)}. Noise: {', '.join(cfg.noise_kinds)} at "
              f"{', '.join(f'{f:g}' for f in cfg.fractions)} of training rows. Validation: "
              f"{', '.join(cfg.valid_settings)} (clean = untouched trusted split; noisy = noised at the same "
              f"rate, seed+{VALID_NOISE_SEED_OFFSET}). Seeds: {cfg.seeds}. Epochs: "
              f"{cfg.epochs or 'defaults (30)'}. Splits 1000/100/3000 for generated sets, else 60/20/20. "
              f"Target noise of the generated sets: {target_noise}.", "",
              "Timings use `torch.set_num_threads(1)` in every process so they compare across methods.", "",
              "F1 two-means = rows in the lower cluster of an exact 1-D 2-means split (values < "
              "`two_means_threshold`) vs the injected-noise mask; F1 top = the lowest p% of values. "
              "`loss_mixture` = 1 - P(noisy) from `noise_probability()` of the lossval fit of the same run, as a "
              "run computes it (Beta mixture on the last 10 epochs' row losses, identical rows sharing one value); "
              "its seconds are that fit's plus the mixture's. Seconds compare only between records of the same "
              "run (the runs merged here are listed above, with their dates). `plain_loss` = minus mean row loss over the last 5 "
              "epochs of the same MLP trained unweighted; `plain_loss_paper_arch` = the same with the paper's "
              "MLP (classification: 5 layers, the reference's plain baseline; regression: identical). Reference = public LossVal (@59f4b18) and its plain "
              "baseline as the team measured them on the same datasets (`REFERENCE_CLEAN` in benchmarks/run.py) "
              "(10% noise only; the reference's 'paper' setting is our 'noisy').", ""]
    variants = list(cfg.variants)
    if variants:
        lines += ["Variants (LossVal defaults plus): " + "; ".join(
            f"`{n}`: {', '.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in cfg.variants.items()), ""]

    lines += ["## lossval against the others, per noise rate", "",
              "Mean two-means F1 over all datasets and seeds of a task kind; best other = the highest "
              "of every other method except variants.", "",
              "| p | valid | noise | kind | lossval | paper settings | best other | lossval - best other |",
              "|" + "---|" * 8]
    lines += [f"| {row['fraction']:g} | {row['valid']} | {row['noise']} | {row['kind']} | {_fmt(row['lossval'])} | "
              f"{_fmt(row['paper'])} | {row['best_other']} {_fmt(row['best_other_f1'])} | "
              f"{row['margin']:+.3f}{'' if row['margin'] > 0 else ' **(behind)**'} |"
              for row in lossval_vs_others(records, variants)]
    lines += reference_by_dataset(records)
    lines += ["", "## Overall means (all datasets and seeds of a task kind)", "",
              "| p | valid | noise | kind | method | n | f1_2means | f1_top | ref f1_2means | ref f1_top | "
              "frac neg | flagged / noisy | s |", "|" + "---|" * 13]
    order = {m: i for i, m in enumerate(cfg.methods)}
    overall = sorted(overall_means(records), key=lambda r: (r["fraction"], r["valid"], r["noise"], r["kind"],
                                                             order.get(r["method"], 99)))
    for r in overall:
        ref = reference_for(r)
        lines.append(f"| {r['fraction']:g} | {r['valid']} | {r['noise']} | {r['kind']} | {r['method']} | {r['n']} | "
                     f"{_fmt(r['f1_2means'])} | {_fmt(r['f1_top'])} | {_fmt(ref[0]) if ref else ''} | "
                     f"{_fmt(ref[1]) if ref else ''} | {_fmt(r['frac_negative'])} | "
                     f"{r['n_flagged']:.1f} / {r['n_noisy']:.1f} | {r['seconds']:.2f} |")

    lines += ["", "## TARGETS", ""]
    for t in targets:
        verdict = "N/A" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        lines.append(f"- **{verdict}**: {t['target']}")
        lines += [f"    - {d}" for d in t["details"]]
    for method in ("lossval_paper", "lossval"):
        rs = [r for r in records if r["method"] == method and r["fraction"] == 0.1]  # the reference's rate
        if rs:
            lines.append(f"- {method} at 10% noise: mean fraction of negative values "
                         f"{_mean([r['frac_negative'] for r in rs]):.3f} "
                         f"(reference code: {REFERENCE_FRAC_NEGATIVE:.3f}); mean #flagged by two-means "
                         f"{_mean([r['n_flagged'] for r in rs]):.1f} vs mean #noisy {_mean([r['n_noisy'] for r in rs]):.1f}"
                         f" (reference: {REFERENCE_FLAGGED} vs {REFERENCE_NOISY:.0f}, ~3x)")

    lines += ["", "## Pruning benefit (retrain the plain MLP; test accuracy for cls, R^2 for reg)", "",
              "Before = all noisy training rows; after = without the method's two-means flagged rows "
              "(no 20% cap here, unlike the library's default prune policy); oracle = without exactly the noisy "
              "rows. Gap recovered = sum(after - before) / sum(oracle - before) over the group's cells; n/a where the "
              f"mean oracle gain is below {MIN_PRUNE_GAP:g} (dropping feature-noised rows barely helps the plain MLP).", "",
              "| p | valid | noise | kind | method | before | after | oracle | dropped | gap recovered |",
              "|" + "---|" * 10]
    pg: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if "prune_after" in r:
            pg[(r["fraction"], r["valid"], r["noise"], _kind(r["task"]), r["method"])].append(r)
    for key in sorted(pg, key=lambda k: (*k[:4], order.get(k[4], 99))):
        rs = pg[key]
        share = gap_recovered(rs)
        lines.append("| {:g} | {} | {} | {} | {} | ".format(*key) + f"{_mean([r['prune_before'] for r in rs]):.4f} | "
                     f"{_mean([r['prune_after'] for r in rs]):.4f} | {_mean([r['prune_oracle'] for r in rs]):.4f} | "
                     f"{_mean([r['n_dropped'] for r in rs]):.1f} | "
                     f"{_fmt(share, 2) if share is not None else f'n/a (gap < {MIN_PRUNE_GAP:g})'} |")

    peers = [r for r in records if "f1_native" in r]
    if peers:
        lines += ["", "## Peers' own flags (cleanlab)", "",
                  "`cleanlab_label_quality`: `find_label_issues` on 5-fold out-of-fold LogisticRegression "
                  "probabilities; `cleanlab_knn_shapley`: `data_shapley_knn(k=10)` < 0.5 (Datalab's threshold).", "",
                  "| valid | noise | method | f1 native | flagged native |", "|---|---|---|---|---|"]
        ng: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in peers:
            ng[(r["valid"], r["noise"], r["method"])].append(r)
        for key in sorted(ng):
            rs = ng[key]
            lines.append("| {} | {} | {} | ".format(*key) + f"{_mean([r['f1_native'] for r in rs]):.3f} | "
                         f"{_mean([r['n_native'] for r in rs]):.1f} |")

    lines += ["", "## Per cell (mean ± std over seeds; gap rec. as in the pruning table: ratio of the seeds' sums, n/a below the gap floor)", "",
              "| dataset | p | valid | noise | method | f1_2means | f1_top | flagged | noisy | frac neg | s | gap rec. |",
              "|" + "---|" * 12]
    cg: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        cg[(r["dataset"], r["fraction"], r["valid"], r["noise"], r["method"])].append(r)
    ds_order = {d: i for i, d in enumerate(cfg.datasets)}
    for key in sorted(cg, key=lambda k: (ds_order.get(k[0], 99), *k[1:4], order.get(k[4], 99))):
        rs = cg[key]
        pruned = [r for r in rs if "prune_after" in r]
        share = gap_recovered(pruned)
        lines.append("| {} | {:g} | {} | {} | {} | ".format(*key)
                     + f"{_fmt(_mean([r['f1_2means'] for r in rs]))} ± {_fmt(_std([r['f1_2means'] for r in rs]))} | "
                     f"{_fmt(_mean([r['f1_top'] for r in rs]))} ± {_fmt(_std([r['f1_top'] for r in rs]))} | "
                     f"{_mean([r['n_flagged'] for r in rs]):.1f} | {_mean([r['n_noisy'] for r in rs]):.0f} | "
                     f"{_fmt(_mean([r['frac_negative'] for r in rs]))} | {_mean([r['seconds'] for r in rs]):.2f} | "
                     f"{'' if not pruned else 'n/a' if share is None else _fmt(share, 2)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Run the suite and write ``quality.json`` + ``quality.md``; returns their paths."""
    import torch

    cfg = parse_args(argv)
    if cfg.from_json:
        return _rerender(cfg, argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    chunks = [(d, k) for d in cfg.datasets for k in cfg.noise_kinds]
    print(f"benchmarks.run: {len(chunks)} chunk(s) x {len(cfg.fractions)} fraction(s) x {len(cfg.seeds)} seed(s) x "
          f"{len(cfg.valid_settings)} valid setting(s); methods {cfg.methods}; jobs {cfg.jobs}", flush=True)
    try:
        records: list[dict[str, Any]] = []
        if cfg.jobs == 1:
            for d, k in chunks:
                records += run_chunk(cfg, d, k)
        else:
            with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=get_context("spawn")) as pool:
                for chunk_records in pool.map(run_chunk, [cfg] * len(chunks), *zip(*chunks)):
                    records += chunk_records
    finally:
        torch.set_num_threads(previous_threads)
    meta = {"generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
            "wall_seconds": time.perf_counter() - t0, "torch": torch.__version__, "threads": 1,
            "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "cleanlab": _cleanlab_version() or "not installed"}
    paths = _write_results(cfg, records, meta, out_dir=Path(cfg.out_dir))
    print(f"wrote {paths['json']} and {paths['md']} ({meta['wall_seconds']:.0f} s)", flush=True)
    return paths


def _write_results(cfg: Config, records: list[dict[str, Any]], meta: dict[str, Any], *, out_dir: Path) -> dict[str, Path]:
    """Evaluate the targets and write ``quality.json`` + ``quality.md`` atomically; returns their paths."""
    from benchmarks._plain import write_atomic
    from lossval.io import json_default

    targets = evaluate_targets(records, list(cfg.variants))
    json_path, md_path = out_dir / "quality.json", out_dir / "quality.md"
    payload = {"meta": meta, "config": asdict(cfg), "targets": targets,
               "overall": overall_means(records), "records": records}
    write_atomic(json_path, json.dumps(payload, indent=1, default=json_default, allow_nan=True) + "\n")
    write_atomic(md_path, render_markdown(cfg, records, meta, targets))
    return {"json": json_path, "md": md_path}


# 2dplanes' noise went from sd 1 to sd 2 on 2026-12-03 (commit 517e697); records written before
# carry no "target_noise", and for 2dplanes that means the old data.
_LEGACY_NOISE = {"fried": 1.0}


def _record_noise(record: dict[str, Any]) -> float | None:
    """The record's target noise sd; None for a bundled set; NaN for an unrecorded 2dplanes one."""
    from lossval.datasets import GENERATED_DATASETS, dataset_source

    if record["dataset"] not in GENERATED_DATASETS:
        return None
    if record.get("target_noise") is not None:
        return float(record["target_noise"])
    return _LEGACY_NOISE.get(dataset_source(record["dataset"]), math.nan)


def _target_noise_text(records: list[dict[str, Any]]) -> str:
    """What quality.md says about the generated sets' target noise, from the records themselves."""
    from lossval.datasets import dataset_source

    seen: dict[str, set[float]] = {}
    for r in records:
        noise = _record_noise(r)
        if noise is not None:
            seen.setdefault(dataset_source(r["dataset"]), set()).add(noise)
    if not seen:
        return "no generated set in this run"
    return ", ".join(f"{src} sd {', '.join(f'{v:g}' for v in sorted(vals))}" for src, vals in sorted(seen.items()))


def _check_mergeable(records: list[dict[str, Any]], files: list[str]) -> None:
    """Refuse merges that would mix data: a 2dplanes record without its noise (written before
    its noise changed), one dataset drawn with two noises, or the same cell and method twice."""
    by_dataset: dict[str, set[float]] = {}
    for r in records:
        noise = _record_noise(r)
        if noise is None:
            continue
        if math.isnan(noise):
            raise SystemExit(f"--from-json: a {r['dataset']} record in {', '.join(files)} does not say its target noise: "
                             "it was written before 2dplanes' noise became sd 2 (2026-12-03). Drop those records "
                             "or rerun that dataset.")
        by_dataset.setdefault(r["dataset"], set()).add(noise)
    mixed = {d: sorted(v) for d, v in by_dataset.items() if len(v) > 1}
    if mixed:
        raise SystemExit(f"--from-json: datasets drawn with different target noise ({mixed}); their records cannot "
                         "share one table")
    keys = [(r["dataset"], r["noise"], r["fraction"], r["seed"], r["valid"], r["method"]) for r in records]
    repeated = [k for k, c in Counter(keys).items() if c > 1]
    if repeated:
        raise SystemExit(f"--from-json: {len(repeated)} (dataset, noise, fraction, seed, validation, method) cell(s) "
                         f"appear in more than one record, e.g. {repeated[0]}; to replace a method's results, "
                         "remove its old records from the earlier file first")


def _rerender(cfg: Config, argv: list[str] | None) -> dict[str, Path]:
    """Merge earlier quality.json files (records concatenated, settings united) and re-render."""
    from lossval.datasets import DATASETS

    payloads = [json.loads(Path(p).read_text(encoding="utf-8")) for p in cfg.from_json]
    records = [r for p in payloads for r in p["records"]]
    first = payloads[0]["config"]

    def union(key: str, order: list[Any] | None = None) -> list[Any]:
        seen: list[Any] = []
        for p in payloads:
            seen += [v for v in p["config"][key] if v not in seen]
        return sorted(seen, key=order.index) if order else seen

    _check_mergeable(records, cfg.from_json)
    # Training settings the records do not carry themselves: one value per merge, or the table mislabels some of them.
    epochs = {json.dumps(p["config"].get("epochs")) for p in payloads}
    if len(epochs) > 1:
        raise SystemExit(f"--from-json: the files were run with different --epochs ({', '.join(sorted(epochs))}; null "
                         "is the methods' defaults); their records cannot share one table")
    variants: dict[str, Any] = {}
    for p, path in zip(payloads, cfg.from_json):
        for name, kwargs in p["config"]["variants"].items():
            if name in variants and variants[name] != kwargs:
                raise SystemExit(f"--from-json: variant {name!r} is {variants[name]} in one file and {kwargs} in "
                                 f"{path}; rename one of them before merging")
            variants[name] = kwargs
    noises = {p["config"].get("target_noise") for p in payloads}
    merged = Config(datasets=union("datasets", list(DATASETS)), noise_kinds=union("noise_kinds"),
                    fractions=union("fractions"), valid_settings=union("valid_settings"), seeds=union("seeds"),
                    methods=union("methods"), variants=variants,
                    epochs=first["epochs"], out_dir=cfg.out_dir, jobs=max(p["config"]["jobs"] for p in payloads),
                    quick=first["quick"], from_json=cfg.from_json,
                    target_noise=noises.pop() if len(noises) == 1 else None)
    meta = dict(payloads[0]["meta"])
    meta["generated"] = " + ".join(p["meta"]["generated"] for p in payloads)  # one date per part, in command order
    meta["command"] = " + ".join(p["meta"]["command"] for p in payloads)
    meta["wall_seconds"] = sum(p["meta"]["wall_seconds"] for p in payloads)
    paths = _write_results(merged, records, meta, out_dir=Path(cfg.out_dir))
    print(f"merged {len(cfg.from_json)} file(s) into {paths['json']} and {paths['md']}", flush=True)
    return paths


if __name__ == "__main__":
    main()
