"""Tiny datasets, fast configs and file-tree hashes for the reliability tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["make_frame", "write_config", "tree_hashes", "dead_pid"]


def make_frame(n: int = 120, *, seed: int = 0, classes: tuple = ("no", "yes")) -> pd.DataFrame:
    """A small classification table: id, two numeric features, a categorical one, a label."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    score = a + 0.5 * b
    cuts = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    label = np.array(classes, dtype=object)[np.searchsorted(cuts, score)]
    return pd.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)], "a": a.round(6), "b": b.round(6),
                         "colour": rng.choice(["red", "blue", "green"], size=n), "label": label})


def dead_pid() -> int:
    """The id of a process that has exited (for tests of what a killed writer leaves)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_config(path: Path, **overrides) -> Path:
    """A fast pipeline config (2 epochs each) with ``overrides`` merged at the top level."""
    cfg = {"target": "label", "id_column": "id", "lossval": {"epochs": 2}, "retrain": {"epochs": 2},
           "gate": {"metric_tolerance": 1.0, "refuse_when_all_worse": False}, "tracking": {"experiment": "lossval-reliability"}}
    cfg.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (empty when it does not exist)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class _OpensMarker:
    """Unpickling this object calls ``open(path, "w")``: a harmless stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.path, "w"))


def write_pickle_record(path: Path, marker: Path) -> None:
    """A Prefect result record that names the pickle serializer, as a foreign writer could leave one."""
    from prefect.serializers import PickleSerializer

    serializer = PickleSerializer()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metadata": {"storage_key": str(path), "expiration": None,
                                             "serializer": json.loads(serializer.model_dump_json()),
                                             "prefect_version": "3", "storage_block_id": None},
                                "result": serializer.dumps(_OpensMarker(marker)).decode()}))
