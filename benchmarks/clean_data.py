"""What pruning does to data with no injected noise.

The quality suite (`benchmarks.run`) always injects noise. A nightly job mostly sees data that
is as clean as it will get, so this measures the other side: on the suite's datasets with no
noise injected, how many rows each policy flags, how many the cap lets go, and what retraining
on the kept rows does to the test metric. "No injected noise" is not "clean": the real
datasets (breast_cancer, digits, diabetes) may hold a few bad rows of their own, and the
generated ones have noise in their targets by construction.

Policies, on one LossVal fit per cell (defaults, clean validation): ``two_means`` on the values
(the product's default) and ``mixture`` (P(noisy) >= 0.5 from the loss mixture), both through
:func:`lossval.prune` with ``max_prune_fraction=0.2`` and class protection, as a run does.
When cleanlab is installed, its ``find_label_issues`` on 5-fold logistic-regression
probabilities is the peer (classification only; no cap: it is what a user of cleanlab gets).

Classification cells also report the test log-loss before and after. Pruning the hardest rows
can raise accuracy and make the retrained model overconfident, so a second table repeats the
two-means pruning with ``--calibration-fraction`` (default 10%) label noise injected, where
pruning is meant to help, and compares accuracy with log-loss (``gate.metric_limits`` in the
pipeline config can refuse such a model).

To see whether a statistic of the values could tell "nothing to find" from "a little noise",
each cell also fits LossVal with ``--compare-fraction`` (default 5%) label and feature noise on
the same rows and reports the share of the values' variance that the two-means split explains.

    python -m benchmarks.clean_data [--seeds 3] [--only DATASETS] [--epochs N] [--compare-fraction 0.05]
                                    [--calibration-fraction 0.1] [--out-dir DIR]

Writes ``clean_data.json`` and ``clean_data.md`` in ``--out-dir`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MAX_PRUNE_FRACTION = 0.2


def _cleanlab_issues(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray | None:
    """cleanlab's own flags on out-of-fold probabilities, or ``None`` without cleanlab."""
    from benchmarks.run import _cleanlab_version, cleanlab_out_of_fold

    if _cleanlab_version() is None:
        return None
    from cleanlab.filter import find_label_issues

    return np.asarray(find_label_issues(y, cleanlab_out_of_fold(X, y, seed), n_jobs=1), dtype=bool)


def split_share(values: np.ndarray) -> float:
    """Share of the values' variance that their two-means split explains (between-cluster / total).

    ``nan`` when there is no split (constant values).
    """
    from lossval.pruning import two_means_threshold

    values = np.asarray(values, dtype=np.float64)
    threshold = two_means_threshold(values)
    if not np.isfinite(threshold) or values.var() == 0:
        return float("nan")
    low = values < threshold
    if low.all() or not low.any():
        return float("nan")
    w = low.mean()
    return float(w * (1 - w) * (values[~low].mean() - values[low].mean()) ** 2 / values.var())


def _fit(data: dict[str, Any], seed: int, epochs: int | None) -> Any:
    from lossval import LossVal

    X_val, y_val = data["valid"]["clean"]
    lv = LossVal(task=data["task"], verbose=False, seed=seed, device="cpu",
                 **({} if epochs is None else {"epochs": epochs}))
    return lv.fit(data["X"], data["y"], X_val, y_val)


