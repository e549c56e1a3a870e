"""Stage 6: the promotion gate: GX pruned-data suite + metric non-regression."""

from __future__ import annotations

import pandas as pd
from prefect import task

from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.io import write_json
from lossval.retrain import HIGHER_IS_BETTER

__all__ = ["gate", "PRIMARY_METRIC"]

PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}


@task(name="gate")
def gate(kept: str, validation: str, encoder: str, metrics: dict, *, config: PipelineConfig, rows_train: int,
         run_dir: str) -> dict:
    """Check the kept rows with the pruned-data suite and the "after" metric against "before".

    Suite parameters: ``target``, ``min_rows = ceil((1 - max_prune_fraction) * rows_train)``,
    ``classes`` (every training class must still be present); feature-range expectations come
    from the validation split. The primary metric (accuracy / R^2) must satisfy
    ``after >= before - gate.metric_tolerance``.

    Returns ``{"passed", "failures", "result_path", "suite"}``; writes ``gate.json``.
    """
    import math

    from tasks.gx import SUITES_DIR, range_expectations, validate_frame

    enc = TabularEncoder.load(encoder)
    kp, va = pd.read_parquet(kept), pd.read_parquet(validation)
    params = {"target": config.target,
              "min_rows": math.ceil((1 - config.pruning.max_prune_fraction) * rows_train - 1e-9),
              "classes": [c for c in enc.classes_] if enc.classes_ is not None else []}
    suite = config.gate.suite or str(SUITES_DIR / "pruned_data.json")
    gx_result = validate_frame(kp, suite=suite, params=params, task_kind=enc.task_,
                               extra=range_expectations(va, enc.numeric_columns_))
    failures = list(gx_result["failures"])
    metric = PRIMARY_METRIC[enc.task_]
    before, after = metrics["before"][metric], metrics["after"][metric]
    tol = config.gate.metric_tolerance
    ok = after >= before - tol if HIGHER_IS_BETTER[metric] else after <= before + tol
    if not ok:
        failures.append(f"metric {metric} regressed: after {after:.4f} vs before {before:.4f} (tolerance {tol})")
    record = {"passed": not failures, "failures": failures, "suite": gx_result["suite"], "metric": metric,
              "before": before, "after": after, "tolerance": tol, "gx": gx_result["result"]}
    path = write_json(record, f"{run_dir}/gate.json")
    return {"passed": not failures, "failures": failures, "result_path": str(path), "suite": gx_result["suite"]}
