"""Where a run's files live inside the workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workspace"]


@dataclass(frozen=True)
class Workspace:
    """The workspace layout.

    ``snapshots/<dataset>/<hash>.parquet`` immutable ingested data; ``values/<key>/`` valuation
    outputs, shared by reruns with the same snapshot and config; ``runs/<run_id>/`` one flow
    run's splits, pruned data, models and ``manifest.json``; ``mlflow.db`` + ``mlartifacts/``;
    ``locks/`` one lock per dataset (nightly and arrival runs) and per registered model.
    """

    root: Path

    @classmethod
    def at(cls, path: str | Path) -> Workspace:
        return cls(Path(path).resolve())

    def snapshot_dir(self, dataset: str) -> Path:
        return self.root / "snapshots" / dataset

    def values_dir(self, key: str) -> Path:
        return self.root / "values" / key

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "mlartifacts"
