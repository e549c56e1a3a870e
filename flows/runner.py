"""Running the cleaning flow from the CLI: environment defaults, exit codes, and the demo."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from lossval.errors import GateFailed

__all__ = ["prepare_environment", "run_flow", "run_from_config", "run_demo"]


def prepare_environment(workspace: Path) -> None:
    """Quiet, server-less defaults for Prefect (ephemeral mode) unless the user set them."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    workspace.mkdir(parents=True, exist_ok=True)
    import logging

    for name in ("great_expectations", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_flow(config_path: Path, workspace: Path) -> dict[str, Any]:
    """Run the cleaning flow and return its summary; exceptions from the flow are re-raised."""
    prepare_environment(workspace)
    from flows.clean import clean_dataset

    flow = clean_dataset.with_options(result_storage=(workspace / "prefect-results").resolve())
    return flow(config_path=str(config_path.resolve()), workspace=str(workspace.resolve()))


def _report(summary: dict[str, Any]) -> None:
    rows, m = summary["rows"], summary["metrics"]
    print(f"run {summary['run_id']}: {rows['train']} train rows -> {rows['kept']} kept, {rows['quarantine']} quarantined "
          f"({rows['validation']} validation, {rows['test']} test rows held out)")
    for key in m["before"]:
        print(f"  {key:9s} before {m['before'][key]:.4f}  after {m['after'][key]:.4f}")
    print(f"  gate passed; model {summary['model']['name']} version {summary['model']['version']} is champion")
    print(f"  outputs: {summary['run_dir']}  (manifest.json lists every file)")


def run_from_config(config_path: Path, *, workspace: Path) -> int:
    """``lossval run CONFIG``: returns 0, or raises (the CLI maps errors to exit codes)."""
    from lossval.config import load_config

    load_config(config_path)  # validate before starting Prefect: bad config -> exit 2 in a second
    summary = run_flow(config_path, workspace)
    _report(summary)
    return 0


def run_demo(*, dataset: str, noise: float, workspace: Path, epochs: int, device: str, seed: int) -> int:
    """``lossval demo``: the whole flow on a shipped dataset with known label noise."""
    import pandas as pd
    import yaml

    from lossval.demo import make_demo_data
    from lossval.io import atomic_write
    from lossval.metrics import detection_report

    workspace = workspace.resolve()
    data = make_demo_data(dataset=dataset, noise=noise, seed=seed, out_dir=workspace / "demo-data" / dataset)
    config = {
        "dataset": f"demo-{dataset}", "data": str(data.train_path), "target": data.target, "task": data.task,
        "id_column": "id", "validation": {"strategy": "file", "path": str(data.validation_path)},
        "test_path": str(data.test_path), "seed": seed, "lossval": {"epochs": epochs, "device": device},
        "pruning": {"policy": "two_means", "max_prune_fraction": 0.2},
        "tracking": {"experiment": "lossval-demo"},
    }
    config_path = workspace / "demo-data" / dataset / "config.yaml"
    atomic_write(config_path, lambda tmp: Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False)))
    print(f"demo: {dataset}, {int(round(noise * 100))}% of training labels corrupted on purpose; config {config_path}")
    try:
        summary = run_flow(config_path, workspace)
        gate_ok = True
    except GateFailed as exc:
        print(f"demo: the gate refused promotion: {exc}", file=sys.stderr)
        summary, gate_ok = None, False
    if summary is not None:
        _report(summary)
        quarantine = pd.read_parquet(summary["outputs"]["quarantine"], columns=["row_id"])
        train = pd.read_parquet(summary["outputs"]["train"], columns=["row_id"])
        flagged = train["row_id"].isin(set(quarantine["row_id"])).to_numpy()
        noisy = train["row_id"].isin(data.noisy_ids).to_numpy()
        rep = detection_report(flagged, noisy)
        print(f"injected noise in the train split: {rep['noisy']} rows; quarantined: {rep['flagged']}; "
              f"of those really noisy: {rep['true_positives']} (precision {rep['precision']:.2f}, "
              f"recall {rep['recall']:.2f}, F1 {rep['f1']:.2f})")
    print(f"review it: mlflow ui --backend-store-uri sqlite:///{workspace / 'mlflow.db'} --host 127.0.0.1 --port 5000")
    return 0 if gate_ok else 3


