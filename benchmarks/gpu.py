"""LossVal on a CUDA device: agreement with the CPU, speed against plain training, GPU memory.

Needs a CUDA device; on a GPU machine run ``bash benchmarks/gpu_check.sh`` (tests, then this).
Measures, with LossVal's defaults:

* Agreement: the same fit (seed 0) on the CPU and on CUDA, on 1,000 synthetic rows per task
  and on four suite cells (breast_cancer, digits, Friedman #1 and 2dplanes regression; label
  noise 10%, clean validation): Pearson r of the values, share of two-means flags in common,
  and each device's two-means F1 against the injected noise. Both devices see the same batches
  (the draws come from a CPU generator); GPU kernels round differently and 30 epochs amplify
  it, so the values are close, not equal.
* Where a step's time goes: host syncs, kernel launches and CUDA graph launches of one short
  fit, with the training steps replayed from a CUDA graph (the default) and without.
* Speed: LossVal against plain training of the same MLP (``FlatAdam``) on CUDA, both with CUDA
  graphs, interleaved per seed (``--repeats``), at ``--sizes`` rows (default 1,000 and 10,000; at
  batch 32 a fit's time grows with the rows), 20 features, 100 validation rows, 30 epochs;
  seconds, seconds per 1k rows, the ratio, and peak CUDA memory of the LossVal fit. Up to
  ``--eager-max`` rows (10,000) LossVal is also timed without graphs (``LOSSVAL_CUDA_GRAPHS=0``),
  and the pipeline's retraining (``fit_model``) once each way.

Usage::

    python -m benchmarks.gpu [--sizes 1000,10000] [--repeats 3] [--eager-max 10000] [--out-dir DIR]

Writes ``gpu.json`` and ``gpu.md`` (atomically) under ``--out-dir`` (default
``benchmarks/results``). Exits 2 without CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["agreement", "measure_speed", "render_markdown", "main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUITE_CELLS = (("cls_breast_cancer", "label"), ("cls_digits", "label"), ("reg_fried", "label"),
               ("reg_2dplanes", "label"))


def _fit_values(data: tuple[np.ndarray, ...], task: str, device: str) -> np.ndarray:
    from lossval import LossVal

    return LossVal(task=task, verbose=False, seed=0, device=device).fit(*data).values_


def _compare(cpu: np.ndarray, gpu: np.ndarray, noisy: np.ndarray | None) -> dict[str, Any]:
    from lossval.metrics import detection_f1
    from lossval.pruning import two_means_threshold

    flag_cpu, flag_gpu = cpu < two_means_threshold(cpu), gpu < two_means_threshold(gpu)
    union = int((flag_cpu | flag_gpu).sum())
    row: dict[str, Any] = {"pearson_r": float(np.corrcoef(cpu, gpu)[0, 1]),
                           "max_abs_diff": float(np.abs(cpu - gpu).max()),
                           "flags_in_common": float((flag_cpu & flag_gpu).sum() / union) if union else 1.0,
                           "flagged_cpu": int(flag_cpu.sum()), "flagged_gpu": int(flag_gpu.sum())}
    if noisy is not None:
        row["f1_cpu"], row["f1_gpu"] = detection_f1(flag_cpu, noisy), detection_f1(flag_gpu, noisy)
    return row


def agreement() -> list[dict[str, Any]]:
    """CPU against CUDA on synthetic data and on a few suite cells (see the module docstring)."""
    from benchmarks.run import _cell_data
    from benchmarks.speed import make_data

    rows = []
    for task in ("classification", "regression"):
        data = make_data(1000, 20, task=task)
        rows.append({"data": f"synthetic {task}, 1000 rows",
                     **_compare(_fit_values(data, task, "cpu"), _fit_values(data, task, "cuda"), None)})
        print(f"agreement: {rows[-1]}", flush=True)
    for dataset, noise in SUITE_CELLS:
        cell = _cell_data(dataset, noise, 0.1, 0)
        data = (cell["X"], cell["y"], *cell["valid"]["clean"])
        rows.append({"data": f"{dataset}, {noise} noise 10%, seed 0",
                     **_compare(_fit_values(data, cell["task"], "cpu"), _fit_values(data, cell["task"], "cuda"),
                                cell["noisy"])})
        print(f"agreement: {rows[-1]}", flush=True)
    return rows


def launch_profile(n_rows: int = 1000, epochs: int = 2, graphs: bool = True) -> dict[str, Any]:
    """Where a CUDA step's time goes: host syncs (``torch.cuda.set_sync_debug_mode``), kernel
    launches and CUDA graph replays (``torch.profiler``), for one LossVal fit with defaults,
    with the steps replayed from a CUDA graph or (``graphs=False``) launched one by one. With
    graphs the counts include the first epoch's eager warm-up steps and the capture."""
    import warnings

    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.speed import make_data
    from lossval import LossVal

    data = make_data(n_rows, 20)
    with contextlib.nullcontext() if graphs else _graphs_off():
        LossVal(epochs=1, verbose=False, device="cuda").fit(*data)  # warm-up
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught, profile(activities=[ProfilerActivity.CPU]) as prof:
                warnings.simplefilter("always")
                LossVal(epochs=epochs, verbose=False, device="cuda").fit(*data)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    events = prof.key_averages()
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel",
                                                        "cudaLaunchKernelExC", "cuLaunchKernelEx"))
    graph_launches = sum(e.count for e in events if e.key in ("cudaGraphLaunch", "cuGraphLaunch"))
    steps = epochs * -(-n_rows // 32)
    top = sorted(events, key=lambda e: e.count, reverse=True)[:12]
    row = {"rows": n_rows, "epochs": epochs, "steps": steps, "graphs": graphs, "host_syncs": len(syncs),
           "sync_sites": sorted(set(syncs))[:5], "kernel_launches": launches, "graph_launches": graph_launches,
           "launches_per_step": (launches + graph_launches) / steps,
           "most_called_ops": [[e.key, e.count] for e in top]}
    print(f"launches: {row}", flush=True)
    return row


@contextlib.contextmanager
def _graphs_off() -> Iterator[None]:
    """CUDA training steps run one kernel at a time inside the block (``LOSSVAL_CUDA_GRAPHS=0``)."""
    from lossval._torchutil import CUDA_GRAPHS_ENV

    before = os.environ.get(CUDA_GRAPHS_ENV)
    os.environ[CUDA_GRAPHS_ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CUDA_GRAPHS_ENV, None)
        else:
            os.environ[CUDA_GRAPHS_ENV] = before


def _time_retrain(data: tuple[np.ndarray, ...]) -> float:
    """Seconds of the pipeline's retraining (``fit_model`` with its defaults) on CUDA."""
    import torch

    from lossval.retrain import fit_model

    t0 = time.perf_counter()
    fit_model(data[0], data[1], device="cuda", task="classification", seed=0)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure_speed(sizes: list[int], repeats: int, epochs: int = 30, eager_max: int = 10_000,
                  on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """LossVal and plain training on CUDA at each size, interleaved per seed; ``on_row`` sees each size's row.

    Both replay each training step from a captured CUDA graph (the default); up to ``eager_max``
    rows LossVal also runs with graphs off (step by step, as before them), and the pipeline's
    retraining (``fit_model``) is timed both ways once.
    """
    import torch

    from benchmarks.speed import make_data, time_lossval, time_plain

    time_lossval(make_data(200, 20), epochs=1, device="cuda")  # warm-up: CUDA context, kernels
    time_plain(make_data(200, 20), epochs=1, device="cuda")
    rows = []
    for n in sizes:
        data = make_data(n, 20)
        lossval_s, plain_s, eager_s, ratios = [], [], [], []
        peak_mb = 0.0
        for seed in range(repeats):
            plain_s.append(time_plain(data, epochs=epochs, seed=seed, device="cuda"))
            torch.cuda.reset_peak_memory_stats()
            lossval_s.append(time_lossval(data, epochs=epochs, seed=seed, device="cuda"))
            peak_mb = max(peak_mb, torch.cuda.max_memory_allocated() / 2**20)
            ratios.append(lossval_s[-1] / plain_s[-1])
            if n <= eager_max:
                with _graphs_off():
                    eager_s.append(time_lossval(data, epochs=epochs, seed=seed, device="cuda"))
        row = {"rows": n, "epochs": epochs, "lossval_s": lossval_s, "plain_s": plain_s,
               "lossval_median_s": statistics.median(lossval_s), "plain_median_s": statistics.median(plain_s),
               "ratio": statistics.median(ratios), "s_per_1k_rows": statistics.median(lossval_s) / (n / 1000),
               "peak_cuda_mb": peak_mb}
        if eager_s:
            row["lossval_no_graphs_s"] = eager_s
            row["lossval_no_graphs_median_s"] = statistics.median(eager_s)
            row["retrain_s"] = _time_retrain(data)
            with _graphs_off():
                row["retrain_no_graphs_s"] = _time_retrain(data)
        print(f"speed: {n} rows: lossval {row['lossval_median_s']:.2f} s, plain {row['plain_median_s']:.2f} s, "
              f"ratio {row['ratio']:.2f}, peak {peak_mb:.0f} MB"
              + (f"; without graphs lossval {row['lossval_no_graphs_median_s']:.2f} s, retrain "
                 f"{row['retrain_s']:.2f} / {row['retrain_no_graphs_s']:.2f} s" if eager_s else ""), flush=True)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def render_markdown(res: dict[str, Any]) -> str:
    meta = res["meta"]
    lines = ["# LossVal on CUDA", "",
             f"Generated {meta['generated']} by `{meta['command']}` on {meta['device']} (torch {meta['torch']}, "
             f"python {meta['python']}).", "",
             "## Agreement with the CPU (defaults, seed 0)", "",
             "Same batches on both devices; GPU kernels round differently and 30 epochs amplify it: values are close, not equal.", "",
             "| data | Pearson r | max abs diff | two-means flags in common | flagged CPU / CUDA | F1 CPU / CUDA |",
             "|---|---|---|---|---|---|"]
    for r in res["agreement"]:
        f1 = f"{r['f1_cpu']:.3f} / {r['f1_gpu']:.3f}" if "f1_cpu" in r else "–"
        lines.append(f"| {r['data']} | {r['pearson_r']:.4f} | {r['max_abs_diff']:.3g} | {r['flags_in_common']:.3f} | "
                     f"{r['flagged_cpu']} / {r['flagged_gpu']} | {f1} |")
    lines += ["", "## Speed (synthetic classification, 20 features, 100 validation rows)", "",
              "Plain = the same MLP trained unweighted on CUDA with FlatAdam, same epochs and batch size; "
              "seeds interleaved, medians.", "",
              "Both replay each training step from a captured CUDA graph (the default); \"no graphs\" = "
              "`LOSSVAL_CUDA_GRAPHS=0`, every kernel launched one by one. Retrain = the pipeline's `fit_model` "
              "(defaults: 30 epochs, batch 64), one run each way.", "",
              "| rows | epochs | LossVal s (runs) | plain s | ratio | s per 1k rows | peak CUDA MB | LossVal, no graphs s | "
              "retrain s, graphs / none |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in res["speed"]:
        runs = ", ".join(f"{v:.2f}" for v in r["lossval_s"])
        eager = f"{r['lossval_no_graphs_median_s']:.2f}" if "lossval_no_graphs_median_s" in r else "–"
        retrain = f"{r['retrain_s']:.2f} / {r['retrain_no_graphs_s']:.2f}" if "retrain_s" in r else "–"
        lines.append(f"| {r['rows']} | {r['epochs']} | {r['lossval_median_s']:.2f} ({runs}) | "
                     f"{r['plain_median_s']:.2f} | {r['ratio']:.2f} | {r['s_per_1k_rows']:.3f} | {r['peak_cuda_mb']:.0f} | "
                     f"{eager} | {retrain} |")
    profiles = res.get("launches")
    profiles = [profiles] if isinstance(profiles, dict) else (profiles or [])
    if any("error" not in lp for lp in profiles):
        lines += ["", "## Where a CUDA step's time goes", ""]
        for lp in profiles:
            if "error" in lp:
                lines.append(f"- profile failed: {lp['error']}")
                continue
            how = "steps replayed from a CUDA graph" if lp.get("graphs", False) else "no graphs"
            lines.append(f"- {how}: one fit, {lp['rows']} rows, {lp['epochs']} epochs ({lp['steps']} steps of batch "
                         f"32): {lp['host_syncs']} host syncs, {lp['kernel_launches']} kernel launches and "
                         f"{lp.get('graph_launches', 0)} graph launches ({lp['launches_per_step']:.1f} per step).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma list of row counts")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per size (default 3)")
    parser.add_argument("--skip-agreement", action="store_true", help="speed only")
    parser.add_argument("--eager-max", type=int, default=10_000,
                        help="also time LossVal and retraining without CUDA graphs up to this many rows (default 10000)")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)

    import torch

    from benchmarks._plain import write_atomic

    if not torch.cuda.is_available():
        print("benchmarks.gpu: no CUDA device here; run it on a GPU machine (benchmarks/gpu_check.sh)",
              file=sys.stderr)
        raise SystemExit(2)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "meta": {"generated": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "command": "python -m benchmarks.gpu " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                 "python": platform.python_version()},
        "agreement": [], "speed": [],
    }
    out = Path(args.out_dir)
    paths = {"json": out / "gpu.json", "md": out / "gpu.md"}

    def save(_: Any = None) -> None:  # after each part, so a run cut short by a time limit keeps what it measured
        res["meta"]["wall_seconds"] = time.perf_counter() - t0
        write_atomic(paths["json"], json.dumps(res, indent=1) + "\n")
        write_atomic(paths["md"], render_markdown(res))

    if not args.skip_agreement:
        res["agreement"] = agreement()
        save()
    res["launches"] = []
    for graphs in (True, False):
        try:
            res["launches"].append(launch_profile(graphs=graphs))
        except Exception as exc:  # a profiler quirk must not cost the speed figures
            res["launches"].append({"graphs": graphs, "error": f"{type(exc).__name__}: {exc}"})
        save()
    measure_speed(sizes, max(1, args.repeats), eager_max=args.eager_max, on_row=lambda row: (res["speed"].append(row), save()))
    save()
    print(f"wrote {paths['json']} and {paths['md']} ({res['meta']['wall_seconds']:.0f} s)", flush=True)
    return paths


if __name__ == "__main__":
    main()
