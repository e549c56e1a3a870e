"""Stage 4: values -> kept rows and quarantined rows (never deleted)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from prefect import task

from lossval.config import PipelineConfig
from lossval.errors import InputError
from lossval.io import write_parquet
from lossval.pruning import format_value, make_policy, prune as prune_values
from lossval.splitting import MIN_TRAIN_ROWS
from tasks._log import run_logger

__all__ = ["prune", "decision_table", "DECISION_OUTCOMES", "policy_from_config", "describe_pruning", "lowest_value_rows", "QUARANTINE_VALUE", "QUARANTINE_REASON",
           "RESERVED_COLUMNS"]

QUARANTINE_VALUE = "lossval_value"  # the row's LossVal value, added to each quarantined row
QUARANTINE_REASON = "lossval_reason"  # why it was quarantined
RESERVED_COLUMNS = ("row_id", QUARANTINE_VALUE, QUARANTINE_REASON)  # input data may not use these names


def policy_from_config(config: PipelineConfig):  # noqa: ANN201
    return make_policy(config.pruning.policy, **config.pruning.policy_params())


def _identical_rows(train: pd.DataFrame, *, id_column: str | None, seen: list | None = None) -> np.ndarray | None:
    """One group id per training row, shared by rows identical in what LossVal saw of them; None when the rows
    cannot be hashed (a column of lists, say: then ties are taken by row position).

    ``seen``: the feature columns and the target (LossVal's ``average_duplicates`` gives such rows one
    value), so two rows that differ only in an excluded column (a timestamp, an export batch) go
    together; without it, every column but the ids.
    """
    data = train[seen] if seen is not None else train.drop(columns=[c for c in ("row_id", id_column)
                                                                      if c in train.columns])
    try:
        return pd.util.hash_pandas_object(data, index=False).to_numpy()
    except (TypeError, ValueError):
        return None


LOWEST_ROWS = 20  # rows in the review table of lowest-value rows (MLflow's lowest_values.json, Prefect's table)

# How the review table words what held back a row the policy flagged (PruneDecision.held_back).
_HELD_BACK_WORDS = {"reviewed": "kept: flagged, put back by review (pruning.keep_ids)",
                    "max_prune_fraction": "kept: flagged, held back by the max_prune_fraction cap",
                    "class protection": "kept: flagged, held back by class protection",
                    "identical copies": "kept: flagged, kept with its identical copies"}


def _lowest(values: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` lowest-value rows of ``values.parquet``, ties by file order: the review table's rows."""
    return values.nsmallest(n, "value")


def lowest_value_rows(values: str, kept: str, quarantine: str, *, target: str, n: int = LOWEST_ROWS,
                      max_data_columns: int = 12, held_back: dict | None = None,
                      id_column: str | None = None) -> pd.DataFrame:
    """The ``n`` lowest-value training rows, with what a reviewer needs to judge them.

    One row each: ``row_id``, ``value`` (and the other columns of ``values.parquet``: ``rank``,
    ``noise_prob``), ``reason`` (why it was quarantined; ``"kept"``; or, for a kept row the policy
    flagged, what held it back: ``"kept: flagged, held back by the max_prune_fraction cap"``), then
    the row itself: the target first and the first other input columns, up to ``max_data_columns``
    in all. A data column named like one of ours gets a ``data:`` prefix. Non-numeric cells are
    shown as text, so the table always serialises (MLflow's table view, Prefect's table artifact).

    ``held_back``: row id -> what held it back, as the prune stage's record has it for its lowest
    rows (:func:`prune`); without it a flagged row that stayed reads ``"kept"``.
    ``id_column``: the config's id column, left out of the data columns: ``row_id`` holds its values.
    """
    vals = _lowest(pd.read_parquet(values), n)
    ids = vals["row_id"].tolist()
    parts = [pd.read_parquet(path, filters=[("row_id", "in", ids)]) for path in (quarantine, kept)]
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    data = [target] + [c for c in rows.columns if c not in (target, id_column, *RESERVED_COLUMNS)]
    data = [c for c in data if c in rows.columns][:max_data_columns]
    shown = rows[["row_id", *data]].copy()
    for col in data:
        if not pd.api.types.is_numeric_dtype(shown[col]) or pd.api.types.is_bool_dtype(shown[col]):
            shown[col] = pd.Series([_cell_text(v) for v in shown[col].tolist()], index=shown.index, dtype=object)
    names, used = {}, set(vals.columns) | {"reason"} | set(data)
    for col in data:  # a data column named like one of ours (or like a renamed one) gets a unique prefix
        if col in set(vals.columns) | {"reason"}:
            name = f"data:{col}"
            while name in used:
                name = f"data:{name}"
            names[col] = name
            used.add(name)
    shown = shown.rename(columns=names)
    reason = rows[QUARANTINE_REASON] if QUARANTINE_REASON in rows.columns else pd.Series(None, index=rows.index)
    held = rows["row_id"].map(lambda rid: _HELD_BACK_WORDS.get((held_back or {}).get(rid), "kept"))
    shown.insert(1, "reason", reason.where(reason.notna(), held).astype(str))
    return vals.merge(shown, on="row_id", how="left").reset_index(drop=True)


