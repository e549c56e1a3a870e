"""How the loss mixture's EM iteration cap changes its detection, on the benchmark suite's own fits.

For each (dataset, noise kind, seed) at 10% noise with clean validation: one LossVal fit with the
defaults (as the suite's `lossval` method), then P(noisy) from its loss history, averaged as a run
averages it (last 10 epochs, identical rows sharing one value), with the Beta mixture's EM capped at
each of --caps iterations. Unlike `noise_probability()` it fits the mixture without the spread floor
and the all-fit guards, which change nothing on these fits: every cap-100 F1 of the committed
table equals the suite's `loss_mixture` record (63 of 63). Writes the two-means F1 of 1 - P(noisy)
per cap, and how many fits converged.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    import torch

    from lossval.datasets import DATASETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", default="10,100,1000,10000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", default="label,feature,mixed")
    parser.add_argument("--only", default=",".join(DATASETS), help="datasets, comma-separated (default: all seven)")
    parser.add_argument("--out", default="benchmarks/results/mixture_iterations.json")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    caps = [int(c) for c in args.caps.split(",")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the suite's workers: one thread per fit
    try:
        _run(args, caps)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, caps: list[int]) -> None:
    from benchmarks.run import Config, _cell_data, _lossval_model, detection_scores
    from lossval.datasets import DATASETS
    from lossval.noise import BetaMixture

    cfg = Config(datasets=list(DATASETS), noise_kinds=[], fractions=[0.1], valid_settings=["clean"], seeds=[], methods=["lossval"])
    records, started = [], time.time()
    for dataset in args.only.split(","):
        for noise in args.noise.split(","):
            for seed in range(args.seeds):
                data = _cell_data(dataset, noise, 0.1, seed)
                lv = _lossval_model("lossval", data["task"], seed, cfg)
                X_val, y_val = data["valid"]["clean"]
                lv.fit(data["X"], data["y"], X_val, y_val)
                mean_loss = np.asarray(lv._grouped_loss_history()[-10:], dtype=np.float64).mean(axis=0)
                rec = {"dataset": dataset, "task": data["task"], "noise": noise, "seed": seed,
                       "n_noisy": int(data["noisy"].sum())}
                for cap in caps:
                    bmm = BetaMixture(max_iter=cap).fit(mean_loss)
                    p = bmm.predict_proba(mean_loss)
                    scores = detection_scores(1.0 - p, data["noisy"], 0.1)
                    rec[f"f1_{cap}"] = scores["f1_2means"]
                    rec[f"n_iter_{cap}"] = int(bmm.n_iter_)
                    rec[f"converged_{cap}"] = bool(bmm.converged_)
                    rec[f"flagged_p50_{cap}"] = int((p > 0.5).sum())
                records.append(rec)
                print(dataset, noise, seed, " ".join(f"{c}:{rec[f'f1_{c}']:.3f}" for c in caps), flush=True)
    summary = {}
    for task in ("classification", "regression"):
        for noise in args.noise.split(","):
            group = [r for r in records if r["task"] == task and r["noise"] == noise]
            if not group:
                continue
            summary[f"{task}/{noise}"] = {str(c): round(float(np.mean([r[f"f1_{c}"] for r in group])), 3) for c in caps}
            summary[f"{task}/{noise}"]["converged_at_100"] = f"{sum(r['converged_100'] for r in group)}/{len(group)}" if 100 in caps else None
    out = {"command": "python -m benchmarks.mixture_iterations " + " ".join(args.argv),
           "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
           "caps": caps, "summary": summary, "records": records}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
