"""Speed and memory of LossVal on CPU, against plain training of the same network.

Measures (on synthetic data, ``--features`` columns, 100 validation rows; classification unless
said otherwise):

* 1,000 rows, 30 epochs: LossVal defaults vs unweighted training of the same MLP with the same
  epochs / batch size / learning rate and the same network optimiser (and, for reference, with
  ``torch.optim.Adam``), interleaved per seed (``--repeats``; median per-seed ratio); the
  paper settings (``LossVal.paper_settings``) vs plain training of the paper's 5-layer MLP.
  With torch's default thread count, and again with 1 thread.
* The same 1,000-row comparison on synthetic regression (LossVal's regression defaults: 3 tanh
  layers of width 90, squared error) against plain training of that MLP; default threads.
* Scaling: 10k, 30k and 100k rows, one run each in a fresh subprocess (torch default threads)
  that reports its wall time and its peak resident memory (``ru_maxrss``) and the growth of
  that peak over the resident memory just before ``fit``.

Usage::

    python -m benchmarks.speed            # full (100k rows takes a few minutes)
    python -m benchmarks.speed --quick    # no sizes above 10k

Writes ``speed.json`` and ``speed.md`` (atomically) under ``--out-dir`` (default
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["make_data", "time_lossval", "time_plain", "build_targets", "render_markdown", "main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_SECONDS_1K = 2.0
TARGET_RATIO = 1.5
TARGET_SECONDS_100K = 120.0
TARGET_PEAK_MB_100K = 2048.0


def make_data(n_rows: int, n_features: int, n_valid: int = 100, seed: int = 0,
              task: str = "classification") -> tuple[np.ndarray, ...]:
    """Standardised synthetic rows: ``(X (n, d), y (n,), X_val (m, d), y_val (m,))``.

    Classification: two classes (``make_classification``); regression: ``make_regression`` with
    half the features informative and noise, the target standardised with the training rows.
    """
    from sklearn.datasets import make_classification, make_regression

    informative = max(2, n_features // 2)
    if task == "regression":
        X, y = make_regression(n_samples=n_rows + n_valid, n_features=n_features, n_informative=informative,
                               noise=10.0, random_state=seed)
        y = (y - y[:n_rows].mean()) / y[:n_rows].std()
    else:
        X, y = make_classification(n_samples=n_rows + n_valid, n_features=n_features,
                                   n_informative=informative, random_state=seed)
        y = y.astype(np.int64)
    X = (X - X[:n_rows].mean(axis=0)) / X[:n_rows].std(axis=0)
    return X[:n_rows], y[:n_rows], X[n_rows:], y[n_rows:]


def time_lossval(data: tuple[np.ndarray, ...], *, epochs: int, paper: bool = False, seed: int = 0,
                 task: str = "classification", device: str = "cpu") -> float:
    """Seconds of one ``LossVal.fit`` (defaults, or paper settings) on ``device`` (the fit ends
    by copying its values to the host, so a CUDA fit is finished when this returns)."""
    from lossval import LossVal

    # cpu_threads=None: the fit uses the threads the block set (torch.set_num_threads), as plain training does;
    # LossVal's own default is 1 thread, which the 1-thread block measures.
    if paper:
        lv = LossVal.paper_settings(task, epochs=epochs, verbose=False, device=device, seed=seed, cpu_threads=None)
    else:
        lv = LossVal(task=task, epochs=epochs, verbose=False, device=device, seed=seed, cpu_threads=None)
    t0 = time.perf_counter()
    lv.fit(*data)
    return time.perf_counter() - t0


def time_plain(data: tuple[np.ndarray, ...], *, epochs: int, n_layers: int = 3, seed: int = 0,
               optimizer: str = "flat", task: str = "classification", device: str = "cpu") -> float:
    """Seconds of unweighted training of LossVal's MLP for ``task`` (classification: width 100,
    ReLU; regression: width 90, tanh) for ``epochs``.

    ``optimizer="flat"`` trains with LossVal's own network optimiser (like for like: the ratio
    then measures what valuing adds to training); ``"torch"`` with ``torch.optim.Adam``, the
    loop a user would write.
    """
    from benchmarks._plain import default_training, train_plain

    train = default_training()
    X, y = data[0], data[1]
    t0 = time.perf_counter()
    n_outputs = int(y.max()) + 1 if task == "classification" else 1
    train_plain(X, y, task=task, n_outputs=n_outputs, epochs=epochs,
                batch_size=int(train["batch_size"]), lr=float(train["lr"]), seed=seed, n_layers=n_layers,
                optimizer=optimizer, device=device)
    return time.perf_counter() - t0


def _interleaved(fns: dict[str, Any], repeats: int) -> dict[str, list[float]]:
    """Run every function once per seed, back to back in the given order; their times by name.

    This shared machine's speed drifts by tens of percent over minutes; timing the methods
    alternately and taking ratios within each seed's group cancels most of that.
    """
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for seed in range(repeats):
        for name, fn in fns.items():
            runs[name].append(fn(seed))
    return runs


def _time_group(block: dict[str, Any], name: str, bases: dict[str, Any], fn: Any, repeats: int) -> None:
    """Time ``fn`` (method ``name``) interleaved with its baselines; add medians and ratios to ``block``.

    The ratio to the first baseline is ``ratio_<name>`` (the one a target reads); the others are
    ``ratio_<name>_vs_<baseline>``. Per-seed ratios go under ``ratios_...``.
    """
    runs = _interleaved({**bases, name: fn}, repeats)
    for key, times in runs.items():
        block[key] = {"median": statistics.median(times), "runs": times}
    for i, base_name in enumerate(bases):
        ratios = [a / b for a, b in zip(runs[name], runs[base_name])]
        suffix = "" if i == 0 else f"_vs_{base_name}"
        block[f"ratio_{name}{suffix}"] = statistics.median(ratios)
        block[f"ratios_{name}{suffix}"] = ratios


def measure_regression(rows: int, features: int, epochs: int, repeats: int) -> dict[str, Any]:
    """LossVal's regression defaults against plain training of their MLP, interleaved per seed."""
    import torch

    data = make_data(rows, features, task="regression")
    time_lossval(make_data(200, features, task="regression"), epochs=1, task="regression")  # warm-up
    time_plain(data, epochs=1, task="regression")
    block: dict[str, Any] = {"threads": torch.get_num_threads()}
    _time_group(block, "lossval", {"plain": lambda s: time_plain(data, epochs=epochs, seed=s, task="regression")},
                lambda s: time_lossval(data, epochs=epochs, seed=s, task="regression"), repeats)
    return block


