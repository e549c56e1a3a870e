"""Tiny datasets, fast configs and file-tree hashes for the reliability tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["make_frame", "write_config", "tree_hashes"]


def make_frame(n: int = 120, *, seed: int = 0, classes: tuple = ("no", "yes")) -> pd.DataFrame:
    """A small classification table: id, two numeric features, a categorical one, a label."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    score = a + 0.5 * b
    cuts = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    label = np.array(classes, dtype=object)[np.searchsorted(cuts, score)]
    return pd.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)], "a": a.round(6), "b": b.round(6),
                         "colour": rng.choice(["red", "blue", "green"], size=n), "label": label})


def write_config(path: Path, **overrides) -> Path:
    """A fast pipeline config (2 epochs each) with ``overrides`` merged at the top level."""
    cfg = {"target": "label", "id_column": "id", "lossval": {"epochs": 2}, "retrain": {"epochs": 2},
           "gate": {"metric_tolerance": 1.0}, "tracking": {"experiment": "lossval-reliability"}}
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
