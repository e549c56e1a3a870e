"""The promoted model as MLflow serves it: the user's own columns in, predictions out.

``lossval run`` registers the retrained ("after") model as an MLflow pyfunc model built from
this file ("models from code": no pickle). Its artifacts are the fitted encoder
(``encoder.json``), the network's weights (a torch state dict, loaded with
``weights_only=True``) and a small JSON describing the network. So a caller needs neither
lossval's encoder nor the class order::

    model = mlflow.pyfunc.load_model("models:/lossval-<dataset>@champion")
    model.predict(rows)  # a DataFrame with the training data's feature columns, as they are

returns a DataFrame: ``prediction`` (the class label, or the target in its own units) and,
for classification, one ``probability[<label>]`` column per class in the order of
``encoder.classes_``. Rows are encoded exactly as in training (standardised with the
training rows' means and scales; unseen categorical levels encode as no level); a missing
feature column or a non-numeric value in a numeric column is refused by name.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel  # imported where MLflow is: the track stage and model loading

__all__ = ["LossvalPyfunc", "MODEL_CODE", "MODEL_SPEC_NAME", "example_rows", "model_signature", "probability_column",
           "write_model_spec"]

MODEL_SPEC_NAME = "network.json"
# The file MLflow executes to build the model: it imports LossvalPyfunc from here and hands MLflow one.
MODEL_CODE = Path(__file__).with_name("_mlflow_model.py")


def probability_column(label: Any) -> str:
    """The output column that holds the probability of class ``label``."""
    return f"probability[{label}]"


def write_model_spec(path: str | Path, *, n_inputs: int, n_outputs: int, task: str, n_layers: int, width: int) -> Path:
    """Write the network's shape, which the weights alone do not say, as JSON."""
    from lossval.io import write_json

    return write_json({"n_inputs": n_inputs, "n_outputs": n_outputs, "task": task, "n_layers": n_layers,
                       "width": width}, path)


class LossvalPyfunc(PythonModel):
    """An encoder and a network, as one MLflow pyfunc model.

    Artifacts (``context.artifacts``): ``encoder`` (encoder JSON), ``weights`` (state dict)
    and ``network`` (the JSON of :func:`write_model_spec`).
    """

    def load_context(self, context: Any) -> None:
        self.load(context.artifacts["encoder"], context.artifacts["weights"], context.artifacts["network"])

    def load(self, encoder: str | Path, weights: str | Path, network: str | Path) -> LossvalPyfunc:
        import torch

        from lossval.encoding import TabularEncoder
        from lossval.retrain import TabularModel

        spec = json.loads(Path(network).read_text())
        self.encoder = TabularEncoder.load(encoder)
        self.network = TabularModel(spec["n_inputs"], spec["n_outputs"], task=spec["task"], n_layers=spec["n_layers"],
                                    width=spec["width"])
        self.network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.network.eval()
        return self

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """``model_input``: rows with the training data's feature columns -> prediction table (module docstring)."""
        import torch

        rows = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        X = self.encoder.transform(rows, source="model input")
        with torch.no_grad():
            out = self.network(torch.as_tensor(X, dtype=torch.float32)).numpy().astype(np.float64)
        if self.encoder.task_ == "regression":
            return pd.DataFrame({"prediction": out[:, 0]}, index=rows.index)
        labels = self.encoder.decode_target(out.argmax(axis=1))
        table = pd.DataFrame({"prediction": labels}, index=rows.index)
        for i, label in enumerate(self.encoder.classes_):
            table[probability_column(label)] = out[:, i]
        return table


def example_rows(test: pd.DataFrame, feature_columns: list[str], n: int = 5) -> pd.DataFrame:
    """The input example MLflow records: ``n`` rows of the feature columns as the user has them."""
    return test.loc[:, feature_columns].head(n).reset_index(drop=True)


def model_signature(example: pd.DataFrame, predicted: pd.DataFrame, *, text_columns: Iterable[str] = ()) -> Any:
    """The model's MLflow signature: every feature column by name, required, reaching the model as given.

    MLflow converts an input column to its declared type and refuses what it cannot convert
    "safely": int64 to double is refused (precision above 2**53), so a signature inferred from
    a float column refuses a batch whose values happen to be whole numbers read as int64, and
    one inferred from an integer column refuses a batch that writes them ``5.0``; a column
    inferred as text refuses pandas ``category`` input and numbers, although the encoder reads
    ``1``, ``1.0`` and ``"1"`` as one level and reads a text column of numbers as numeric.
    Feature columns are therefore declared ``Any`` and the encoder checks them (naming the
    column and row of a value it cannot read). The exception is ``text_columns`` (the config's
    ``features.categorical``): codes kept as written (``"02139"``), where a number would lose its
    leading zeros, so they keep their inferred text type. Every column is required, whatever the
    example's first rows hold (a column missing from a batch is refused by name).
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

    with warnings.catch_warnings():  # its multi-line "integer column(s)" hint concerns typed inputs, which these are not
        warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer column", category=UserWarning)
        inferred = infer_signature(example, predicted)
    # A pandas category column (a parquet dictionary column) is inferred as string and then refused as input
    # ("cannot safely convert category"), the input example included: Any, even when declared categorical.
    text = {c for c in text_columns if c in example.columns and not isinstance(example[c].dtype, pd.CategoricalDtype)}
    inputs = Schema([ColSpec(spec.type if spec.name in text and spec.type == DataType.string else AnyType(), spec.name,
                             required=True) for spec in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)
