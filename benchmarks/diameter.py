"""Seconds of the data's diameter (``blur="auto"``): the pruned largest distance against every pair.

A fit with ``blur="auto"`` starts by finding the largest distance between a training and a
validation row. From ``lossval.valuation._DISTANCE_PRUNE_PAIRS`` pairs up, only the rows that the
triangle inequality leaves in play are compared; this script times that against the chunked loop
over every pair (the code path below the threshold) on the same rows, and checks that the two
numbers are equal to the bit. Rows: synthetic data as ``benchmarks.speed`` makes it, prepared as a
fit prepares it (standardised features and the encoded target), and plain Gaussian rows.
One torch thread, as the benchmark suite's workers; CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lossval.io import atomic_write, write_json

CASES = ("classification:20", "regression:20", "classification:53", "regression:53",
         "gaussian:10", "gaussian:20", "gaussian:40")


def _rows(case: str, n: int, m: int):
    """``(Z, Z_val)`` of a case ``kind:features``."""
    import torch

    from benchmarks.speed import make_data
    from lossval.valuation import LossVal

    kind, features = case.split(":")
    if kind == "gaussian":
        g = torch.Generator().manual_seed(1)
        return torch.randn(n, int(features), generator=g), torch.randn(m, int(features), generator=g)
    X, y, X_val, y_val = make_data(n, int(features), n_valid=m, task=kind)
    prepared = LossVal(task=kind)._prepare(X, y, X_val, y_val, torch.device("cpu"))
    return prepared.Z, prepared.Z_val


def measure(case: str, n: int, m: int) -> dict:
    import torch

    from lossval import valuation as V

    Z, Z_val = _rows(case, n, m)
    started = time.perf_counter()
    pruned = V._max_distance(Z, Z_val)
    pruned_s = time.perf_counter() - started
    started = time.perf_counter()
    every = V._run_pieces(Z, Z_val, V._distance_pieces(n, m, V._DISTANCE_CHUNK), None)
    every_s = time.perf_counter() - started
    return {"case": case, "rows": n, "validation_rows": m, "columns": int(Z.shape[1]),
            "pruned_s": round(pruned_s, 3), "every_pair_s": round(every_s, 3),
            "equal": bool(torch.equal(pruned, every)), "distance": float(pruned),
            "pruning_tried": n * m >= V._DISTANCE_PRUNE_PAIRS}


def main(argv: list[str] | None = None) -> None:
    import torch

    from lossval import valuation as V

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="training rows (default 100000)")
    parser.add_argument("--valid", type=int, default=20_000, help="validation rows (default 20000)")
    parser.add_argument("--cases", default=",".join(CASES), help="kind:columns, comma-separated (default: all)")
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = []
        for case in args.cases.split(","):
            records.append(measure(case, args.rows, args.valid))
            r = records[-1]
            print(f"{case}: every pair {r['every_pair_s']:.2f} s, pruned {r['pruned_s']:.2f} s, equal {r['equal']}",
                  flush=True)
    finally:
        torch.set_num_threads(threads)
    command = "python -m benchmarks.diameter " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out_dir)
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json({"command": command.strip(), "generated": generated, "prune_from_pairs": V._DISTANCE_PRUNE_PAIRS,
                "records": records}, out / "diameter.json")
    lines = [f"# Largest training-validation distance: pruned vs every pair ({generated})", "",
             f"`{command.strip()}`; one torch thread, CPU. Pruning starts at {V._DISTANCE_PRUNE_PAIRS:,} pairs "
             f"(below it every pair is compared).", "",
             "| case | rows x validation rows | columns | every pair (s) | `_max_distance` (s) | pruning tried | same number |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['rows']:,} x {r['validation_rows']:,} | {r['columns']} | {r['every_pair_s']:.2f} "
              f"| {r['pruned_s']:.2f} | {'yes' if r['pruning_tried'] else 'no (too few pairs)'} "
              f"| {'yes' if r['equal'] else 'NO'} |" for r in records]
    atomic_write(out / "diameter.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    if not all(r["equal"] for r in records):
        raise SystemExit("the pruned largest distance differs from every pair's: a bug (see diameter.md)")


if __name__ == "__main__":
    main()
