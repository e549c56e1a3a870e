"""Stage 3: LossVal values of the train rows against the validation rows (GPU when present)."""

from __future__ import annotations

import json
import time

import pandas as pd
from prefect import task

from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.io import pause_point, write_json, write_parquet
from lossval.valuation import LossVal
from tasks._paths import Workspace

__all__ = ["value", "value_in", "valuation_key", "feature_exclusions"]


def feature_exclusions(config: PipelineConfig) -> list[str]:
    """Columns that are never features: ids, split markers, timestamps, and the user's excludes."""
    cols = ["row_id", *config.exclude]
    for c in (config.id_column, config.validation.column, config.validation.timestamp_column):
        if c:
            cols.append(c)
    return list(dict.fromkeys(cols))


def valuation_key(snapshot_hash: str, config: PipelineConfig) -> str:
    """Cache key of a valuation: same snapshot + same split/encoding/LossVal settings -> same values."""
    return f"{snapshot_hash}-{config.fingerprint('target', 'task', 'id_column', 'include', 'exclude', 'test_fraction', 'seed', 'validation', 'lossval', 'pruning')}"


def _cache_key(context, parameters) -> str:  # noqa: ANN001 (Prefect's signature)
    return "lossval-value-" + parameters["key"]


# JSON, not Prefect's default cloudpickle: a cache hit then never unpickles a file from the workspace.
@task(name="value", cache_key_fn=_cache_key, persist_result=True, result_serializer="json")
def value(train: str, validation: str, *, key: str, config: PipelineConfig, workspace: str) -> dict:
    """Fit the encoder and LossVal; write ``values.parquet`` (row_id, value, rank[, noise_prob]).

    Cached by ``key`` (see :func:`valuation_key`): a rerun with the same snapshot and config
    reuses the files under ``values/<key>/`` instead of valuing again.
    """
    out_dir = Workspace.at(workspace).values_dir(key)
    tr = pd.read_parquet(train)
    va = pd.read_parquet(validation)
    enc = TabularEncoder(target=config.target, task=config.task, features=list(config.include) if config.include else None,
                         exclude=feature_exclusions(config), source=config.data).fit(tr)
    X, X_val = enc.transform(tr), enc.transform(va, source="validation split")
    enc.encode_target(va[config.target], source="validation split")  # unknown labels: clear error
    pause_point("value")  # test-only hook: fault tests kill the run here
    t0 = time.perf_counter()
    lv = LossVal(**{**config.lossval, "task": enc.task_, "seed": config.seed}).fit(
        X, tr[config.target].to_numpy(), X_val, va[config.target].to_numpy())
    seconds = time.perf_counter() - t0
    table = pd.DataFrame({"row_id": tr["row_id"].to_numpy(), "value": lv.values_})
    table["rank"] = table["value"].rank(method="first").astype("int64")
    if config.pruning.policy == "mixture":
        table["noise_prob"] = lv.noise_probability()
    enc.save(out_dir / "encoder.json")
    write_json({"seconds": seconds, "device": str(lv.device_), "task": enc.task_, "history": lv.history_,
                "params": json.loads(json.dumps(lv.get_params(), default=str)), "rows": len(tr),
                "features": len(enc.encoded_names_)}, out_dir / "valuation.json")
    path = write_parquet(table, out_dir / "values.parquet")  # last: its presence marks a complete valuation
    return {"values": str(path), "encoder": str(out_dir / "encoder.json"), "report": str(out_dir / "valuation.json"),
            "task": enc.task_, "seconds": seconds, "device": str(lv.device_)}


def value_in(workspace: str, *, refresh: bool = False):  # noqa: ANN201 (a Prefect task)
    """The ``value`` task with its cache records in ``<workspace>/prefect-results`` (JSON, nothing else persisted).

    Only this task's result is persisted, so a run leaves no Prefect result files but the
    valuation cache; ``refresh=True`` values again whatever the cache holds.
    """
    from pathlib import Path

    return value.with_options(result_storage=Path(workspace).resolve() / "prefect-results", refresh_cache=refresh)
