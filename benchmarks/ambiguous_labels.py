"""What pruning does when the labels themselves are ambiguous.

The quality suite's classification sets have labels that a model can mostly learn: a flipped
label stands out because its row's loss stays high. In churn-like data the label is often a
coin toss given the features (two customers alike in every column, one left and one stayed),
and a clean row whose label went the unlikely way is as hard to fit as a flipped one. This
measures how far that blurs what LossVal finds, and what pruning then does to the model.

Data, per seed (the same rows and signal at every ambiguity level; only the label noise differs):
churn-like columns (tenure, monthly charges, contract type, support calls, age, partner, a signup
date), a logit that is a non-linear function of them scaled to standard deviation 1, and the label
``churned = logit + sd * N(0, 1) > c`` with ``c`` putting about 27% of the rows in class 1. At
``sd = 0`` the label is a function of the features; at ``sd = 1`` the noise is as large as the
signal.

Each cell goes as a run goes, through the library the flows call: :func:`lossval.splitting.assign_splits`
(``validation.strategy: latest`` on the signup date, ``validation.fraction`` 0.1, ``test_fraction``
0.2: 21,600 training rows of 30,000), ``--flip-fraction`` (default 10%) of the training labels flipped
(:func:`lossval.datasets.inject_noise`; the validation and test labels keep only their ambiguity),
:class:`lossval.encoding.TabularEncoder`, ``LossVal`` with its defaults, :func:`lossval.prune` with
the default policy (``two_means``), ``max_prune_fraction`` 0.2 and class protection, then
:func:`lossval.retrain.fit_model` on all training rows (before) and on the kept rows (after), with
the run's defaults (30 epochs, temperature fitted on the validation split), scored on the test split,
and the gate's metric rules (:func:`tasks.gate.metric_findings` with ``gate.metric_tolerance`` and
``gate.refuse_when_all_worse`` at their defaults; the GX suite and the champion comparison are not run).

Reported per cell: rows flagged by two-means and rows dropped (the cap and class protection keep
the rest), precision and recall of both against the flipped rows, the AUC of the values as a
detector of the flips (1 = every flipped row below every clean one, 0.5 = chance), test accuracy,
macro-F1 and log-loss before and after (and with exactly the flipped rows dropped, the oracle), and
whether the gate's metric rules would promote.

    python -m benchmarks.ambiguous_labels [--rows 30000] [--noise-sds 0,0.5,1] [--seeds 3]
                                          [--flip-fraction 0.1] [--epochs N] [--out-dir DIR]

Writes ``ambiguous_labels.json`` and ``ambiguous_labels.md`` in ``--out-dir`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET = "churned"
TIMESTAMP = "signup_date"
CHURN_RATE = 0.27  # share of class 1 the threshold aims at (before the flips)
VALID_FRACTION = 0.1
TEST_FRACTION = 0.2


def make_churn_data(rows: int, noise_sd: float, seed: int) -> pd.DataFrame:
    """``rows`` churn-like rows; the label is ``logit + noise_sd * N(0, 1)`` above its 73rd percentile's cut.

    The features, the logit (standard deviation 1) and the noise draw depend on ``seed`` only, so
    two levels of ``noise_sd`` with one seed differ in their labels alone.
    """
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, rows)
    charges = 20.0 + 100.0 * rng.beta(2.0, 2.0, rows)
    contract = rng.choice(["month-to-month", "one year", "two year"], rows, p=[0.55, 0.25, 0.20])
    calls = rng.poisson(1.5, rows)
    age = rng.integers(18, 81, rows)
    partner = rng.choice(["yes", "no"], rows)
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 24 * 3600, rows), unit="s")
    eps = rng.standard_normal(rows)

    def std(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return (x - x.mean()) / x.std()

    # Short tenure, high charges, monthly contracts and many support calls churn; calls matter more for
    # new customers, charges less for the old; age is a weak U shape; partner is noise.
    logit = (-1.0 * std(np.log(tenure)) + 0.6 * std(charges) + 0.5 * std(calls)
             + np.select([contract == "month-to-month", contract == "one year"], [0.8, -0.3], -1.0)
             + 0.4 * std(calls) * (tenure < 12) - 0.3 * std(charges) * (tenure > 48) + 0.2 * std(age) ** 2)
    logit = std(logit)
    latent = logit + noise_sd * eps
    churned = (latent > np.quantile(latent, 1.0 - CHURN_RATE)).astype(np.int64)
    return pd.DataFrame({"customer_id": np.arange(rows), "tenure_months": tenure, "monthly_charges": charges.round(2),
                         "contract": contract, "support_calls": calls, "age": age, "partner": partner,
                         TIMESTAMP: signup, TARGET: churned})


def auc_of_values(values: np.ndarray, flipped: np.ndarray) -> float:
    """AUC of low values as a detector of ``flipped``: P(a flipped row's value < a clean row's), ties half."""
    from scipy.stats import rankdata

    ranks = rankdata(-np.asarray(values, dtype=np.float64))  # the lowest value gets the highest rank
    n_pos, n_neg = int(flipped.sum()), int((~flipped).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[flipped].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def run_cell(noise_sd: float, seed: int, *, rows: int, flip_fraction: float, epochs: int | None) -> dict[str, Any]:
    """One (ambiguity level, seed): split, flip, value, prune, retrain, gate; one record."""
    from lossval import LossVal, TwoMeansPolicy, prune
    from lossval.config import GateConfig, PruningConfig, RetrainConfig
    from lossval.datasets import inject_noise
    from lossval.encoding import TabularEncoder
    from lossval.metrics import detection_report
    from lossval.retrain import evaluate, fit_model
    from lossval.splitting import assign_splits
    from tasks.gate import metric_findings

    df = make_churn_data(rows, noise_sd, seed)
    split = assign_splits(df, strategy="latest", target=TARGET, task="classification", seed=seed,
                          test_fraction=TEST_FRACTION, valid_fraction=VALID_FRACTION, timestamp_column=TIMESTAMP)
    train, valid, test = (df[split == part].reset_index(drop=True) for part in ("train", "validation", "test"))
    y_clean = train[TARGET].to_numpy()
    _, y_noisy, flipped = inject_noise(np.zeros((len(train), 1)), y_clean, kind="label", fraction=flip_fraction,
                                       task="classification", seed=seed, n_classes=2)
    train = train.assign(**{TARGET: y_noisy})
    enc = TabularEncoder(target=TARGET, task="classification", exclude=["customer_id", TIMESTAMP]).fit(train)
    X, X_val, X_test = enc.transform(train), enc.transform(valid), enc.transform(test)
    y, y_val, y_test = (enc.encode_target(part[TARGET]) for part in (train, valid, test))

    t0 = time.perf_counter()
    lv = LossVal(task="classification", seed=seed, verbose=False, device="cpu",
                 **({} if epochs is None else {"epochs": epochs})).fit(
        X, y, X_val, y_val, one_hot_columns=enc.one_hot_positions(), feature_names=enc.encoded_names_)
    seconds = time.perf_counter() - t0
    pruning = PruningConfig()
    if pruning.policy != "two_means":
        raise AssertionError(f"the default pruning policy is now {pruning.policy!r}: this benchmark measures two_means")
    decision = prune(lv.values_, policy=TwoMeansPolicy(), max_prune_fraction=pruning.max_prune_fraction, labels=y)
    flagged = ~decision.keep | np.array([h is not None for h in decision.held_back], dtype=bool)
    if int(flagged.sum()) != decision.n_candidates:
        raise AssertionError(f"flagged rows {int(flagged.sum())} != the decision's {decision.n_candidates}")

    retrain = RetrainConfig()
    common = {"task": "classification", "n_classes": 2, "epochs": retrain.epochs if epochs is None else epochs,
              "seed": seed, "device": "cpu", **({"calibrate_on": (X_val, y_val)} if retrain.calibrate else {})}
    metrics = {"before": evaluate(fit_model(X, y, **common), X_test, y_test, task="classification", n_classes=2),
               "after": evaluate(fit_model(X[decision.keep], y[decision.keep], **common), X_test, y_test,
                                 task="classification", n_classes=2)}
    # What pruning could gain at most here: exactly the flipped rows dropped (not gated; for reference).
    oracle = evaluate(fit_model(X[~flipped], y[~flipped], **common), X_test, y_test, task="classification", n_classes=2)
    gate = GateConfig()
    refusals = [text for _, text in metric_findings(metrics, task="classification", tolerance=gate.metric_tolerance,
                                                    refuse_when_all_worse=gate.refuse_when_all_worse,
                                                    limits=gate.metric_limits)]
    found, dropped = detection_report(flagged, flipped), detection_report(~decision.keep, flipped)
    return {"noise_sd": noise_sd, "seed": seed, "rows": rows, "n_train": len(train), "n_valid": len(valid),
            "n_test": len(test), "flipped": int(flipped.sum()), "class1_share": float(y_clean.mean()),
            "flagged": found["flagged"], "flagged_precision": found["precision"], "flagged_recall": found["recall"],
            "dropped": dropped["flagged"], "dropped_precision": dropped["precision"],
            "dropped_recall": dropped["recall"], "cap_hit": bool(decision.cap_hit),
            "auc": auc_of_values(lv.values_, flipped),
            "accuracy_before": metrics["before"]["accuracy"], "accuracy_after": metrics["after"]["accuracy"],
            "macro_f1_before": metrics["before"]["macro_f1"], "macro_f1_after": metrics["after"]["macro_f1"],
            "log_loss_before": metrics["before"]["log_loss"], "log_loss_after": metrics["after"]["log_loss"],
            "accuracy_oracle": oracle["accuracy"], "log_loss_oracle": oracle["log_loss"],
            "gate_promotes": not refusals, "gate_refusals": refusals, "valuation_seconds": seconds}


def render_markdown(meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    lines = ["# Pruning when the labels are ambiguous", "",
             f"Generated {meta['generated']} by `{meta['command']}` in {meta['seconds']:.0f} s "
             f"(torch {meta['torch']}, 1 thread, {meta['machine']}).", "",
             f"Churn-like data, {meta['rows']:,} rows per cell (validation: the latest {VALID_FRACTION:g} by signup "
             f"date; test: {TEST_FRACTION:g} of the rest); label = logit (sd 1) + noise of sd `noise sd` above the cut "
             f"that leaves about {CHURN_RATE:.0%} churned; {meta['flip_fraction']:.0%} of the training labels flipped. "
             "LossVal defaults, two-means with the 20% cap and class protection, the run's retraining and the "
             "gate's metric rules (tolerance and refuse_when_all_worse at their defaults). Flagged = rows two-means "
             "put below its threshold; dropped = what the cap let go; precision and recall against the flipped rows; "
             "AUC = of the values as a detector of the flips; oracle = the same retraining with exactly the flipped "
             "rows dropped (what pruning could gain at most; not gated). `gate.metric_limits` is empty by default, "
             "so a rise in log-loss alone refuses nothing.", "",
             "| noise sd | seed | train rows | flipped | flagged (% of train) | precision / recall | dropped | "
             "precision / recall | AUC | accuracy before -> after (oracle) | macro-F1 before -> after | "
             "log-loss before -> after (oracle) | gate |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['noise_sd']:g} | {r['seed']} | {r['n_train']:,} | {r['flipped']:,} | "
                     f"{r['flagged']:,} ({100 * r['flagged'] / r['n_train']:.1f}%) | "
                     f"{r['flagged_precision']:.2f} / {r['flagged_recall']:.2f} | {r['dropped']:,} | "
                     f"{r['dropped_precision']:.2f} / {r['dropped_recall']:.2f} | {r['auc']:.3f} | "
                     f"{r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f} ({r['accuracy_oracle']:.4f}) | "
                     f"{r['macro_f1_before']:.4f} -> {r['macro_f1_after']:.4f} | "
                     f"{r['log_loss_before']:.3f} -> {r['log_loss_after']:.3f} ({r['log_loss_oracle']:.3f}) | "
                     f"{'promote' if r['gate_promotes'] else 'refuse'} |")
    refused = [r for r in records if not r["gate_promotes"]]
    if refused:
        lines += ["", "Why the gate's metric rules refused:", ""]
        lines += [f"- noise sd {r['noise_sd']:g}, seed {r['seed']}: " + "; ".join(r["gate_refusals"]) for r in refused]
    return "\n".join(lines) + "\n"


def _noise_sds(text: str) -> list[float]:
    try:
        sds = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--noise-sds must be a comma list of numbers >= 0, got {text!r}") from None
    if not sds or not all(math.isfinite(s) and s >= 0 for s in sds):
        raise SystemExit(f"--noise-sds must be a comma list of numbers >= 0, got {text!r}")
    return sds


def main(argv: list[str] | None = None) -> dict[str, Path]:
    import datetime as dt

    import torch

    from benchmarks._plain import write_atomic
    from lossval.io import write_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.ambiguous_labels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30000, help="rows per cell before the splits (default 30000)")
    parser.add_argument("--noise-sds", default="0,0.5,1", help="label noise sd per level, in units of the logit's sd")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--flip-fraction", type=float, default=0.1, help="share of training labels flipped")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs of LossVal and the retraining")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    sds = _noise_sds(args.noise_sds)
    if args.rows < 500:
        raise SystemExit(f"--rows must be >= 500 (the splits need rows of both classes), got {args.rows}")
    if args.seeds < 1:
        raise SystemExit("--seeds must be >= 1")
    if not 0.0 < args.flip_fraction < 0.5:
        raise SystemExit(f"--flip-fraction must be in (0, 0.5), got {args.flip_fraction}")

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    records = []
    for sd in sds:
        for seed in range(args.seeds):
            r = run_cell(sd, seed, rows=args.rows, flip_fraction=args.flip_fraction, epochs=args.epochs)
            records.append(r)
            print(f"[noise sd {sd:g} seed={seed}] flagged {r['flagged']}/{r['n_train']} (precision "
                  f"{r['flagged_precision']:.2f}, recall {r['flagged_recall']:.2f}), dropped {r['dropped']}, AUC "
                  f"{r['auc']:.3f}, accuracy {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f}, gate "
                  f"{'promotes' if r['gate_promotes'] else 'refuses'}", flush=True)
    meta = {"generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.perf_counter() - t0,
            "command": "python -m benchmarks.ambiguous_labels" + (" " + " ".join(argv) if argv else ""),
            "torch": torch.__version__, "machine": platform.machine(), "rows": args.rows, "noise_sds": sds,
            "seeds": list(range(args.seeds)), "flip_fraction": args.flip_fraction, "epochs": args.epochs}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "ambiguous_labels.json", "md": out / "ambiguous_labels.md"}
    write_json({"meta": meta, "records": records}, paths["json"])
    write_atomic(paths["md"], render_markdown(meta, records))
    print(f"wrote {paths['json']} and {paths['md']}")
    return paths


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
