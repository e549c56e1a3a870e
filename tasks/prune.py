"""Stage 4: values -> kept rows and quarantined rows (never deleted)."""

from __future__ import annotations

import pandas as pd
from prefect import task

from lossval.config import PipelineConfig
from lossval.errors import InputError
from lossval.io import write_parquet
from lossval.pruning import make_policy, prune as prune_values
from lossval.splitting import MIN_TRAIN_ROWS

__all__ = ["prune", "policy_from_config", "describe_pruning", "QUARANTINE_VALUE", "QUARANTINE_REASON", "RESERVED_COLUMNS"]

QUARANTINE_VALUE = "lossval_value"  # the row's LossVal value, added to each quarantined row
QUARANTINE_REASON = "lossval_reason"  # why it was quarantined
RESERVED_COLUMNS = ("row_id", QUARANTINE_VALUE, QUARANTINE_REASON)  # input data may not use these names


def policy_from_config(config: PipelineConfig):  # noqa: ANN201
    p = config.pruning
    params = {"fraction": {"fraction": p.fraction}, "threshold": {"threshold": p.threshold},
              "two_means": {}, "mixture": {"min_probability": p.min_probability}}[p.policy]
    return make_policy(p.policy, **params)


def describe_pruning(pruning: dict) -> str:
    """One sentence on what the policy flagged and what held it back (run summary, Prefect artifact).

    Args:
        pruning: The run summary's ``pruning`` record (``policy``, ``flagged``, ``quarantined``,
            ``protected``, ``cap_hit``, ``max_prune_fraction``).
    """
    text = f"{pruning['policy']} flagged {pruning['flagged']} rows"
    if pruning.get("protected"):
        text += f"; class protection kept {pruning['protected']} of them (each class keeps its best rows)"
    if pruning["cap_hit"]:
        text += (f"; max_prune_fraction {pruning['max_prune_fraction']:g} let {pruning['quarantined']} go. "
                 "A policy that flags more than the cap may be finding no separate low-value group: see the "
                 "README, 'When the data is already clean'")
    return text + "."


@task(name="prune")
def prune(train: str, values: str, *, config: PipelineConfig, task_kind: str, run_dir: str) -> dict:
    """Write ``kept.parquet`` and ``quarantine.parquet`` (dropped rows whole, plus ``lossval_value`` and ``lossval_reason``)."""
    tr = pd.read_parquet(train)
    vals = pd.read_parquet(values).set_index("row_id").loc[tr["row_id"]]
    labels = tr[config.target].astype(str).to_numpy() if task_kind == "classification" else None
    decision = prune_values(vals["value"].to_numpy(), policy=policy_from_config(config),
                            max_prune_fraction=config.pruning.max_prune_fraction, labels=labels,
                            noise_prob=vals["noise_prob"].to_numpy() if "noise_prob" in vals else None)
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
    paths = {"kept": str(write_parquet(kept, f"{run_dir}/kept.parquet")),
             "quarantine": str(write_parquet(quarantine, f"{run_dir}/quarantine.parquet"))}
    return {"paths": paths, "rows_kept": len(kept), "rows_pruned": len(quarantine), "threshold": decision.threshold,
            "flagged": decision.n_candidates, "protected": decision.n_protected, "cap_hit": decision.cap_hit,
            "policy": decision.policy}