def _cell_text(value: object) -> str | None:
    """A cell as text for a review table; None when missing (a list or array cell is shown, not tested)."""
    if isinstance(value, (list, tuple, dict, set)) or hasattr(value, "__array__") and getattr(value, "ndim", 0) > 0:
        return str(value)  # a list, array or struct: shown whole, even [None]
    try:
        missing = bool(pd.isna(value))
    except (TypeError, ValueError):
        missing = False
    return None if missing else str(value)


def describe_pruning(pruning: dict) -> str:
    """One sentence on what the policy flagged and what held it back (run summary, Prefect artifact).

    Args:
        pruning: The run summary's ``pruning`` record (``policy``, ``flagged``, ``quarantined``,
            ``protected``, ``kept_together``, ``reviewed``, ``cap_hit``, ``class_cap_hit``, ``capped_classes``,
            ``max_prune_fraction``, ``min_probability``; a run written before ``kept_together``, ``reviewed`` or
            ``min_probability`` existed has none).
    """
    text = f"{pruning['policy']} flagged {pruning['flagged']} rows"
    cut = pruning.get("threshold")
    if cut is not None and math.isfinite(cut) and pruning["policy"] in ("two_means", "threshold", "fraction"):
        text += f" (values {'up to' if pruning['policy'] == 'fraction' else 'below'} {format_value(cut)})"
    elif pruning["policy"] == "mixture" and pruning.get("min_probability") is not None:  # its cut is on P(noisy)
        text += f" (P(noisy) at least {pruning['min_probability']:g})"
    if pruning.get("protected"):
        text += f"; class protection kept {pruning['protected']} of them (each class keeps its best rows)"
    if pruning.get("kept_together"):
        text += (f"; {pruning['kept_together']} stayed with their identical copies (a row and its copies are "
                 "quarantined or kept together)")
    reviewed = pruning.get("reviewed") or 0
    let_go = pruning["quarantined"] + reviewed  # what the cap let go, before the review put some back
    advice = ""
    if pruning.get("class_cap_hit"):
        capped = pruning.get("capped_classes") or []
        which = (f"classes {', '.join(map(repr, capped))} had more flagged rows than their share" if len(capped) > 1
                 else f"{f'class {capped[0]!r}' if capped else 'a class'} had more flagged rows than its share")
        text += (f"; max_prune_fraction {pruning['max_prune_fraction']:g} of each class's rows let "
                 f"{let_go} go ({which})")
    elif pruning["cap_hit"]:
        text += f"; max_prune_fraction {pruning['max_prune_fraction']:g} let {let_go} go"
        advice = (". A policy that flags more than the cap may be finding no separate low-value group: see the "
                  "README, 'When the data is already clean'")
    if reviewed:
        text += f"; review put {reviewed} of those back (pruning.keep_ids)"
    text += advice
    return text + "."


DECISION_OUTCOMES = ("quarantined", "held back: reviewed", "held back: max_prune_fraction",
                     "held back: class protection", "held back: identical copies", "kept")


def decision_table(row_ids: pd.Series, values: np.ndarray, decision,  # noqa: ANN001
                   noise_prob: np.ndarray | None = None) -> pd.DataFrame:
    """One row per training row, lowest value first (ties in file order): ``row_id``, ``value``,
    ``noise_prob`` (the mixture policy's P(noisy), when it ran), ``flagged`` (the policy flagged it) and
    ``outcome`` (:data:`DECISION_OUTCOMES`: ``"quarantined"``, ``"held back: <what>"`` for a flagged row
    that stays, ``"kept"``). ``decisions.parquet`` in the run folder: the full list behind the review
    table's lowest 20, flagged rows the cap kept included.
    """
    held = pd.Series(decision.held_back, dtype=object)
    outcome = np.where(~decision.keep, "quarantined",
                       np.where(held.notna().to_numpy(), "held back: " + held.fillna("").astype(str).to_numpy(), "kept"))
    table = pd.DataFrame({"row_id": np.asarray(row_ids, dtype=object), "value": np.asarray(values, dtype=float)})
    if noise_prob is not None:
        table["noise_prob"] = np.asarray(noise_prob, dtype=float)
    table["flagged"], table["outcome"] = outcome != "kept", outcome.astype(object)
    return table.sort_values("value", kind="stable").reset_index(drop=True)


