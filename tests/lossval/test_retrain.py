"""Retraining model and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossval.retrain import TabularModel, evaluate, fit_model


def test_metrics_on_a_hand_made_model() -> None:
    model = TabularModel(1, 1, task="regression", y_mean=10.0, y_scale=2.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    # the network outputs 0 everywhere -> prediction = y_mean = 10
    m = evaluate(model, np.zeros((4, 1)), np.array([8.0, 10.0, 12.0, 10.0]), task="regression")
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(np.sqrt(2.0)) and m["r2"] == pytest.approx(0.0)


def test_classifier_learns_and_sample_weights_matter() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = fit_model(X, y, task="classification", n_classes=2, epochs=20, device="cpu")
    m = evaluate(model, X, y, task="classification", n_classes=2)
    assert m["accuracy"] > 0.9 and 0.9 < m["macro_f1"] <= 1.0 and m["log_loss"] < 0.4
    flipped = 1 - y
    w = np.where(np.arange(300) < 150, 1.0, 0.0)  # only the first half counts
    y_mixed = np.where(np.arange(300) < 150, y, flipped)
    weighted = fit_model(X, y_mixed, task="classification", n_classes=2, sample_weight=w, epochs=20, device="cpu")
    assert evaluate(weighted, X, y, task="classification", n_classes=2)["accuracy"] > 0.85


def test_training_is_seeded() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(64, 2)), rng.normal(size=64)
    a = fit_model(X, y, task="regression", epochs=2, seed=3, device="cpu")
    b = fit_model(X, y, task="regression", epochs=2, seed=3, device="cpu")
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_sample_weights_that_say_nothing_are_named() -> None:
    from lossval.errors import InputError

    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(16, 2)), rng.normal(size=16)
    with pytest.raises(InputError, match="1 non-finite, first at row 3"):
        fit_model(X, y, task="regression", epochs=1, sample_weight=np.r_[np.ones(3), np.nan, np.ones(12)], device="cpu")
    with pytest.warns(UserWarning, match="every sample weight is 0"):
        fit_model(X, y, task="regression", epochs=1, sample_weight=np.zeros(16), device="cpu")
