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
training rows' means and scales; unseen categorical levels encode as no level, with an
:class:`~lossval.errors.UnseenLevelsWarning` naming the column); a missing feature column, a
missing or non-numeric value in a numeric column is refused by name, as a
:class:`ModelInputError` (lossval's ``InputError`` and MLflow's "invalid parameter value", so
``mlflow models serve`` answers HTTP 400 with lossval's message). Through ``mlflow.pyfunc``,
MLflow's schema check refuses a missing column first, with its own message. No rows give an
empty table with the same columns (batch scoring sends empty partitions).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel  # imported where MLflow is: the track stage and model loading

from lossval.errors import InputError

__all__ = ["LossvalPyfunc", "MODEL_CODE", "MODEL_SPEC_NAME", "ModelInputError", "example_rows", "model_signature",
           "probability_column", "write_model_spec"]

MODEL_SPEC_NAME = "network.json"
SOURCE = "model input"  # what the model's error messages and warnings call the rows they were given
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


class ModelInputError(InputError, MlflowException):
    """Rows the model cannot score: lossval's :class:`~lossval.errors.InputError` (what lossval's
    callers catch) and an MLflow "invalid parameter value": MLflow's scoring server passes an
    MlflowException's message to the REST caller with HTTP 400, and answers any other error with
    "Encountered an unexpected error while evaluating the model", lossval's message buried in the
    stack trace."""

    def __init__(self, message: str, *, source: str | None = None, parts: list[str] | None = None) -> None:
        # InputError's attributes, set here: its __init__ would not set MLflow's error code and message
        self.source = source
        self.parts = list(parts or [])
        message = f"{source}: {message}" if source else message
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


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
        try:
            self._refuse_missing_numbers(rows)
            X = self.encoder.transform(rows, source=SOURCE, serving=True)
        except ModelInputError:
            raise
        except InputError as error:
            raise ModelInputError(str(error)) from error
        with torch.no_grad():
            out = self.network(torch.as_tensor(X, dtype=torch.float32)).numpy().astype(np.float64)
        if self.encoder.task_ == "regression":
            return pd.DataFrame({"prediction": out[:, 0]}, index=rows.index)
        labels = self.encoder.decode_target(out.argmax(axis=1))
        # The dtype pandas infers from the class labels: an empty batch's labels (an empty object array) get it too
        dtype = pd.Series(self.encoder.decode_target(np.arange(len(self.encoder.classes_)))).dtype
        table = pd.DataFrame({"prediction": pd.Series(labels, index=rows.index, dtype=dtype)})
        for i, label in enumerate(self.encoder.classes_):
            table[probability_column(label)] = out[:, i]
        return table

    def _refuse_missing_numbers(self, rows: pd.DataFrame) -> None:
        """Refuse a missing, blank or infinite value in a numeric feature column, saying what a caller can do.

        The encoder refuses them too, but advises changing the pipeline's config, which a caller of
        the model cannot do. Checked only when every feature column is there and named once: a
        missing or duplicated column is the encoder's to name first.
        """
        from lossval.io import missing_or_blank

        features = self.encoder.feature_columns_
        if rows.columns.has_duplicates or not all(c in rows.columns for c in features):
            return
        for col in self.encoder.numeric_columns_:
            series = rows[col]
            missing = missing_or_blank(series)
            try:
                infinite = np.isinf(pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
            except (TypeError, ValueError):  # values that are no numbers at all: the encoder names them
                infinite = np.zeros(len(series), dtype=bool)
            bad = missing | infinite
            if bad.any():
                first = series.index[np.flatnonzero(bad)[0]]
                first = first.item() if isinstance(first, np.generic) else first
                kinds = " and ".join(part for part in (f"{int(missing.sum())} missing" if missing.any() else "",
                                                       f"{int(infinite.sum())} infinite" if infinite.any() else "")
                                     if part)
                raise ModelInputError(
                    f"numeric column {col!r} has {kinds} value(s), first at row {first!r}: the model needs a finite "
                    f"number in each of its {len(features)} feature columns for every row (every column is required; "
                    "the model fills nothing in); send a number there, or leave that row out of the batch",
                    source=SOURCE)


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