def _rss_now_kb() -> float:
    """Current resident memory in kB (Linux /proc), else the peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child(n_rows: int, n_features: int, epochs: int) -> None:
    """Subprocess body: one LossVal fit; prints a JSON line with seconds and memory."""
    import torch

    data = make_data(n_rows, n_features)
    time_lossval(make_data(200, n_features), epochs=1)  # warm-up: imports, first-call costs
    rss_before = _rss_now_kb()
    seconds = time_lossval(data, epochs=epochs)
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux
    print(json.dumps({"rows": n_rows, "seconds": seconds, "rss_before_mb": rss_before / 1024,
                      "peak_rss_mb": peak / 1024, "peak_growth_mb": (peak - rss_before) / 1024,
                      "threads": torch.get_num_threads()}))


def _run_child(n_rows: int, n_features: int, epochs: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.speed", "--child", str(n_rows), "--features", str(n_features),
           "--epochs", str(epochs)]
    root = Path(__file__).resolve().parent.parent
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rows": n_rows, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"rows": n_rows, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seconds_per_1k_rows"] = result["seconds"] / (n_rows / 1000)
    return result


def _verdict(ok: bool | None) -> str:
    return "N/A" if ok is None else ("PASS" if ok else "FAIL")


def _table_rows(blocks: list[tuple[dict[str, Any], str]]) -> list[str]:
    """Markdown rows of the timing tables, one block per thread setting."""
    lines = []
    for block, label in blocks:
        # (row, the ratio shown on it, text before that ratio)
        for name, ratio_key, prefix in (("lossval", "lossval", ""), ("plain", None, ""),
                                        ("plain_torch_adam", "lossval_vs_plain_torch_adam", "lossval / this: "),
                                        ("lossval_paper", "lossval_paper", ""), ("plain_paper_arch", None, "")):
            if name not in block:
                continue
            row = block[name]
            ratio = block.get(f"ratio_{ratio_key}", "") if ratio_key else ""
            ratio_txt = f"{prefix}{ratio:.2f}" if isinstance(ratio, float) else ""
            if ratio_key and f"ratios_{ratio_key}" in block:
                ratio_txt += f" ({', '.join(f'{x:.2f}' for x in block[f'ratios_{ratio_key}'])})"
            lines.append(f"| {label} | {name} | {row['median']:.3f} | "
                         f"{', '.join(f'{x:.2f}' for x in row['runs'])} | {ratio_txt} |")
    return lines


def render_markdown(res: dict[str, Any]) -> str:
    """speed.md from the result dict."""
    m, base = res["meta"], res["base"]
    lines = ["# LossVal speed (CPU)", "",
             f"Generated {m['generated']} by `{m['command']}`"
             + (f" in {m['wall_seconds']:.0f} s" if "wall_seconds" in m else "") + f" (torch {m['torch']}, {m['cpu_count']} CPU core(s), "
             f"torch default threads = {m['default_threads']}; python {m['python']}).", "",
             f"Data: synthetic classification, {base['rows']} rows x {m['features']} features, "
             f"{m['valid_rows']} validation rows, {m['epochs']} epochs, batch size {m['batch_size']}. "
             f"Medians of {m['repeats']} runs (seeds 0..{m['repeats'] - 1}). Plain = the same MLP trained "
             "unweighted with the same epochs, batch size and learning rate. For each seed the plain runs and then "
             "LossVal run back to back; a ratio is the median of the per-seed ratios (the machine's speed drifts "
             "between minutes, which this cancels).", "",
             f"## {base['rows']} rows", "",
             "| threads | method | median s | runs | ratio to plain (per-seed ratios) |", "|---|---|---|---|---|"]
    blocks = [(base["default_threads"], f"default ({m['default_threads']})"), (base["one_thread"], "1")]
    lines += _table_rows(blocks)
    spreads = [max(r["runs"]) / min(r["runs"]) for blk in (base["default_threads"], base["one_thread"],
                                                           base.get("regression", {}))
               for k, r in blk.items() if isinstance(r, dict) and "runs" in r and min(r["runs"]) > 0]
    if spreads and max(spreads) > 2.0:
        lines += ["", f"**Warning:** repeated runs differ by up to {max(spreads):.1f}x: the machine was busy with other "
                  "work during this run, so these timings (and the scaling rows) are not reliable; rerun on an idle "
                  "machine."]
    lines += ["", "`plain` trains with `lossval._torchutil.FlatAdam`, the network optimiser LossVal itself uses, so "
              "the ratio to it is what valuing adds to training; the target is judged on it. `plain_torch_adam` is the "
              "same training with `torch.optim.Adam(fused=True)`, the loop most users would write (same maths, more "
              "per-step overhead); its row shows LossVal's time relative to it. `lossval_paper` = "
              "`LossVal.paper_settings` (5x100 ReLU MLP, one Sinkhorn call per step); its ratio is to "
              "`plain_paper_arch` (plain training of that 5-layer MLP, FlatAdam)."]
    if "regression" in base:
        reg = base["regression"]
        lines += ["", f"## {base['rows']} rows, regression", "",
                  "`make_regression` data of the same shape; LossVal's regression defaults (3 tanh layers of width 90, "
                  "squared error; the weights held during the first epochs) against plain training of that MLP "
                  "(FlatAdam), interleaved the same way.", "",
                  "| threads | method | median s | runs | ratio to plain (per-seed ratios) |", "|---|---|---|---|---|"]
        lines += _table_rows([(reg, str(reg["threads"]))])
    lines += ["", "## Scaling (one fresh subprocess per size, torch default threads, one run each)", "",
              "| rows | seconds | s per 1k rows | peak RSS MB | RSS before fit MB | peak growth MB |",
              "|---|---|---|---|---|---|"]
    for row in res["scaling"]:
        if "error" in row:
            lines.append(f"| {row['rows']} | {row['error']} | | | | |")
        else:
            lines.append(f"| {row['rows']} | {row['seconds']:.1f} | {row['seconds_per_1k_rows']:.2f} | "
                         f"{row['peak_rss_mb']:.0f} | {row['rss_before_mb']:.0f} | {row['peak_growth_mb']:.0f} |")
    lines += ["", "Peak RSS is the child's `ru_maxrss` (includes the interpreter, torch and the data); growth = "
              "peak minus the resident memory just before `fit` (a lower bound on what `fit` adds when an earlier "
              "peak was higher).", "", "## TARGETS", ""]
    for t in res["targets"]:
        lines.append(f"- **{_verdict(t['pass'])}**: {t['target']} — measured {t['measured']}")
    return "\n".join(lines) + "\n"


def build_targets(base: dict[str, Any], scaling: list[dict[str, Any]], *, rows: int, features: int,
                  epochs: int) -> list[dict[str, Any]]:
    """The speed targets with PASS (True) / FAIL (False) / not measured (None).

    A 100k-row child that timed out FAILS the time target (it ran longer than the timeout,
    which is above 120 s); its memory is then unknown (None).
    """
    b = base["default_threads"]
    big = next((r for r in scaling if r["rows"] == 100_000), None)
    timed_out = big is not None and "timed out" in big.get("error", "")
    ok = big is not None and "error" not in big
    targets = [
        {"target": f"{rows} rows x {features} features, {epochs} epochs <= {TARGET_SECONDS_1K} s",
         "measured": f"{b['lossval']['median']:.2f} s", "pass": b["lossval"]["median"] <= TARGET_SECONDS_1K},
        {"target": f"LossVal / plain training <= {TARGET_RATIO}",
         "measured": f"{b['ratio_lossval']:.2f} (1 thread: {base['one_thread']['ratio_lossval']:.2f}; to training "
                     f"with torch.optim.Adam: {b['ratio_lossval_vs_plain_torch_adam']:.2f})",
         "pass": b["ratio_lossval"] <= TARGET_RATIO},
        {"target": f"100k rows <= {TARGET_SECONDS_100K:.0f} s",
         "measured": f"{big['seconds']:.1f} s" if ok else (big["error"] if big else "not run"),
         "pass": big["seconds"] <= TARGET_SECONDS_100K if ok else (False if timed_out else None)},
        {"target": f"100k rows peak RSS <= {TARGET_PEAK_MB_100K:.0f} MB",
         "measured": f"{big['peak_rss_mb']:.0f} MB (growth {big['peak_growth_mb']:.0f} MB)" if ok else "not measured",
         "pass": big["peak_rss_mb"] <= TARGET_PEAK_MB_100K if ok else None},
    ]
    reg = base.get("regression")
    if reg is not None:
        targets[2:2] = [
            {"target": f"regression: {rows} rows x {features} features, {epochs} epochs <= {TARGET_SECONDS_1K} s",
             "measured": f"{reg['lossval']['median']:.2f} s", "pass": reg["lossval"]["median"] <= TARGET_SECONDS_1K},
            {"target": f"regression: LossVal / plain training <= {TARGET_RATIO}",
             "measured": f"{reg['ratio_lossval']:.2f}", "pass": reg["ratio_lossval"] <= TARGET_RATIO},
        ]
    return targets


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Run the timings and write ``speed.json`` + ``speed.md``; returns their paths."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip sizes above 10k rows")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the main comparison (default 1000)")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="10000,30000,100000", help="comma list of scaling sizes ('' = none)")
    parser.add_argument("--child-timeout", type=float, default=900.0, help="seconds per scaling subprocess")
    parser.add_argument("--out-dir", default=None,
                        help="default benchmarks/results (the README quotes it); --quick: benchmarks/results/quick")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.features, args.epochs)
        return {}
    t_start = time.perf_counter()

    import torch

    from benchmarks._plain import default_training, write_atomic

    data = make_data(args.rows, args.features)
    time_lossval(make_data(200, args.features), epochs=1)  # warm-up
    time_lossval(make_data(200, args.features), epochs=1, paper=True)
    time_plain(data, epochs=1)
    time_plain(data, epochs=1, optimizer="torch")
    default_threads = torch.get_num_threads()

    def measure(with_paper: bool) -> dict[str, Any]:
        block: dict[str, Any] = {"threads": torch.get_num_threads()}
        # (method, its baselines in run order, the first being the one its target ratio uses)
        groups: list[tuple[str, dict[str, Any]]] = [
            ("lossval", {"plain": lambda s: time_plain(data, epochs=args.epochs, seed=s),
                         "plain_torch_adam": lambda s: time_plain(data, epochs=args.epochs, seed=s, optimizer="torch")}),
        ]
        if with_paper:
            groups.append(("lossval_paper", {
                "plain_paper_arch": lambda s: time_plain(data, epochs=args.epochs, n_layers=5, seed=s)}))
        fns = {"lossval": lambda s: time_lossval(data, epochs=args.epochs, seed=s),
               "lossval_paper": lambda s: time_lossval(data, epochs=args.epochs, paper=True, seed=s)}
        for name, bases in groups:
            _time_group(block, name, bases, fns[name], args.repeats)
        return block

    base: dict[str, Any] = {"rows": args.rows, "default_threads": measure(with_paper=True)}
    torch.set_num_threads(1)
    try:
        base["one_thread"] = measure(with_paper=False)
    finally:
        torch.set_num_threads(default_threads)
    base["regression"] = measure_regression(args.rows, args.features, args.epochs, args.repeats)
    for label, block in (("classification", base["default_threads"]), ("regression", base["regression"])):
        print(f"{args.rows} rows, {label}: lossval {block['lossval']['median']:.2f} s, plain "
              f"{block['plain']['median']:.2f} s, ratio {block['ratio_lossval']:.2f}", flush=True)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        sizes = [s for s in sizes if s <= 10_000]
    scaling = []
    for n_rows in sizes:
        row = _run_child(n_rows, args.features, args.epochs, args.child_timeout)
        print(f"scaling {n_rows} rows: {row}", flush=True)
        scaling.append(row)

    targets = build_targets(base, scaling, rows=args.rows, features=args.features, epochs=args.epochs)
    train = default_training()
    meta = {"generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": "python -m benchmarks.speed " + " ".join(argv if argv is not None else sys.argv[1:]),
            "torch": torch.__version__, "python": platform.python_version(), "cpu_count": _cpu_count(),
            "default_threads": default_threads, "features": args.features, "valid_rows": 100,
            "epochs": args.epochs, "batch_size": train["batch_size"], "repeats": args.repeats,
            "wall_seconds": round(time.perf_counter() - t_start, 1)}
    res = {"meta": meta, "base": base, "scaling": scaling, "targets": targets}
    out = Path(args.out_dir or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR))
    json_path, md_path = out / "speed.json", out / "speed.md"
    write_atomic(json_path, json.dumps(res, indent=1) + "\n")
    write_atomic(md_path, render_markdown(res))
    print(f"wrote {json_path} and {md_path}", flush=True)
    return {"json": json_path, "md": md_path}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
