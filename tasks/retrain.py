"""Stage 5: the same model family on all train rows ("before") and on kept rows ("after")."""

from __future__ import annotations

import pandas as pd
import torch
from prefect import task

from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.io import atomic_write, write_json
from lossval.retrain import evaluate, fit_model

__all__ = ["retrain"]


@task(name="retrain")
def retrain(train: str, kept: str, test: str, values: str, encoder: str, *, config: PipelineConfig,
            run_dir: str) -> dict:
    """Train "before" and "after" models, score both on the test split, save the "after" weights.

    ``retrain.mode: soft`` trains "after" on all train rows with the values as sample weights.
    Returns the metrics of both and the paths of the saved state dict and metrics JSON.
    """
    enc = TabularEncoder.load(encoder)
    tr, kp, te = pd.read_parquet(train), pd.read_parquet(kept), pd.read_parquet(test)
    task_kind, n_classes = enc.task_, len(enc.classes_) if enc.classes_ is not None else None

    def xy(df: pd.DataFrame, source: str):
        y = df[config.target]
        return enc.transform(df, source=source), (enc.encode_target(y, source=source) if task_kind == "classification" else y.to_numpy(float))

    X_tr, y_tr = xy(tr, "train split")
    X_te, y_te = xy(te, "test split")
    common = dict(task=task_kind, n_classes=n_classes, epochs=config.retrain.epochs, seed=config.seed,
                  device=config.lossval.get("device", "auto"))
    before = fit_model(X_tr, y_tr, **common)
    if config.retrain.mode == "soft":
        weights = pd.read_parquet(values).set_index("row_id").loc[tr["row_id"], "value"].to_numpy()
        after = fit_model(X_tr, y_tr, sample_weight=weights, **common)
    else:
        X_kp, y_kp = xy(kp, "kept rows")
        after = fit_model(X_kp, y_kp, **common)
    metrics = {"before": evaluate(before, X_te, y_te, task=task_kind, n_classes=n_classes),
               "after": evaluate(after, X_te, y_te, task=task_kind, n_classes=n_classes)}
    model_path = atomic_write(f"{run_dir}/model_after.pt", lambda tmp: torch.save(after.state_dict(), tmp))
    write_json(metrics, f"{run_dir}/metrics.json")
    return {"metrics": metrics, "model_state": str(model_path), "metrics_path": f"{run_dir}/metrics.json",
            "n_inputs": int(X_tr.shape[1]), "n_outputs": int(n_classes or 1), "task": task_kind,
            "n_layers": after.n_layers, "width": after.width}
