"""The registered model's MLflow signature: inputs as they are in the data file pass MLflow's schema check."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("mlflow")


def test_signature_takes_category_columns_as_they_are_and_still_types_text() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema

    from lossval.serving import model_signature

    # A parquet dictionary column reads back as pandas "category": MLflow inferred string for it and then refused
    # the same column in the input example ("Failed to enforce schema"), failing the run's tracking.
    example = pd.DataFrame({"lvl": pd.Categorical(["a", "b", "a"]), "x": [1.0, 2.0, 3.0], "n": [1, 2, 3],
                            "s": ["u", "v", "w"]})
    signature = model_signature(example, pd.DataFrame({"prediction": [0.1, 0.2, 0.3]}))
    validate_schema(example, signature.inputs)  # the input example
    validate_schema(example.astype({"lvl": str, "x": "int64", "n": float}), signature.inputs)  # from a CSV, say
    with pytest.raises(MlflowException):  # text columns keep their type: a number there is still refused
        validate_schema(example.assign(s=[1.5, 2.5, 3.5]), signature.inputs)
