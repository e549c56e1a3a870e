"""Stage 6: the promotion gate: GX pruned-data suite, metric non-regression, and the registered champion."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.io import write_json
from lossval.pruning import format_value, max_pruned
from lossval.retrain import HIGHER_IS_BETTER

__all__ = ["gate", "metric_failures", "metric_findings", "min_kept_rows", "remedies", "within", "PRIMARY_METRIC",
           "GATE_VERSION"]

#: Part of a run's key (:func:`flows.clean.run_key`): bump it when the gate decides differently on the same rows and
#: metrics, so that a nightly run does not repeat an earlier version's refusal (:func:`tasks.champion.refused_again`)
#: or skip as unchanged. 2: the feature-range margin grows for small validation splits. 3: ties of rmse/mae relative
#: to their size (a target's units no longer decide), min_rows from the pruning cap's own count, and a champion
#: that cannot score the test rows, or that predicts another target or label type, refuses. 4: drops equal to a
#: tolerance or limit pass whatever their float round-off; numbers stored as text are range-checked as numbers.
#: 5: the champion comparison applies gate.metric_limits and gate.refuse_when_all_worse too, not the primary metric only.
GATE_VERSION = 5

PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}


# Metric changes below this are ties for refuse_when_all_worse (half a unit of the 4th decimal shown); for metrics in
# the target's units (rmse, mae), below this fraction of the metric's size, so that the units do not decide.
SAME = 5e-5
_IN_TARGET_UNITS = frozenset({"rmse", "mae"})


def _tie_width(name: str, before: float, after: float) -> float:
    """How small a change of metric ``name`` is a tie: :data:`SAME`, relative to the size for rmse and mae."""
    if name in _IN_TARGET_UNITS:
        return SAME * max(abs(before), abs(after))
    return SAME


# A metric change this much (relative to the metrics' size) beyond a tolerance or limit is float round-off, not a
# loss: 0.90 - 0.88 is 0.020000000000000018, and a drop of exactly gate.metric_limits' 0.02 was refused at 26 of 31
# accuracy levels on 100 test rows.
ROUNDOFF = 1e-9


def within(drop: float, allowed: float, *values: float) -> bool:
    """``drop <= allowed`` up to float round-off in the ``values`` it was computed from; False for NaN."""
    return bool(drop <= allowed + ROUNDOFF * max([1.0, abs(allowed), *(abs(v) for v in values)]))


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
    return [text for _, text in metric_findings(metrics, task=task, tolerance=tolerance,
                                                refuse_when_all_worse=refuse_when_all_worse, limits=limits)]


def min_kept_rows(max_prune_fraction: float, rows_train: int) -> int:
    """The fewest kept rows the gate's suite accepts: what pruning to the cap keeps (the cap's own count)."""
    return rows_train - max_pruned(max_prune_fraction, rows_train)


def metric_findings(metrics: dict, *, task: str, tolerance: float, refuse_when_all_worse: bool,
                    limits: dict[str, float] | None = None) -> list[tuple[str, str]]:
    """:func:`metric_failures` as ``(rule, text)`` pairs; rule ``primary``, ``limit:<metric>``, ``unknown:<metric>``
    or ``all_worse`` (for :func:`remedies`, and for the champion comparison, which applies the same rules)."""
    metric = PRIMARY_METRIC[task]
    before, after = metrics["before"][metric], metrics["after"][metric]
    ok = within(before - after if HIGHER_IS_BETTER[metric] else after - before, tolerance, before, after)
    failures = [] if ok else [("primary", f"metric {metric} regressed: after {after:.4f} vs before {before:.4f} "
                                          f"(tolerance {tolerance})")]
    for name, limit in (limits or {}).items():
        if name not in metrics["after"]:
            failures.append((f"unknown:{name}", f"gate.metric_limits names {name}, which a {task} run does not report "
                                                f"(it reports {', '.join(metrics['after'])})"))
            continue
        b, a = metrics["before"][name], metrics["after"][name]
        worse_by = (b - a) if HIGHER_IS_BETTER[name] else (a - b)
        if not within(worse_by, limit, b, a):  # NaN (a metric that could not be computed) fails too
            failures.append((f"limit:{name}", f"metric {name} got worse by {worse_by:.4f} ({b:.4f} -> {a:.4f}), more "
                                              f"than gate.metric_limits allows ({limit:g})"))
    pairs = {name: (metrics["before"][name], value) for name, value in metrics["after"].items()}
    gain = {n: (a - b) if HIGHER_IS_BETTER[n] else (b - a) for n, (b, a) in pairs.items()}
    # Changes too small to show in the 4 decimals printed are float noise, not gains or losses; a loss
    # within the metric's own gate.metric_limits entry is one the user accepted.
    tie = {n: _tie_width(n, b, a) for n, (b, a) in pairs.items()}
    worse = {n for n, g in gain.items() if g < -tie[n] and not (n in (limits or {}) and within(-g, limits[n], *pairs[n]))}
    improved = {n for n, g in gain.items() if g > tie[n]}
    if refuse_when_all_worse and worse and not improved and len(pairs) > 1:
        shown = ", ".join(f"{n} {format_value(b)} -> {format_value(a)}" for n, (b, a) in pairs.items())
        if len(worse) == len(pairs):
            head = "every metric got worse"
        elif metric in worse:
            head = f"{metric} got worse and no other metric improved"
        elif gain[metric] < -tie[metric]:  # a drop its gate.metric_limits entry allows: not "unchanged"
            head = (f"{metric} fell (within gate.metric_limits), no metric improved and "
                    f"{', '.join(n for n in pairs if n in worse)} got worse")
        else:
            head = f"{metric} unchanged, no metric improved and {', '.join(n for n in pairs if n in worse)} got worse"
        failures.append(("all_worse", f"{head}: {shown} (gate.refuse_when_all_worse)"))
    return failures


# How to prune less, per pruning policy (every policy is capped by max_prune_fraction as well).
_LESS = {"two_means": "(a lower pruning.max_prune_fraction, or policy: fraction with a smaller pruning.fraction)",
         "fraction": "(a smaller pruning.fraction, or a lower pruning.max_prune_fraction)",
         "threshold": "(a lower pruning.threshold, or a lower pruning.max_prune_fraction)",
         "mixture": "(a higher pruning.min_probability, or a lower pruning.max_prune_fraction)"}
# Checks of the kept rows that hold by construction (ingest refuses empty targets and numbers the rows itself).
_INVARIANTS = {("expect_column_values_to_be_unique", "row_id"), ("expect_column_values_to_not_be_null", "${target}")}
_OWN = "(a failed check of the user's suite)"  # remedies' placeholder for the one sentence about them all


def shared_failures(record: dict, *, private: bool) -> list[str]:
    """A gate record's failures (:func:`gate`'s, or a run summary's ``gate``) as they may leave the run folder: with
    ``private`` (``tracking.log_quarantine`` false) a value a check observed in the rows (a column's max) is withheld,
    as ``failures_without_values`` words them; a record written before that wording existed has its failures
    counted, not quoted."""
    failures = list(record["failures"])
    if not private or not failures:
        return failures
    shared = record.get("failures_without_values")
    if shared is not None:
        return list(shared)
    return [f"{len(failures)} failed check(s), not quoted: tracking.log_quarantine is false; the run folder's "
            "gate.json has them"]


def remedies(*, gx_failed: list[dict], metric_rules: list[str], champion: dict | None, suite: str,
             target: str, policy: str = "two_means", soft: bool = False, rows_train: int | None = None) -> list[str]:
    """What a user can do about a refused run, one sentence per kind of failure, in the order the failures are listed
    (:func:`gate`: metric rules, then the champion, then the data checks).

    Args:
        gx_failed: ``validate_frame(...)["failed"]``: type, column, ``meta.why``, suite entry and numeric
            ``min_value`` of each failed expectation.
        metric_rules: The rules of :func:`metric_findings` that fired.
        champion: :func:`tasks.champion.compare_with_champion`'s record, or None.
        suite: The suite file, for a failed expectation of the user's own.
        target: The target column.
        policy: ``pruning.policy``: how to prune less is said in that policy's terms.
        soft: ``retrain.mode: soft``: "after" trained on every row, weighted by its value, so pruning less does
            not change it; the metric remedies say so.
        rows_train: The training rows: a suite minimum row count above it cannot be met by pruning less.
    """
    from tasks.gx import RANGE_WHY

    less = _LESS[policy]
    prune_less = f"prune less {less}"
    invariants = {(kind, target if column == "${target}" else column) for kind, column in _INVARIANTS}
    data: list[str] = []  # the data checks' remedies: listed last, as their failures are
    ranged = [f["column"] for f in gx_failed if f["why"] == RANGE_WHY and not f.get("error")]
    own: list[int | None] = []  # the suite entries of failed checks of the user's suite
    for f in gx_failed:
        entry = f" ({suite}, expectations[{f['entry']}])" if f.get("entry") is not None else f" ({suite})"
        if f["type"] == "expect_column_distinct_values_to_contain_set" and f["column"] == target:
            data.append("Pruning removed every row of a class: check whether that class's rows are mislabelled "
                       f"(quarantine.parquet in the run folder), or {prune_less}.")
        elif (f["type"] == "expect_table_row_count_to_be_between" and rows_train is not None
              and f.get("min_value") is not None and f["min_value"] > rows_train):
            least = int(f["min_value"]) if float(f["min_value"]).is_integer() else f["min_value"]
            data.append(f"The suite's minimum row count ({least}) is above the {rows_train} training rows, "
                        f"so no pruning can meet it: lower that minimum in the suite{entry}.")
        elif f["type"] == "expect_table_row_count_to_be_between":
            data.append(f"Fewer rows were kept than the suite's minimum: {prune_less}, or lower that minimum if "
                       f"your suite ({suite}) sets it.")
        elif (f["type"], f["column"]) in invariants:
            data.append(f"The kept rows fail {f['type']} on {f['column']!r}, which lossval's own steps guarantee "
                       "(ingest refuses empty targets and numbers the rows), so this is a lossval bug: run "
                       "`lossval verify` on the run folder and report its output with gate.json.")
        elif f.get("error") and f["why"] != RANGE_WHY:
            data.append(f"The check {f['type']} on {f['column']!r} of your suite{entry} could not be evaluated on the "
                        "kept rows (the error is in the failed check): fix that expectation in the suite (its "
                        "arguments against the column's type and values, in kept.parquet).")
        elif f.get("error"):
            data.append(f"The check {f['type']} on {f['column']!r} could not be evaluated on the kept rows (the error is "
                        "in the failed check): look at that column's values and type in kept.parquet and in the "
                        "validation split; as it is lossval's own range check, report it with gate.json.")
        elif f["why"] == RANGE_WHY:
            data.append(f"The kept rows' {', '.join(repr(c) for c in ranged[:5])} lie outside the validation split's "
                       "widened range (the run folder's gate.json has the bounds; with tracking.log_quarantine false "
                       "only it): the training data and the validation split disagree there (other units, a shifted "
                       "export?); check those columns and the validation choice (validation.*).")
        else:
            own.append(f.get("entry"))
            data.append(_OWN)  # one sentence for them all, naming each entry: below
    where = ", ".join([suite] + [f"expectations[{i}]" for i in dict.fromkeys(own) if i is not None])
    which = "that expectation is" if len(set(own)) == 1 else "those expectations are"
    data = [f"A check of your suite failed on the kept rows: fix the data, or the suite ({where}) if {which} wrong."
            if text == _OWN else text for text in data]
    out: list[str] = []  # the deciding failures' remedies first: metrics, then the champion
    for rule in metric_rules:
        if soft and rule != "primary" and not rule.startswith("unknown:"):
            out.append("Weighting the rows by their values (retrain.mode: soft) gained nothing or lost on the test "
                       "rows: try retrain.mode: prune, or "
                       + (f"raise gate.metric_limits.{rule.split(':', 1)[1]} if a loss of this size is acceptable."
                          if rule.startswith("limit:") else
                          "set gate.refuse_when_all_worse: false to promote runs that improve no metric (the primary one "
                          "staying within gate.metric_tolerance)."))
        elif soft and rule == "primary":
            out.append("The model trained on every row weighted by its value (retrain.mode: soft) scores worse on the "
                       "test rows than the one trained on all of them unweighted, so the low-valued rows held signal: "
                       "review quarantine.parquet (the lowest values), try retrain.mode: prune, and raise "
                       "gate.metric_tolerance only if a drop of this size is acceptable.")
        elif rule == "primary":
            out.append("The model retrained on the kept rows scores worse on the test rows than the one trained on "
                       "all of them, so the quarantined rows held signal: review quarantine.parquet (list rows to put "
                       f"back in pruning.keep_ids), then {prune_less}; raise gate.metric_tolerance only if a drop of "
                       "this size is acceptable.")
        elif rule.startswith("limit:"):
            name = rule.split(":", 1)[1]
            out.append(f"Prune less {less}, or raise gate.metric_limits.{name} if a loss of "
                       "this size is acceptable.")
        elif rule.startswith("unknown:"):
            out.append(f"Remove {rule.split(':', 1)[1]} from gate.metric_limits: this task does not report it.")
        elif rule == "all_worse":
            out.append(f"Pruning gained nothing on the test rows: {prune_less}, or set gate.refuse_when_all_worse: "
                       "false to promote runs that improve no metric (the primary one staying within "
                       "gate.metric_tolerance).")
    if champion and champion["worse"]:
        # Name the key of the rule that refused: raising gate.metric_tolerance does nothing for a run within it that
        # improved on the champion nowhere (gate.refuse_when_all_worse), or one past a gate.metric_limits entry.
        keys = []
        for rule in champion.get("worse_rules") or ["primary"]:
            if rule == "primary":
                keys.append("raise gate.metric_tolerance only if the drop is acceptable")
            elif rule.startswith("limit:"):
                name = rule.split(":", 1)[1]
                keys.append(f"raise gate.metric_limits.{name} only if a loss of this size is acceptable")
            elif rule == "all_worse":
                keys.append("set gate.refuse_when_all_worse: false only to promote a run that improves on it nowhere "
                            "(the primary metric staying within gate.metric_tolerance)")
        out.append("The registered champion scores better on this run's test rows: check this data against the "
                   "champion's (a shifted, smaller or mislabelled export?) and compare the two runs in MLflow; "
                   + "; ".join(dict.fromkeys(keys)) + ".")
    out = list(dict.fromkeys(out + data))  # one of each, in order
    named = [i for i, text in enumerate(out) if less in text]
    for i in named[1:]:  # the keys that prune less are named once, in the first sentence that says it
        out[i] = out[i].replace(f" {less}", "")
    return out


@task(name="gate")
def gate(kept: str, validation: str, encoder: str, metrics: dict, *, config: PipelineConfig, rows_train: int,
         run_dir: str, test: str | None = None, workspace: str | None = None) -> dict:
    """Check the kept rows with the pruned-data suite and the "after" metric against "before".

    Suite parameters: ``target``, ``min_rows`` (what pruning to max_prune_fraction keeps, :func:`min_kept_rows`),
    ``classes`` (every training class must still be present); feature-range expectations come
    from the validation split. The primary metric (accuracy / R^2) must satisfy
    ``after >= before - gate.metric_tolerance``; each metric of ``gate.metric_limits`` may be worse
    by at most its limit; and (``gate.refuse_when_all_worse``, default on) a run is refused when
    some metric got worse and none improved (the primary metric worse inside the tolerance or
    unchanged, the others worse or unchanged).

    With ``gate.compare_with_champion`` (default on; needs ``test`` and ``workspace``) the
    registered champion is scored on the same test rows and "after" must meet the same rules against
    it (below it by at most the tolerance on the primary metric, each limit of ``gate.metric_limits``,
    and some metric better when one is worse), and a change of feature columns, their kinds, the
    task or the classes is refused unless ``gate.allow_schema_change`` (:mod:`tasks.champion`).

    Returns ``{"passed", "failures", "failures_without_values", "remedies", "result_path", "suite", "champion",
    "notes"}`` (``failures_without_values``: the failures with an observed value of the rows withheld, for the
    tracking store when ``tracking.log_quarantine`` is false; ``remedies``: what a user can do about the failures,
    :func:`remedies`; ``notes``: what the checks could not judge, passed or not: a test split too small for the
    tolerance, columns not range-checked); writes ``gate.json``.
    """
    from lossval.suites import suite_file
    from tasks.gx import numbers_as_read, range_expectations, range_margin, unranged_columns, validate_frame

    enc = TabularEncoder.load(encoder)
    # numbers stored as text (the encoder reads them as numbers) are range-checked as numbers
    kp, va = (numbers_as_read(pd.read_parquet(p), enc.numeric_columns_) for p in (kept, validation))
    params = {"target": config.target,
              "min_rows": min_kept_rows(config.pruning.max_prune_fraction, rows_train),
              "classes": [c for c in enc.classes_] if enc.classes_ is not None else []}
    suite = str(suite_file(config.gate.suite))
    gx_result = validate_frame(kp, suite=suite, params=params, task_kind=enc.task_,
                               extra=range_expectations(va, enc.numeric_columns_))
    notes = []
    unranged = unranged_columns(va, enc.numeric_columns_)
    if unranged:
        notes.append(f"not range-checked, one value (or none) in the validation split's {len(va)} rows: "
                     + ", ".join(unranged[:10]) + (f" and {len(unranged) - 10} more" if len(unranged) > 10 else ""))
    metric = PRIMARY_METRIC[enc.task_]
    tol = config.gate.metric_tolerance
    found = metric_findings(metrics, task=enc.task_, tolerance=tol,
                            refuse_when_all_worse=config.gate.refuse_when_all_worse, limits=config.gate.metric_limits)
    # The verdict's deciding reasons first (metrics, then the champion's), the data checks after: a long list of
    # column-range failures must not bury them (the MLflow description shows the first few).
    failures = [text for _, text in found]
    champion = None
    test_rows = pd.read_parquet(test) if test is not None else None
    if test_rows is not None and metric == "accuracy" and len(test_rows) and 1 / len(test_rows) > tol:
        notes.append(f"the test split has {len(test_rows)} row{'' if len(test_rows) == 1 else 's'}: one row moves "
                     f"accuracy by {1 / len(test_rows):.3f}, "
                     f"more than gate.metric_tolerance ({tol}), so the metric checks judge by single rows")
        get_run_logger().warning("%s", notes[-1])
    if config.gate.compare_with_champion and test_rows is not None and workspace is not None:
        from tasks.champion import compare_with_champion

        champion = compare_with_champion(config, workspace, encoder=enc, test=test_rows, after=metrics["after"])
        failures += champion["failures"]
    # The same with an observed value of the rows withheld: what the tracking store gets with tracking.log_quarantine
    # false (the metric and champion failures hold no value of a row).
    without_values = failures + list(gx_result["failures_without_values"])
    failures += list(gx_result["failures"])
    todo = remedies(gx_failed=gx_result["failed"], metric_rules=[rule for rule, _ in found], champion=champion,
                    suite=suite, target=config.target, policy=config.pruning.policy,
                    soft=config.retrain.mode == "soft", rows_train=rows_train) if failures else []
    record = {"passed": not failures, "failures": failures, "remedies": todo, "suite": gx_result["suite"],
              "metric": metric,
              "before": metrics["before"][metric], "after": metrics["after"][metric], "tolerance": tol,
              "metric_limits": dict(config.gate.metric_limits), "champion": champion, "notes": notes,
              "checks": gx_result["checks"], "checks_passed": sum(c["success"] for c in gx_result["checks"]),
              "checks_failed": sum(not c["success"] for c in gx_result["checks"]), "gx": gx_result["result"]}
    path = write_json(record, f"{run_dir}/gate.json")
    return {"passed": not failures, "failures": failures, "failures_without_values": without_values, "remedies": todo,
            "result_path": str(path), "suite": gx_result["suite"], "champion": champion, "notes": notes}
