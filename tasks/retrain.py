"""Stage 5: the same model family on all train rows ("before") and on kept rows ("after")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from prefect import task

from lossval._robust import central_range_bounds, count_outside
from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.io import atomic_write, write_json
from lossval.retrain import evaluate, fit_model

__all__ = ["retrain", "encode_rows", "outliers_beyond_training"]


def encode_rows(enc: TabularEncoder, df: pd.DataFrame, *, target: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of ``df`` as ``enc`` encodes them: class indices for classification, floats for regression."""
    y = df[target]
    return enc.transform(df, source=source), (enc.encode_target(y, source=source) if enc.task_ == "classification"
                                              else y.to_numpy(float))


@task(name="retrain")
def retrain(train: str, kept: str, test: str, values: str, encoder: str, *, config: PipelineConfig,
            run_dir: str, validation: str | None = None) -> dict:
    """Train "before" and "after" models, score both on the test split, save the "after" weights.

    ``retrain.mode: soft`` trains "after" on all train rows with the values as sample weights.
    With ``retrain.calibrate`` (classification), each model's temperature is fitted on the
    ``validation`` rows (the trusted split) before it is scored. Returns the metrics of both,
    their temperatures, the device they trained on and the paths of the saved state dict and
    metrics JSON.
    """
    enc = TabularEncoder.load(encoder)
    tr, kp, te = pd.read_parquet(train), pd.read_parquet(kept), pd.read_parquet(test)
    task_kind, n_classes = enc.task_, len(enc.classes_) if enc.classes_ is not None else None

    X_tr, y_tr = encode_rows(enc, tr, target=config.target, source="train split")
    X_te, y_te = encode_rows(enc, te, target=config.target, source="test split")
    test_outliers = outliers_beyond_training(enc, X_tr, X_te)
    common = dict(task=task_kind, n_classes=n_classes, epochs=config.retrain.epochs, seed=config.seed,
                  device=config.lossval.get("device", "auto"))
    if config.retrain.calibrate and task_kind == "classification" and validation is not None:
        common["calibrate_on"] = encode_rows(enc, pd.read_parquet(validation), target=config.target,
                                             source="validation split")
    before = fit_model(X_tr, y_tr, **common)
    if config.retrain.mode == "soft":
        weights = pd.read_parquet(values).set_index("row_id").loc[tr["row_id"], "value"].to_numpy()
        after = fit_model(X_tr, y_tr, sample_weight=weights, **common)
    else:
        X_kp, y_kp = encode_rows(enc, kp, target=config.target, source="kept rows")
        after = fit_model(X_kp, y_kp, **common)
    metrics = {"before": evaluate(before, X_te, y_te, task=task_kind, n_classes=n_classes),
               "after": evaluate(after, X_te, y_te, task=task_kind, n_classes=n_classes)}
    model_path = atomic_write(f"{run_dir}/model_after.pt", lambda tmp: torch.save(after.state_dict(), tmp))
    write_json(metrics, f"{run_dir}/metrics.json")
    return {"metrics": metrics, "model_state": str(model_path), "metrics_path": f"{run_dir}/metrics.json",
            "n_inputs": int(X_tr.shape[1]), "n_outputs": int(n_classes or 1), "task": task_kind,
            "n_layers": after.n_layers, "width": after.width,
            "device": str(next(after.parameters()).device),  # where both models trained (CUDA scores differ slightly)
            "temperature": ({"before": float(before.temperature), "after": float(after.temperature)}
                            if task_kind == "classification" else None),
            "test_outliers": test_outliers, "test_outlier_values": sum(test_outliers.values())}


def outliers_beyond_training(enc: TabularEncoder, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, int]:
    """Test values beyond the training rows' widened central range, per numeric column (``clip_outliers``' rule).

    The test metrics are computed on them as they are (nothing is clipped); a typo among the
    test rows moves "before", "after" and the champion's scores alike, so the run reports it.
    """
    counts = count_outside(X_test, central_range_bounds(X_train, exempt=enc.one_hot_positions()))
    return {str(name): int(n) for name, n in zip(enc.encoded_names_, counts) if n}