def _retrain(data: dict[str, Any], keep: np.ndarray, *, seed: int, epochs: int | None) -> dict[str, float]:
    """Test metric (accuracy / R^2) of the plain MLP trained on the kept rows, and for
    classification its test log-loss, raw and calibrated (``log_loss_cal``: one temperature fitted
    on the clean validation split, as a run's ``retrain.calibrate`` does)."""
    import torch

    from benchmarks._plain import default_training, score_log_loss, score_model, train_plain
    from lossval.retrain import fit_temperature

    train = default_training()
    if epochs is not None:
        train["epochs"] = epochs
    task = data["task"]
    model, _ = train_plain(data["X"][keep], data["y"][keep], task=task, n_outputs=data["n_outputs"], seed=seed, **train)
    scores = {"score": score_model(model, data["X_test"], data["y_test"], task=task)}
    if task == "classification":
        scores["log_loss"] = score_log_loss(model, data["X_test"], data["y_test"])
        X_val, y_val = data["valid"]["clean"]
        with torch.no_grad():
            logits = model(torch.as_tensor(np.asarray(X_val), dtype=torch.float32)).numpy()
        temperature = fit_temperature(logits, y_val)

        def scaled(x: torch.Tensor) -> torch.Tensor:
            return model(x) / temperature

        scores["log_loss_cal"] = score_log_loss(scaled, data["X_test"], data["y_test"])
    return scores


def run_cell(dataset: str, seed: int, *, epochs: int | None, compare_fraction: float) -> list[dict[str, Any]]:
    """Records of one (dataset, seed): one per policy, with the retrained test metric.

    The lossval records also carry the two-means split share of the values with no noise
    (``split_share``) and with ``compare_fraction`` label / feature noise on the same rows.
    """
    from benchmarks.run import _cell_data
    from lossval import MixturePolicy, TwoMeansPolicy, prune

    data = _cell_data(dataset, "label", 0.0, seed)
    task, X, y = data["task"], data["X"], data["y"]
    if data["noisy"].any():
        raise AssertionError(f"{dataset}: rows were noised at fraction 0")

    t0 = time.perf_counter()
    lv = _fit(data, seed, epochs)
    seconds = time.perf_counter() - t0
    shares = {"split_share": split_share(lv.values_)}
    for noise in ("label", "feature"):
        shares[f"split_share_{noise}"] = split_share(_fit(_cell_data(dataset, noise, compare_fraction, seed),
                                                          seed, epochs).values_)
    labels = y if task == "classification" else None

    def scored(when: str, keep: np.ndarray) -> dict[str, float]:
        """``{when: metric}`` and, for classification, ``{when_log_loss: log-loss}``."""
        scores = _retrain(data, keep, seed=seed, epochs=epochs)
        return {when: scores["score"], **({f"{when}_log_loss": scores["log_loss"], f"{when}_log_loss_cal":
                                           scores["log_loss_cal"]} if "log_loss" in scores else {})}

    key = {"dataset": dataset, "task": task, "seed": seed, "n_train": int(X.shape[0]),
           "metric": "accuracy" if task == "classification" else "r2",
           **scored("before", np.ones(X.shape[0], dtype=bool))}

    records = []
    for name, decision in (
        ("two_means", prune(lv.values_, policy=TwoMeansPolicy(), max_prune_fraction=MAX_PRUNE_FRACTION, labels=labels)),
        ("mixture", prune(lv.values_, policy=MixturePolicy(), max_prune_fraction=MAX_PRUNE_FRACTION, labels=labels,
                          noise_prob=lv.noise_probability())),
    ):
        records.append({**key, "method": f"lossval {name}", "flagged": decision.n_candidates,
                        "dropped": decision.n_dropped, "cap_hit": decision.cap_hit, **scored("after", decision.keep),
                        "seconds": seconds, **shares})
    if task == "classification":
        t0 = time.perf_counter()
        issues = _cleanlab_issues(X, y, seed)
        if issues is not None:
            seconds = time.perf_counter() - t0
            records.append({**key, "method": "cleanlab find_label_issues", "flagged": int(issues.sum()),
                            "dropped": int(issues.sum()), "cap_hit": False, **scored("after", ~issues),
                            "seconds": seconds})
    return records


