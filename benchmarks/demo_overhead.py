"""How long `lossval demo` takes, and how much of it is orchestration and tracking overhead.

Runs the README's main job (`lossval demo`) in a fresh workspace as a subprocess, then reads
the run manifest's stage timings. "Compute" is the valuation (LossVal.fit) plus the two
retraining fits; everything else (process start, imports, Prefect's ephemeral server, GX,
MLflow logging and registry) is overhead. Target: overhead <= 20 s on the 2-core machine.

    python -m benchmarks.demo_overhead [--repeats 2] [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lossval.io import write_json

TARGET_OVERHEAD_S = 20.0


def run_once(env: dict[str, str], prefect_home: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lossval-demo-bench-") as tmp:
        ws = Path(tmp) / "ws"
        env = {**env, "PREFECT_HOME": str(prefect_home)}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "lossval.cli", "demo", "--workspace", str(ws)],
                              env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"lossval demo failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        manifest = json.loads(next((ws / "runs").glob("*/manifest.json")).read_text())
        timings = manifest["timings"]
        compute = manifest["valuation_seconds"] + timings["retrain"]
        return {"wall_s": wall, "valuation_s": manifest["valuation_seconds"], "retrain_s": timings["retrain"],
                "compute_s": compute, "overhead_s": wall - compute, "track_promote_s": timings["track_promote"],
                "ingest_s": timings["ingest"], "gate_s": timings["gate"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="pairs of (cold, warm) runs")
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args(argv)
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    keys = ("wall_s", "valuation_s", "retrain_s", "compute_s", "overhead_s", "track_promote_s", "ingest_s", "gate_s")
    results: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="lossval-prefect-home-") as home:
            # First run on an empty PREFECT_HOME (Prefect creates its database), then one reusing it,
            # as a user's second run does. Each run gets a fresh workspace (new MLflow DB).
            results["cold"].append(run_once(env, Path(home)))
            results["warm"].append(run_once(env, Path(home)))
    med = {kind: {k: statistics.median(r[k] for r in runs) for k in keys} for kind, runs in results.items()}
    verdict = {kind: "PASS" if m["overhead_s"] <= TARGET_OVERHEAD_S else "FAIL" for kind, m in med.items()}
    meta = {"generated": started, "command": "python -m benchmarks.demo_overhead " + " ".join(
        argv if argv is not None else sys.argv[1:]), "repeats": args.repeats, "cpu_count": os.cpu_count(),
        "wall_seconds": round(time.perf_counter() - t0, 1)}
    lines = ["# `lossval demo`: wall time and overhead", "",
             f"Generated {meta['generated']} by `{meta['command'].strip()}` in {meta['wall_seconds']:.0f} s.", "",
             f"{args.repeats} pairs of runs, each in a fresh workspace (new MLflow DB): 'cold' on an empty PREFECT_HOME "
             f"(Prefect creates its database), 'warm' reusing it as a user's next run does. Median seconds, "
             f"{os.cpu_count()} cores. Great Expectations and MLflow are imported, and the run's MLflow database "
             "created, while Prefect's temporary server starts, before the flow (flows.runner.run_flow): the stage "
             "columns do not include them.", "",
             "| Prefect home | wall | valuation | retrain (2 models) | compute | overhead | of which track+promote | ingest | gate |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += ["| " + kind + " | " + " | ".join(f"{med[kind][k]:.1f}" for k in keys) + " |" for kind in ("cold", "warm")]
    lines += ["", f"Target: overhead <= {TARGET_OVERHEAD_S:.0f} s: cold **{verdict['cold']}** ({med['cold']['overhead_s']:.1f} s), "
                  f"warm **{verdict['warm']}** ({med['warm']['overhead_s']:.1f} s)."]
    runs = results
    out = Path(args.out_dir)
    write_json({"meta": meta, "runs": runs, "median": med, "target_overhead_s": TARGET_OVERHEAD_S, "verdict": verdict},
               out / "demo_overhead.json")
    from lossval.io import atomic_write

    atomic_write(out / "demo_overhead.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
