"""The registered model's MLflow signature: inputs as they are in the data file pass MLflow's schema check."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("mlflow")


def test_signature_takes_columns_as_the_encoder_reads_them_and_types_declared_codes_as_text() -> None:
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
    # A reviewer's cases: text in the training file, category in a batch ("Can not safely convert category"); a
    # text column of numbers, which the encoder reads as numeric, given floats. The encoder checks them instead.
    validate_schema(example.assign(s=pd.Categorical(["u", "v", "w"])), signature.inputs)
    validate_schema(example.assign(s=[1.5, 2.5, 3.5]), signature.inputs)
    # Required whatever the example's first rows hold (a column all missing there was optional, by chance).
    sparse = model_signature(example.assign(s=[None, None, None]), pd.DataFrame({"prediction": [0.1, 0.2, 0.3]}))
    assert all(spec.required for spec in sparse.inputs.inputs)
    with pytest.raises(MlflowException, match=r"missing inputs \['s'\]"):
        validate_schema(example.drop(columns=["s"]), sparse.inputs)
    # Codes declared categorical keep their text type: 2139 for "02139" would lose its leading zero.
    codes = model_signature(example, pd.DataFrame({"prediction": [0.1, 0.2, 0.3]}), text_columns=["s"])
    with pytest.raises(MlflowException):
        validate_schema(example.assign(s=[2139, 2140, 2141]), codes.inputs)
    validate_schema(example, codes.inputs)
    # ... unless the file holds them as category (parquet dictionary columns): the input example itself was refused
    # and the run's MLflow logging failed (a review of this change).
    stored = model_signature(example, pd.DataFrame({"prediction": [0.1, 0.2, 0.3]}), text_columns=["lvl"])
    validate_schema(example, stored.inputs)