def run_calibration_cell(dataset: str, seed: int, *, epochs: int | None, fraction: float) -> dict[str, Any]:
    """Two-means pruning (20% cap, class protection) of a classification set with ``fraction``
    label noise: test accuracy and log-loss of the plain MLP before and after."""
    from benchmarks.run import _cell_data
    from lossval import TwoMeansPolicy, prune

    data = _cell_data(dataset, "label", fraction, seed)
    n = data["X"].shape[0]
    lv = _fit(data, seed, epochs)
    decision = prune(lv.values_, policy=TwoMeansPolicy(), max_prune_fraction=MAX_PRUNE_FRACTION, labels=data["y"])
    record: dict[str, Any] = {"dataset": dataset, "seed": seed, "fraction": fraction, "n_train": int(n),
                              "dropped": decision.n_dropped}
    for when, keep in (("before", np.ones(n, dtype=bool)), ("after", decision.keep)):
        scores = _retrain(data, keep, seed=seed, epochs=epochs)
        record[f"{when}_accuracy"], record[f"{when}_log_loss"] = scores["score"], scores["log_loss"]
        record[f"{when}_log_loss_cal"] = scores["log_loss_cal"]
    return record


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (dataset, method), in first-seen order."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        rows.setdefault((r["dataset"], r["method"]), []).append(r)
    out = []
    for (dataset, method), rs in rows.items():
        delta = [r["after"] - r["before"] for r in rs]
        out.append({"dataset": dataset, "method": method, "metric": rs[0]["metric"], "n_seeds": len(rs),
                    "n_train": float(np.mean([r["n_train"] for r in rs])),
                    "flagged_pct": float(np.mean([100 * r["flagged"] / r["n_train"] for r in rs])),
                    "dropped_pct": float(np.mean([100 * r["dropped"] / r["n_train"] for r in rs])),
                    "before": float(np.mean([r["before"] for r in rs])), "after": float(np.mean([r["after"] for r in rs])),
                    "delta": float(np.mean(delta)), "delta_min": float(np.min(delta)), "delta_max": float(np.max(delta)),
                    "seeds_worse": int(sum(d < 0 for d in delta)),
                    "seeds_cap_hit": int(sum(bool(r["cap_hit"]) for r in rs))})
        if all("after_log_loss" in r for r in rs):
            out[-1].update({"log_loss_before": float(np.mean([r["before_log_loss"] for r in rs])),
                            "log_loss_after": float(np.mean([r["after_log_loss"] for r in rs])),
                            "seeds_log_loss_up": int(sum(r["after_log_loss"] > r["before_log_loss"] for r in rs)),
                            "log_loss_cal_before": float(np.mean([r["before_log_loss_cal"] for r in rs])),
                            "log_loss_cal_after": float(np.mean([r["after_log_loss_cal"] for r in rs])),
                            "seeds_log_loss_cal_up": int(sum(r["after_log_loss_cal"] > r["before_log_loss_cal"]
                                                             for r in rs))})
    return out


def split_shares(records: list[dict[str, Any]], compare_fraction: float) -> list[dict[str, Any]]:
    """Range over datasets and seeds of the two-means split share, per task and noise setting."""
    fits = [r for r in records if r["method"] == "lossval two_means"]
    out = []
    for task in dict.fromkeys(r["task"] for r in fits):
        rs = [r for r in fits if r["task"] == task]
        for key, setting in (("split_share", "no noise"), ("split_share_label", f"{compare_fraction:g} label noise"),
                             ("split_share_feature", f"{compare_fraction:g} feature noise")):
            xs = [r[key] for r in rs if np.isfinite(r[key])]
            if xs:
                out.append({"task": task, "setting": setting, "n": len(xs), "min": float(min(xs)),
                            "max": float(max(xs)), "mean": float(np.mean(xs))})
    return out


