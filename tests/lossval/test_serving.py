"""The registered model: its MLflow signature (inputs as they are in the data file pass MLflow's schema check), and
what it answers a caller who sends a bad row, no rows, or a level it never saw."""

from __future__ import annotations

import pandas as pd
import pytest


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


@pytest.fixture()
def served(tmp_path):
    """A small classifier as the registered model serves it (encoder, untrained network, spec), and its rows."""
    import numpy as np
    import torch

    from lossval.encoding import TabularEncoder
    from lossval.retrain import TabularModel
    from lossval.serving import LossvalPyfunc, write_model_spec

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"income": rng.normal(50.0, 10.0, 40), "region": ["north", "south", "east", "west"] * 10,
                          "y": ["no", "yes"] * 20})
    encoder = TabularEncoder(target="y").fit(train)
    encoder.save(tmp_path / "encoder.json")
    n_inputs = len(encoder.encoded_names_)
    torch.save(TabularModel(n_inputs, 2, task="classification").state_dict(), tmp_path / "weights.pt")
    write_model_spec(tmp_path / "network.json", n_inputs=n_inputs, n_outputs=2, task="classification", n_layers=3,
                     width=64)
    artifacts = {"encoder": str(tmp_path / "encoder.json"), "weights": str(tmp_path / "weights.pt"),
                 "network": str(tmp_path / "network.json")}
    return LossvalPyfunc().load(**artifacts), artifacts, train.drop(columns=["y"])


def test_a_bad_row_reaches_a_rest_caller_as_lossvals_message_with_what_the_caller_can_do(served, tmp_path) -> None:
    # A reviewer's POST /invocations with {"income": null} got MLflow's "Encountered an unexpected error while
    # evaluating the model" (HTTP 400), lossval's message only at the end of the stack trace: the scoring server passes
    # on the message of an MlflowException only. The message also said to change the pipeline config (--exclude).
    import json
    import warnings

    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from lossval.errors import InputError
    from lossval.serving import MODEL_CODE, example_rows, model_signature

    model, artifacts, rows = served
    with pytest.raises(MlflowException) as caught:
        model.predict(None, rows.head(2).assign(income=[51.0, None]))
    assert isinstance(caught.value, InputError)  # what lossval's own callers catch, with its attributes
    assert caught.value.source == "model input" and caught.value.parts == []
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and caught.value.get_http_status_code() == 400
    said = caught.value.message
    assert said.startswith("model input: numeric column 'income' has 1 missing value(s), first at row 1")
    assert "send a number" in said and "every column is required" in said and "exclude" not in said
    for bad, expected in ((rows.head(1).assign(income="abc"), r"non-numeric value 'abc' in numeric column 'income'"),
                          (rows.head(1).drop(columns=["region"]), r"missing feature column\(s\) \['region'\]")):
        with pytest.raises(MlflowException, match=expected):
            model.predict(None, bad)
    # As the scoring server answers it (its request handler, in process): lossval's message, HTTP 400.
    example = example_rows(rows, ["income", "region"])
    with warnings.catch_warnings():  # "An input example was not provided": none is needed here
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=str(MODEL_CODE), artifacts=artifacts,
                                 signature=model_signature(example, model.predict(None, example)),
                                 pip_requirements=["torch"])
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    body = json.dumps({"dataframe_records": [{"income": None, "region": "north"}]})
    with pytest.raises(MlflowException) as answered:
        scoring_server.invocations(body, "application/json", loaded, loaded.metadata.get_input_schema())
    assert answered.value.get_http_status_code() == 400
    assert "model input: numeric column 'income' has 1 missing value(s), first at row 0" in answered.value.message
    assert "unexpected error" not in answered.value.message