@task(name="prune")
def prune(train: str, values: str, *, config: PipelineConfig, task_kind: str, run_dir: str,
          encoder: str | None = None) -> dict:
    """Write ``kept.parquet``, ``quarantine.parquet`` (dropped rows whole, plus ``lossval_value`` and ``lossval_reason``)
    and ``decisions.parquet`` (every row's value and outcome: :func:`decision_table`).

    ``encoder``: the value stage's ``encoder.json``; rows identical in its feature columns and the target (which
    LossVal gave one value) are quarantined or kept together. Without it, rows identical in every column.
    """
    tr = pd.read_parquet(train)
    seen = None
    if encoder is not None:
        from lossval.encoding import TabularEncoder

        features = [c for c in TabularEncoder.load(encoder).feature_columns_ if c in tr.columns]
        seen = [*features, config.target]
    vals = pd.read_parquet(values).set_index("row_id").loc[tr["row_id"]]
    labels = tr[config.target].astype(str).to_numpy() if task_kind == "classification" else None
    reviewed, review = _reviewed_rows(tr["row_id"], config)
    decision = prune_values(vals["value"].to_numpy(), policy=policy_from_config(config),
                            max_prune_fraction=config.pruning.max_prune_fraction, labels=labels,
                            noise_prob=vals["noise_prob"].to_numpy() if "noise_prob" in vals else None,
                            groups=_identical_rows(tr, id_column=config.id_column, seen=seen), keep=reviewed)
    if decision.n_kept_together:
        run_logger().info("%d flagged row(s) the policy or the cap would have quarantined were kept with their "
                          "identical copies (a row and its copies go together)", decision.n_kept_together)
    kept = tr[decision.keep]
    if len(kept) < MIN_TRAIN_ROWS:
        raise InputError(
            f"pruning ({decision.policy}, max_prune_fraction {config.pruning.max_prune_fraction:g}) would keep "
            f"{len(kept)} of {len(tr)} training rows; retraining needs at least {MIN_TRAIN_ROWS}. Lower "
            "pruning.max_prune_fraction (or loosen the policy); nothing was quarantined.",
            source=config.data)
    quarantine = tr[~decision.keep].copy()
    # lossval's own columns get reserved names: the rows' own "value" or "reason" stay as they were
    quarantine[QUARANTINE_VALUE] = vals["value"].to_numpy()[~decision.keep]
    quarantine[QUARANTINE_REASON] = [r for r in decision.reasons if r is not None]
    noise_prob = vals["noise_prob"].to_numpy() if decision.policy == "mixture" and "noise_prob" in vals else None
    decided = decision_table(tr["row_id"], vals["value"].to_numpy(), decision, noise_prob=noise_prob)
    paths = {"kept": str(write_parquet(kept, f"{run_dir}/kept.parquet")),
             "quarantine": str(write_parquet(quarantine, f"{run_dir}/quarantine.parquet")),
             "decisions": str(write_parquet(decided, f"{run_dir}/decisions.parquet"))}
    # What held back the flagged rows that stay, for those of the review table's rows (lowest_value_rows): row ids of
    # a few rows, not one per row.
    why = {rid: held for rid, held in zip(tr["row_id"].tolist(), decision.held_back) if held}
    lowest = _lowest(pd.read_parquet(values, columns=["row_id", "value"]), LOWEST_ROWS)["row_id"].tolist()
    return {"paths": paths, "rows_kept": len(kept), "rows_pruned": len(quarantine), "threshold": decision.threshold,
            "flagged": decision.n_candidates, "protected": decision.n_protected,
            "kept_together": decision.n_kept_together, "cap_hit": decision.cap_hit,
            "class_cap_hit": decision.class_cap_hit, "capped_classes": [str(c) for c in decision.capped_classes],
            "policy": decision.policy, "held_back": {rid: why[rid] for rid in lowest if rid in why},
            "reviewed": decision.n_reviewed, "keep_ids": review}


def _reviewed_rows(row_ids: pd.Series, config: PipelineConfig) -> tuple[np.ndarray | None, dict | None]:
    """``pruning.keep_ids``: which training rows a reviewer put back (never quarantined), and a record of the file
    (path, sha256, ids listed, ids found among the training rows); ``(None, None)`` without it.

    Ids that are not training rows of this run are warned about, not refused: a list kept across runs names rows
    that left the data, or that this run's split made validation or test rows.
    """
    path = config.pruning.keep_ids
    if path is None:
        return None, None
    from lossval.io import data_sha256, read_row_id_list

    listed = read_row_id_list(path, id_column=config.id_column)
    mask = row_ids.isin(listed).to_numpy()
    missing = len(listed) - int(mask.sum())
    if missing:
        present = set(row_ids)
        example = next(i for i in listed if i not in present)
        run_logger().warning("pruning.keep_ids: %d of the %d row id(s) in %s are not training rows of this run "
                             "(e.g. %r): rows no longer in the data, validation or test rows, or ids of another "
                             "id_column; they are ignored", missing, len(listed), path, example)
    return mask, {"path": str(path), "sha256": data_sha256(path), "listed": len(listed), "found": int(mask.sum())}
