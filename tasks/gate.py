"""Stage 6: the promotion gate: GX pruned-data suite, metric non-regression, and the registered champion."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.io import write_json
from lossval.retrain import HIGHER_IS_BETTER

__all__ = ["gate", "metric_failures", "PRIMARY_METRIC"]

PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}


# Metric changes below this are ties for refuse_when_all_worse (half a unit of the 4th decimal shown).
SAME = 5e-5


def metric_failures(metrics: dict, *, task: str, tolerance: float, refuse_when_all_worse: bool,
                    limits: dict[str, float] | None = None) -> list[str]:
    """Why "after" may not replace "before" on these test metrics (empty: it may), every reason that applies.

    Refused when the primary metric got worse by more than ``tolerance``; when a metric of
    ``limits`` got worse by more than its limit (``gate.metric_limits``; e.g. log-loss, which
    pruning can worsen while accuracy improves); or, with ``refuse_when_all_worse``, when some
    metric got worse and none improved: the primary metric worse (even inside the tolerance) or
    unchanged, and the others worse or unchanged. Nothing was gained for the loss. (Ties are
    common: accuracy on 140 test rows moves in steps of 0.007.) Changes smaller than :data:`SAME`
    count as ties, and a loss within a metric's ``limits`` entry does not count as worse.
    """
    metric = PRIMARY_METRIC[task]
    before, after = metrics["before"][metric], metrics["after"][metric]
    ok = after >= before - tolerance if HIGHER_IS_BETTER[metric] else after <= before + tolerance
    failures = [] if ok else [f"metric {metric} regressed: after {after:.4f} vs before {before:.4f} (tolerance {tolerance})"]
    for name, limit in (limits or {}).items():
        if name not in metrics["after"]:
            failures.append(f"gate.metric_limits names {name}, which a {task} run does not report "
                            f"(it reports {', '.join(metrics['after'])})")
            continue
        b, a = metrics["before"][name], metrics["after"][name]
        worse_by = (b - a) if HIGHER_IS_BETTER[name] else (a - b)
        if not worse_by <= limit:  # NaN (a metric that could not be computed) fails too
            failures.append(f"metric {name} got worse by {worse_by:.4f} ({b:.4f} -> {a:.4f}), more than "
                            f"gate.metric_limits allows ({limit:g})")
    pairs = {name: (metrics["before"][name], value) for name, value in metrics["after"].items()}
    gain = {n: (a - b) if HIGHER_IS_BETTER[n] else (b - a) for n, (b, a) in pairs.items()}
    # Changes too small to show in the 4 decimals printed are float noise, not gains or losses; a loss
    # within the metric's own gate.metric_limits entry is one the user accepted.
    worse = {n for n, g in gain.items() if g < -SAME and not (n in (limits or {}) and -g <= limits[n])}
    improved = {n for n, g in gain.items() if g > SAME}
    if refuse_when_all_worse and worse and not improved and len(pairs) > 1:
        shown = ", ".join(f"{n} {b:.4f} -> {a:.4f}" for n, (b, a) in pairs.items())
        if len(worse) == len(pairs):
            head = "every metric got worse"
        elif metric in worse:
            head = f"{metric} got worse and no other metric improved"
        else:
            head = f"{metric} unchanged, no metric improved and {', '.join(n for n in pairs if n in worse)} got worse"
        failures.append(f"{head}: {shown} (gate.refuse_when_all_worse)")
    return failures


@task(name="gate")
def gate(kept: str, validation: str, encoder: str, metrics: dict, *, config: PipelineConfig, rows_train: int,
         run_dir: str, test: str | None = None, workspace: str | None = None) -> dict:
    """Check the kept rows with the pruned-data suite and the "after" metric against "before".

    Suite parameters: ``target``, ``min_rows = ceil((1 - max_prune_fraction) * rows_train)``,
    ``classes`` (every training class must still be present); feature-range expectations come
    from the validation split. The primary metric (accuracy / R^2) must satisfy
    ``after >= before - gate.metric_tolerance``; each metric of ``gate.metric_limits`` may be worse
    by at most its limit; and (``gate.refuse_when_all_worse``, default on) a run is refused when
    some metric got worse and none improved (the primary metric worse inside the tolerance or
    unchanged, the others worse or unchanged).

    With ``gate.compare_with_champion`` (default on; needs ``test`` and ``workspace``) the
    registered champion is scored on the same test rows: "after" may be below it by at most the
    tolerance, and a change of feature columns, their kinds, the task or the classes is refused
    unless ``gate.allow_schema_change`` (:mod:`tasks.champion`).

    Returns ``{"passed", "failures", "result_path", "suite", "champion"}``; writes ``gate.json``.
    """
    import math

    from lossval.suites import suite_file
    from tasks.gx import range_expectations, validate_frame

    enc = TabularEncoder.load(encoder)
    kp, va = pd.read_parquet(kept), pd.read_parquet(validation)
    params = {"target": config.target,
              "min_rows": math.ceil((1 - config.pruning.max_prune_fraction) * rows_train - 1e-9),
              "classes": [c for c in enc.classes_] if enc.classes_ is not None else []}
    suite = str(suite_file(config.gate.suite))
    gx_result = validate_frame(kp, suite=suite, params=params, task_kind=enc.task_,
                               extra=range_expectations(va, enc.numeric_columns_))
    metric = PRIMARY_METRIC[enc.task_]
    tol = config.gate.metric_tolerance
    failures = list(gx_result["failures"]) + metric_failures(
        metrics, task=enc.task_, tolerance=tol, refuse_when_all_worse=config.gate.refuse_when_all_worse,
        limits=config.gate.metric_limits)
    champion, notes = None, []
    test_rows = pd.read_parquet(test) if test is not None else None
    if test_rows is not None and metric == "accuracy" and len(test_rows) and 1 / len(test_rows) > tol:
        notes.append(f"the test split has {len(test_rows)} rows: one row moves accuracy by {1 / len(test_rows):.3f}, "
                     f"more than gate.metric_tolerance ({tol}), so the metric checks judge by single rows")
        get_run_logger().warning("%s", notes[-1])
    if config.gate.compare_with_champion and test_rows is not None and workspace is not None:
        from tasks.champion import compare_with_champion

        champion = compare_with_champion(config, workspace, encoder=enc, test=test_rows, after=metrics["after"])
        failures += champion["failures"]
    record = {"passed": not failures, "failures": failures, "suite": gx_result["suite"], "metric": metric,
              "before": metrics["before"][metric], "after": metrics["after"][metric], "tolerance": tol,
              "metric_limits": dict(config.gate.metric_limits), "champion": champion, "notes": notes,
              "gx": gx_result["result"]}
    path = write_json(record, f"{run_dir}/gate.json")
    return {"passed": not failures, "failures": failures, "result_path": str(path), "suite": gx_result["suite"],
            "champion": champion}