def render_markdown(meta: dict[str, Any], summary: list[dict[str, Any]], shares: list[dict[str, Any]],
                    calibration: list[dict[str, Any]] | None = None) -> str:
    lines = ["# Pruning on data with no injected noise", "",
             f"Generated {meta['generated']} by `{meta['command']}` in {meta['seconds']:.0f} s "
             f"(torch {meta['torch']}, 1 thread; cleanlab: {meta['cleanlab'] or 'not installed'}).", "",
             f"Datasets: {', '.join(meta['datasets'])}; seeds {meta['seeds']}; clean validation; no rows noised. "
             f"lossval policies go through `prune` with `max_prune_fraction={MAX_PRUNE_FRACTION}` and class "
             "protection, as a run does; cleanlab's flags are used as they come. After = the same MLP retrained "
             "on the kept rows; test metric = accuracy (cls) or R^2 (reg). Flagged and dropped are % of training "
             "rows, means over seeds; cap hit = seeds in which more rows were flagged than the cap allows; delta = "
             "after - before (mean, and min..max over seeds).", "",
             "| dataset | method | flagged % | dropped % | cap hit | metric | before | after | delta (min..max) "
             "| seeds worse |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['dataset']} | {s['method']} | {s['flagged_pct']:.1f} | {s['dropped_pct']:.1f} | "
                     f"{s['seeds_cap_hit']}/{s['n_seeds']} | {s['metric']} | {s['before']:.3f} | {s['after']:.3f} | "
                     f"{s['delta']:+.3f} ({s['delta_min']:+.3f}..{s['delta_max']:+.3f}) | "
                     f"{s['seeds_worse']}/{s['n_seeds']} |")
    lines += ["", "## Mean over datasets", "",
              "| method | datasets | flagged % | dropped % | cap hit | mean delta | seeds worse |",
              "|---|---|---|---|---|---|---|"]
    for method in dict.fromkeys(s["method"] for s in summary):
        ss = [s for s in summary if s["method"] == method]
        n_seeds = sum(s["n_seeds"] for s in ss)
        lines.append(f"| {method} | {len(ss)} | {np.mean([s['flagged_pct'] for s in ss]):.1f} | "
                     f"{np.mean([s['dropped_pct'] for s in ss]):.1f} | {sum(s['seeds_cap_hit'] for s in ss)}/{n_seeds} | "
                     f"{np.mean([s['delta'] for s in ss]):+.3f} | {sum(s['seeds_worse'] for s in ss)}/{n_seeds} |")
    with_ll = [s for s in summary if "log_loss_after" in s]
    if with_ll:
        lines += ["", "## Log-loss of the retrained model (classification, same fits)", "",
                  "Test log-loss before and after pruning, means over seeds; seeds up = seeds in which it rose. "
                  "Calibrated: each model's logits divided by one temperature fitted on the clean validation "
                  "split (`retrain.calibrate`, the default); accuracy does not change.", "",
                  "| dataset | method | accuracy before -> after | log-loss before -> after | seeds up | "
                  "calibrated log-loss before -> after | seeds up |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {s['dataset']} | {s['method']} | {s['before']:.3f} -> {s['after']:.3f} | "
                  f"{s['log_loss_before']:.3f} -> {s['log_loss_after']:.3f} | {s['seeds_log_loss_up']}/{s['n_seeds']} | "
                  f"{s['log_loss_cal_before']:.3f} -> {s['log_loss_cal_after']:.3f} | "
                  f"{s['seeds_log_loss_cal_up']}/{s['n_seeds']} |" for s in with_ll]
    if calibration:
        frac = calibration[0]["fraction"]
        lines += ["", f"## Accuracy and log-loss with {frac:g} label noise (classification, lossval two_means)", "",
                  "The same pruning where there is something to find. Per seed: rows dropped, test accuracy and "
                  "log-loss of the plain MLP before -> after.", "",
                  "| dataset | seed | dropped | accuracy | log-loss | calibrated log-loss |", "|---|---|---|---|---|---|"]
        lines += [f"| {c['dataset']} | {c['seed']} | {c['dropped']}/{c['n_train']} | "
                  f"{c['before_accuracy']:.3f} -> {c['after_accuracy']:.3f} | "
                  f"{c['before_log_loss']:.3f} -> {c['after_log_loss']:.3f} | "
                  f"{c['before_log_loss_cal']:.3f} -> {c['after_log_loss_cal']:.3f} |" for c in calibration]
        up = sum(c["after_log_loss"] > c["before_log_loss"] for c in calibration)
        up_cal = sum(c["after_log_loss_cal"] > c["before_log_loss_cal"] for c in calibration)
        acc_up = sum(c["after_accuracy"] > c["before_accuracy"] for c in calibration)
        lines += ["", f"Accuracy rose in {acc_up} of {len(calibration)} fits; log-loss rose in {up} of "
                  f"{len(calibration)}, calibrated log-loss in {up_cal} of {len(calibration)}."]
    lines += ["", "## Can the values tell clean data from a little noise?", "",
              "Share of the values' variance that their two-means split explains (between-cluster / total), "
              "lossval defaults, one fit per dataset and seed with no noise and one with the same rows noised; "
              "min..max (mean) over datasets and seeds. Where the ranges overlap, no cut-off on this share "
              "separates the two.", "",
              "| task | values of | fits | share min..max (mean) |", "|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['setting']} | {r['n']} | {r['min']:.2f}..{r['max']:.2f} ({r['mean']:.2f}) |"
              for r in shares]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Path]:
    import datetime as dt

    import torch

    from benchmarks._plain import write_atomic
    from benchmarks.run import _cleanlab_version
    from lossval.datasets import DATASETS, dataset_task
    from lossval.io import write_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.clean_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--only", default=None, help="comma list of datasets (default: the suite's seven)")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs of every trained model")
    parser.add_argument("--compare-fraction", type=float, default=0.05,
                        help="noise rate of the label- and feature-noise fits the split share is compared with")
    parser.add_argument("--calibration-fraction", type=float, default=0.1,
                        help="label noise rate of the accuracy-vs-log-loss table (classification; 0 = skip it)")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.only.split(",") if d.strip()] if args.only else list(DATASETS)
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"--only: unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    if args.seeds < 1:
        raise SystemExit("--seeds must be >= 1")
    if not 0.0 < args.compare_fraction < 1.0:
        raise SystemExit(f"--compare-fraction must be in (0, 1), got {args.compare_fraction}")
    if not 0.0 <= args.calibration_fraction < 1.0:
        raise SystemExit(f"--calibration-fraction must be in [0, 1), got {args.calibration_fraction}")

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    for dataset in datasets:
        for seed in range(args.seeds):
            cell = run_cell(dataset, seed, epochs=args.epochs, compare_fraction=args.compare_fraction)
            records += cell
            print(f"[{dataset} seed={seed}] " + " | ".join(
                f"{r['method']}: {r['dropped']}/{r['n_train']} dropped, {r['before']:.3f} -> {r['after']:.3f}"
                for r in cell), flush=True)
    calibration: list[dict[str, Any]] = []
    if args.calibration_fraction > 0:
        for dataset in (d for d in datasets if dataset_task(d) == "classification"):
            for seed in range(args.seeds):
                c = run_calibration_cell(dataset, seed, epochs=args.epochs, fraction=args.calibration_fraction)
                calibration.append(c)
                print(f"[{dataset} seed={seed} {args.calibration_fraction:g} label noise] dropped {c['dropped']}: "
                      f"accuracy {c['before_accuracy']:.3f} -> {c['after_accuracy']:.3f}, log-loss "
                      f"{c['before_log_loss']:.3f} -> {c['after_log_loss']:.3f}", flush=True)
    meta = {"generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.perf_counter() - t0,
            "command": "python -m benchmarks.clean_data" + (" " + " ".join(argv) if argv else ""),
            "torch": torch.__version__, "cleanlab": _cleanlab_version(), "machine": platform.machine(),
            "datasets": datasets, "seeds": list(range(args.seeds)), "epochs": args.epochs,
            "compare_fraction": args.compare_fraction, "calibration_fraction": args.calibration_fraction}
    summary = summarise(records)
    shares = split_shares(records, args.compare_fraction)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "clean_data.json", "md": out / "clean_data.md"}
    write_json({"meta": meta, "summary": summary, "split_shares": shares, "records": records,
                "calibration": calibration}, paths["json"])
    write_atomic(paths["md"], render_markdown(meta, summary, shares, calibration))
    print(f"wrote {paths['json']} and {paths['md']}")
    return paths


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
