"""lossval: find the training rows that hurt your model, and prune them safely.

The library (this package) needs only the core dependencies (torch, geomloss, numpy, pandas,
pyarrow, scikit-learn, pyyaml), none of the ``pipeline`` extra. The Prefect pipeline lives in
the ``tasks`` and ``flows`` packages of the same distribution.

>>> from lossval import LossVal                      # doctest: +SKIP
>>> lv = LossVal(task="classification", seed=0).fit(X, y, X_val, y_val)  # doctest: +SKIP
>>> lv.values_                                       # doctest: +SKIP

Names are imported on first use, so ``import lossval`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LossVal": "lossval.valuation",
    "TabularEncoder": "lossval.encoding",
    "BetaMixture": "lossval.noise",
    "loss_noise_probability": "lossval.noise",
    "normalize_losses": "lossval.noise",
    "two_means_threshold": "lossval.pruning",
    "prune": "lossval.pruning",
    "make_policy": "lossval.pruning",
    "PruneDecision": "lossval.pruning",
    "FractionPolicy": "lossval.pruning",
    "ThresholdPolicy": "lossval.pruning",
    "TwoMeansPolicy": "lossval.pruning",
    "MixturePolicy": "lossval.pruning",
    "detection_f1": "lossval.metrics",
    "InputError": "lossval.errors",
    "ConfigError": "lossval.errors",
    "LossvalError": "lossval.errors",
    "NumericalError": "lossval.errors",
    "UnseenLevelsWarning": "lossval.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'lossval' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
