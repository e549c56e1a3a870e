"""Input checks of LossVal and the noise model: each bad input is named, refused or read as meant."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from lossval import LossVal
from lossval.errors import ConfigError, InputError
from lossval.noise import loss_noise_probability
from lossval.valuation import _FitState


def _small(n: int = 40, m: int = 12, d: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X, X_val = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    return X, (X[:, 0] > 0).astype(int), X_val, (X_val[:, 0] > 0).astype(int)


def _lossval(**options) -> LossVal:
    return LossVal(epochs=2, device="cpu", verbose=False, **options)


# ----------------------------------------------------------------------------- 1. feature_names
def test_feature_names_of_another_length_are_refused_before_training_and_leave_no_fit() -> None:
    X, y, Xv, yv = _small()
    lv = _lossval().fit(X, y, Xv, yv, feature_names=["a", "b", "c"])
    assert lv.values_.shape == (40,)
    with pytest.raises(InputError, match=re.escape("feature_names has 2 name(s) but X_train has 3 feature column(s)")):
        lv.fit(X, y, Xv, yv, feature_names=["a", "b"])
    assert not hasattr(lv, "values_") and not hasattr(lv, "task_")  # refused before any training


def test_feature_names_given_as_one_string_are_refused_not_read_letter_by_letter() -> None:
    # "abc" was taken as the names 'a', 'b', 'c' of three columns, in fit and in clipped_counts, without a word.
    X, y, Xv, yv = _small()
    with pytest.raises(InputError, match=re.escape("feature_names must be a list of names, one per feature column, "
                                                   "got the string 'abc'")):
        _lossval().fit(X, y, Xv, yv, feature_names="abc")
    lv = _lossval().fit(X, y, Xv, yv)
    with pytest.raises(InputError, match=re.escape("clipped_counts' feature_names must be a list of names")):
        lv.clipped_counts("abc")


def test_bfloat16_tensors_are_read_as_their_float32_values() -> None:
    # numpy has no bfloat16: tensor.numpy() raised a bare "TypeError: Got unsupported ScalarType BFloat16" from fit,
    # prune and loss_noise_probability, though each takes torch tensors.
    from lossval import prune

    X, y, Xv, yv = _small()
    half = [torch.tensor(a, dtype=torch.bfloat16) for a in (X, Xv)]
    lv = _lossval().fit(half[0], torch.tensor(y), half[1], torch.tensor(yv))
    same = _lossval().fit(half[0].float().numpy(), y, half[1].float().numpy(), yv)
    assert np.array_equal(lv.values_, same.values_)
    values = torch.tensor(lv.values_, dtype=torch.bfloat16)
    widened = prune(values.float().numpy(), policy="two_means")
    assert prune(values, policy="two_means").keep.tolist() == widened.keep.tolist()
    history = torch.tensor(lv.loss_history_, dtype=torch.bfloat16)
    assert loss_noise_probability(history).shape == (40,)


# ----------------------------------------------------------------------------- 2. transposed loss history
def test_a_history_with_more_epochs_than_rows_warns_that_it_looks_transposed() -> None:
    history = np.random.default_rng(0).gamma(2.0, 1.0, size=(40, 5))  # 40 rows x 5 epochs, passed the wrong way
    with pytest.warns(UserWarning, match=r"looks transposed.*loss_history\.T") as caught:
        p = loss_noise_probability(history)
    assert p.shape == (5,)  # still read as (n_epochs, n_rows): warned, not refused
    assert caught[0].filename == __file__  # the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loss_noise_probability(history.T).shape == (40,)


def test_a_fit_with_more_epochs_than_rows_gives_noise_probabilities_without_the_warning() -> None:
    X, y, Xv, yv = _small(n=6, m=4)
    lv = LossVal(epochs=8, device="cpu", verbose=False).fit(X, y, Xv, yv)
    assert lv.loss_history_.shape == (8, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lv.noise_probability().shape == (6,)


# ----------------------------------------------------------------------------- 3. label kinds
def test_validation_labels_of_another_kind_than_the_training_labels_are_named_as_such() -> None:
    X, y, Xv, yv = _small()
    with pytest.raises(InputError, match=re.escape("y_val holds strings ('0', '1') but y_train holds numbers (0, 1): "
                                                   "encode both the same way")):
        _lossval().fit(X, y, Xv, yv.astype(str))
    with pytest.raises(InputError, match=re.escape("y_val holds numbers (0, 1) but y_train holds strings ('0', '1')")):
        _lossval(task="classification").fit(X, y.astype(str).astype(object), Xv, yv)
    with pytest.raises(InputError, match=re.escape("y_val has label(s) [5] that y_train lacks")):
        _lossval().fit(X, y, Xv, np.where(yv == 1, 5, yv))  # same kind, genuinely unknown


# ----------------------------------------------------------------------------- 4. object columns
def test_an_object_column_of_numbers_is_read_as_floats() -> None:
    X, y, Xv, yv = _small()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    objects = frame.assign(a=pd.Series(X[:, 0].tolist(), dtype=object))
    assert objects["a"].dtype == object
    np.testing.assert_array_equal(_lossval().fit(objects, y, Xv, yv).values_, _lossval().fit(frame, y, Xv, yv).values_)


def test_an_object_column_with_a_non_number_names_the_column_row_and_value() -> None:
    X, y, Xv, yv = _small()
    values = X[:, 0].tolist()
    values[3] = "x"
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(a=pd.Series(values, dtype=object))
    with pytest.raises(InputError, match=re.escape("X_train has non-numeric columns ['a'] (column 'a': row 3 holds "
                                                   "'x', which is not a number)")):
        _lossval().fit(frame, y, Xv, yv)
    values[3] = "1.5"  # numeric text is a column read wrongly: refused too, with its value
    with pytest.raises(InputError, match=re.escape("row 3 holds '1.5'")):
        _lossval().fit(frame.assign(a=pd.Series(values, dtype=object)), y, Xv, yv)


@pytest.mark.parametrize("missing", [None, pd.NA], ids=["None", "pd.NA"])
def test_a_missing_value_in_an_object_column_of_numbers_is_called_missing(missing: object) -> None:
    X, y, Xv, yv = _small()
    values = X[:, 0].tolist()
    values[3] = missing
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(a=pd.Series(values, dtype=object))
    with pytest.raises(InputError, match=re.escape("X_train has 1 NaN/inf value(s), first at row 3, column 'a'; LossVal "
                                                   "rejects non-finite features: drop or impute those rows first.")):
        _lossval().fit(frame, y, Xv, yv)


# ----------------------------------------------------------------------------- 5. ragged lists
@pytest.mark.parametrize("which", ["X_train", "X_val", "y_train", "y_val"])
def test_ragged_lists_are_named(which: str) -> None:
    X, y, Xv, yv = _small()
    args = {"X_train": X.tolist(), "y_train": y.tolist(), "X_val": Xv.tolist(), "y_val": yv.tolist()}
    args[which] = [[1.0, 2.0], [3.0]] + args[which][2:] if which.startswith("X") else [[0], [1, 0]] + args[which][2:]
    with pytest.raises(InputError, match=rf"^{which} could not be read .*must all have the same number of columns"):
        _lossval().fit(args["X_train"], args["y_train"], args["X_val"], args["y_val"])


@pytest.mark.parametrize(("which", "given", "shown"),
                         [("y_train", "label", "str 'label'"), ("y_val", None, "NoneType None"), ("y_train", 1, "int 1"),
                          ("y_val", np.array(5), "ndarray array(5)")])
def test_a_target_that_is_not_one_value_per_row_says_what_was_passed(which: str, given: object, shown: str) -> None:
    # fit(df, "label", ...) (a column name, as some libraries take) and fit(X, None, ...) said "must be 1-D (one target
    # per row), got shape ()": neither what was passed nor what to pass.
    X, y, Xv, yv = _small()
    args = {"y_train": y, "y_val": yv, which: given}
    with pytest.raises(InputError, match=rf"^{which} must hold one target per row \(numpy array, pandas Series, "
                                         rf"list or torch tensor\), got {re.escape(shown)}") as info:
        _lossval().fit(X, args["y_train"], Xv, args["y_val"])
    assert ("pass the column itself (df['label'])" in str(info.value)) == isinstance(given, str)


# ----------------------------------------------------------------------------- 6. paper_settings keys
def test_paper_settings_names_an_unknown_parameter_and_the_closest_known_one() -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown parameter(s) ['epoch'] (did you mean 'epochs'?); known: [")
                       ) as caught:
        LossVal.paper_settings("classification", epoch=3)
    assert "'weight_lr'" in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape("unknown parameter(s) ['zzz']; known:")):
        LossVal.paper_settings("regression", zzz=1)
    assert LossVal.paper_settings("classification", epochs=3).epochs == 3


# ----------------------------------------------------------------------------- 7. weight_lr docstring
def test_weight_lr_docstring_says_which_schedule_shares_the_network_s_adam() -> None:
    doc = LossVal.__doc__
    entry = doc[doc.index("weight_lr:"):doc.index("sinkhorn_schedule:")]
    assert "_RowAdam" in entry and '"step"' in entry and '"epoch"' in entry
    # What it describes: one Adam with two groups for "step", a closed-form Adam of the weights' own for "epoch".
    import torch

    model = torch.nn.Linear(2, 2)
    data = type("Data", (), {"X": torch.zeros(4, 2)})()
    common = dict(model=model, data=data, sinkhorn=None, gen=None, loss_history=None, bsz=2, pool=None, power=2.0,
                  lr=0.01, weight_lr=0.02, nonnegative=True)
    step = _FitState(closed_form=False, **common)
    assert step.row_adam is None and [g["lr"] for g in step.optimizer.param_groups] == [0.01, 0.02]
    epoch = _FitState(closed_form=True, **common)
    assert epoch.row_adam is not None and epoch.row_adam.lr == 0.02