def test_an_empty_batch_gives_an_empty_table_of_the_same_columns_but_a_missing_column_is_still_refused(served) -> None:
    # Batch scoring (spark_udf, chunked jobs) sends empty partitions; they raised "frame to transform has no rows".
    from mlflow.exceptions import MlflowException

    model, _, rows = served
    full, empty = model.predict(None, rows.head(3)), model.predict(None, rows.head(0))
    assert list(empty.columns) == ["prediction", "probability[no]", "probability[yes]"] and len(empty) == 0
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    with pytest.raises(MlflowException, match=r"missing feature column\(s\) \['income'\]"):
        model.predict(None, rows.head(0).drop(columns=["income"]))


def test_an_unseen_level_in_a_small_batch_is_warned_about_once_naming_column_count_and_value(served) -> None:
    # "NORTH" for "north", or a code for a name, in a batch of 1-4 rows (serving) was scored as "no level" in silence:
    # the file rule warns from 5 rows with half of them unseen.
    import warnings

    import numpy as np

    from lossval.encoding import TabularEncoder
    from lossval.errors import UnseenLevelsWarning

    model, _, rows = served
    with pytest.warns(UnseenLevelsWarning) as caught:
        model.predict(None, rows.head(3).assign(region=["NORTH", "south", "NORTH"]))
    said = [str(w.message) for w in caught if issubclass(w.category, UnseenLevelsWarning)]
    assert len(said) == 1 and said[0].startswith("model input: categorical column 'region': 2 of 3 values are levels "
                                                 "the model was not trained on (e.g. ['NORTH']")
    assert "did you mean 'north' for 'NORTH'?" in said[0]
    with pytest.warns(UnseenLevelsWarning, match=r"'region': 1 of 1 values .* \['2'\]"):
        model.predict(None, rows.head(1).assign(region=[2]))
    with warnings.catch_warnings():  # known levels, and a column with "__other__" (new names expected): no warning
        warnings.simplefilter("error")
        model.predict(None, rows.head(4))
        names = pd.DataFrame({"x": np.arange(40.0), "name": [f"n{i % 15}" for i in range(40)], "y": [0, 1] * 20})
        TabularEncoder(target="y", max_categories=10).fit(names).transform(names.head(1).assign(name="new"),
                                                                           serving=True)


def test_saving_the_model_does_not_warn_about_the_test_rows_unseen_levels(served, tmp_path) -> None:
    # The run saves the model with 5 test rows as its input example and predicts them: serving's warning about an
    # unseen level would then name rows no caller sent (the test file's own levels are warned about when it is read).
    import warnings

    from lossval.errors import UnseenLevelsWarning
    from tasks.track import save_pyfunc_model

    _, artifacts, rows = served
    rows.head(5).assign(region="NORTH").to_parquet(tmp_path / "test.parquet")
    retrain = {"model_state": artifacts["weights"], "n_inputs": 5, "n_outputs": 2, "task": "classification",
               "n_layers": 3, "width": 64}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenLevelsWarning)
        save_pyfunc_model(tmp_path / "model", encoder=artifacts["encoder"], retrain=retrain,
                          test=str(tmp_path / "test.parquet"))
    assert (tmp_path / "model" / "MLmodel").is_file()


def test_saving_the_model_without_an_input_example_does_not_tell_the_user_to_add_one(served, tmp_path) -> None:
    # A new user's run with tracking.log_quarantine: false printed MLflow's "An input example was not provided when
    # logging the model ... specify the `input_example` parameter": advice to put data rows back in the tracking
    # store, the one thing that setting keeps out (the signature is still saved, so nothing is lost).
    import warnings

    from tasks.track import save_pyfunc_model

    _, artifacts, rows = served
    rows.head(5).to_parquet(tmp_path / "test.parquet")
    retrain = {"model_state": artifacts["weights"], "n_inputs": 5, "n_outputs": 2, "task": "classification",
               "n_layers": 3, "width": 64}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_pyfunc_model(tmp_path / "model", encoder=artifacts["encoder"], retrain=retrain,
                          test=str(tmp_path / "test.parquet"), input_example=False)
    assert not [str(w.message) for w in caught if "input example" in str(w.message).lower()]
    assert "signature" in (tmp_path / "model" / "MLmodel").read_text()
    assert not (tmp_path / "model" / "input_example.json").exists()
