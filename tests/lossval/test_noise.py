"""Tests for lossval.noise: loss normalisation and the two-component Beta mixture."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from lossval.errors import ConfigError, InputError
from lossval.noise import BetaMixture, loss_noise_probability, normalize_losses

__all__: list[str] = []


def _beta_mixture_sample(seed: int = 7, n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """0.7 * Beta(2, 8) + 0.3 * Beta(8, 2); returns (u, is_noisy)."""
    rng = np.random.default_rng(seed)
    is_noisy = rng.random(n) < 0.3
    u = np.where(is_noisy, rng.beta(8.0, 2.0, n), rng.beta(2.0, 8.0, n))
    return u, is_noisy


def _two_cluster_losses(seed: int = 0) -> np.ndarray:
    """800 clean rows with loss ~0.3 then 200 noisy rows with loss ~2.0."""
    rng = np.random.default_rng(seed)
    clean = np.clip(rng.normal(0.3, 0.05, 800), 0.01, None)
    noisy = rng.normal(2.0, 0.3, 200)
    return np.concatenate([clean, noisy])


# ------------------------------------------------------------------ normalisation
def test_normalize_losses_maps_full_range_linearly():
    u = normalize_losses(
        [0.0, 1.0, 2.0, 3.0, 4.0], lower_percentile=0, upper_percentile=100, eps=0.01
    )
    np.testing.assert_allclose(u, [0.01, 0.255, 0.5, 0.745, 0.99])


def test_normalize_losses_clips_outliers_at_percentiles():
    losses = np.r_[np.linspace(0.0, 1.0, 99), 1000.0]
    u = normalize_losses(losses)
    # The outlier does not squash the others: they still span most of (0, 1).
    assert u[-1] == pytest.approx(1 - 1e-4)
    assert u[49] == pytest.approx(0.5, abs=0.02)
    assert np.all(np.diff(u) >= 0)
    assert u.min() == pytest.approx(1e-4) and u.max() < 1.0


def test_normalize_losses_invariant_to_scale_and_shift():
    losses = np.random.default_rng(1).gamma(2.0, 0.5, 200)
    shifted = normalize_losses(3.7 * losses + 11.0)
    np.testing.assert_allclose(normalize_losses(losses), shifted, atol=1e-12)


def test_normalize_losses_falls_back_to_min_max_when_percentiles_coincide():
    losses = np.r_[np.zeros(98), 1.0, 2.0]  # 5th and 95th percentiles both 0
    u = normalize_losses(losses, eps=0.01)
    assert u[-1] == pytest.approx(0.99) and u[-2] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "losses, match",
    [
        ([1.0, 1.0, 1.0, 1.0], "equal"),
        ([1.0, np.nan, 2.0, 3.0], "row 1"),
        ([1.0, np.inf, 2.0, 3.0], "non-finite"),
        ([[1.0, 2.0], [3.0, 4.0]], "1-D"),
        ([], "empty"),
    ],
)
def test_normalize_losses_rejects_bad_input(losses, match):
    with pytest.raises(InputError, match=match):
        normalize_losses(losses)


def test_losses_whose_range_overflows_float64_are_refused_not_scaled_to_nan(recwarn):
    # max - min was inf: normalize_losses returned NaN for a row, and the mixture called rows noisy on garbage.
    losses = [-1e308, 1e308, 0.0, 5.0, 7.0]
    for call in (normalize_losses, lambda x: BetaMixture().fit(x), loss_noise_probability):
        with pytest.raises(InputError, match=r"span more than float64 holds \(from -1e\+308 to 1e\+308\)"):
            call(losses)
    assert [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
    assert np.isfinite(normalize_losses([-1e307, 1e307, 0.0, 5.0])).all()  # a range float64 holds is scaled


def test_normalize_losses_rejects_bad_options():
    with pytest.raises(ConfigError, match="percentile"):
        normalize_losses([1.0, 2.0, 3.0], lower_percentile=90, upper_percentile=10)
    with pytest.raises(ConfigError, match="eps"):
        normalize_losses([1.0, 2.0, 3.0], eps=0.7)
    with pytest.raises(ConfigError, match=r"eps must be in \(0, 0\.5\); got 0\.0"):  # 0 would put losses on 0 and 1
        normalize_losses([1.0, 2.0, 3.0], eps=0.0)


# ------------------------------------------------------------------- Beta mixture
def test_fit_normalized_recovers_known_mixture():
    u, is_noisy = _beta_mixture_sample()
    model = BetaMixture().fit_normalized(u)
    noisy = model.noisy_component_
    clean = 1 - noisy
    assert model.converged_
    assert model.weights_[clean] == pytest.approx(0.7, abs=0.05)
    assert model.weights_[noisy] == pytest.approx(0.3, abs=0.05)
    assert model.alphas_[clean] == pytest.approx(2.0, rel=0.25)
    assert model.betas_[clean] == pytest.approx(8.0, rel=0.25)
    assert model.alphas_[noisy] == pytest.approx(8.0, rel=0.25)
    assert model.betas_[noisy] == pytest.approx(2.0, rel=0.25)
    accuracy = np.mean((model.predict_proba(u) >= 0.5) == is_noisy)
    assert accuracy >= 0.95


def test_log_likelihood_matches_scipy_mixture_density():
    u, _ = _beta_mixture_sample(seed=3, n=500)
    model = BetaMixture().fit_normalized(u)
    density = sum(
        model.weights_[k] * stats.beta.pdf(u, model.alphas_[k], model.betas_[k]) for k in range(2)
    )
    assert model.log_likelihood_ == pytest.approx(np.log(density).sum(), rel=1e-9)
    assert 1 <= model.n_iter_ <= model.max_iter


def test_raw_posterior_matches_scipy_bayes_rule():
    u, _ = _beta_mixture_sample(seed=4, n=500)
    model = BetaMixture().fit_normalized(u)
    joint = np.vstack(
        [model.weights_[k] * stats.beta.pdf(u, model.alphas_[k], model.betas_[k]) for k in range(2)]
    )
    expected = joint[model.noisy_component_] / joint.sum(axis=0)
    raw = model.predict_proba(u, monotone=False)
    np.testing.assert_allclose(raw, expected, rtol=1e-8, atol=1e-12)


def test_two_loss_clusters_high_cluster_is_noisy():
    losses = _two_cluster_losses()
    model = BetaMixture().fit(losses)
    p_noisy = model.predict_proba(losses)
    assert p_noisy[800:].min() > 0.99
    assert p_noisy[:800].max() < 0.01
    assert model.weights_[model.noisy_component_] == pytest.approx(0.2, abs=0.02)


def test_predictions_invariant_to_positive_scaling():
    losses = _two_cluster_losses(seed=2)
    base = BetaMixture().fit(losses).predict_proba(losses)
    scaled = BetaMixture().fit(250.0 * losses).predict_proba(250.0 * losses)
    np.testing.assert_allclose(base, scaled, atol=1e-9)


def test_predict_proba_clips_new_losses_to_fitted_bounds():
    losses = _two_cluster_losses(seed=5)
    model = BetaMixture().fit(losses)
    p = model.predict_proba([-100.0, model.lower_bound_, model.upper_bound_, 1e6])
    assert p[0] == pytest.approx(p[1]) and p[2] == pytest.approx(p[3])
    assert p[0] < 0.01 and p[3] > 0.99


def test_tail_clamp_makes_posterior_monotone():
    # Wide clean component, narrow noisy one: the plain posterior turns back down at
    # the top end because the clean Beta has the heavier right tail.
    rng = np.random.default_rng(11)
    u = np.r_[rng.beta(2.0, 3.0, 3000), rng.beta(40.0, 10.0, 1000)]
    model = BetaMixture().fit_normalized(u)
    grid = np.linspace(1e-4, 1 - 1e-4, 2001)
    raw = model.predict_proba(grid, monotone=False)
    clamped = model.predict_proba(grid)
    assert np.any(np.diff(raw) < -1e-6), "test needs a non-monotone raw posterior"
    assert np.all(np.diff(clamped[grid > 0.5]) >= -1e-12)
    means = model.alphas_ / (model.alphas_ + model.betas_)
    noisy_mean = means[model.noisy_component_]
    clean_mean = means[1 - model.noisy_component_]
    between = (grid >= clean_mean) & (grid <= noisy_mean)
    np.testing.assert_allclose(clamped[between], raw[between])
    above = grid > noisy_mean
    # Above the noisy mean the clamp is the running maximum of the plain posterior.
    running_max = np.maximum.accumulate(np.r_[raw[between][-1:], raw[above]])[1:]
    np.testing.assert_allclose(clamped[above], running_max, atol=1e-3)
    assert np.all(clamped >= 0.0) and np.all(clamped <= 1.0)


def test_fit_is_deterministic():
    losses = _two_cluster_losses(seed=9)
    a, b = BetaMixture().fit(losses), BetaMixture().fit(losses)
    np.testing.assert_array_equal(a.alphas_, b.alphas_)
    np.testing.assert_array_equal(a.predict_proba(losses), b.predict_proba(losses))
    # The seed orders tied losses at the initial median split; tied losses move the moments alike, so the fit
    # does not depend on it (the audit showed the two fits above would agree even if the seed were ignored).
    tied = np.r_[losses, np.full(60, np.median(losses))]
    fits = [BetaMixture(seed=seed).fit(tied) for seed in (0, 5, 123)]
    for other in fits[1:]:
        np.testing.assert_allclose(other.predict_proba(tied), fits[0].predict_proba(tied), rtol=0, atol=1e-12)
        np.testing.assert_allclose(other.alphas_, fits[0].alphas_, rtol=1e-12)


@pytest.mark.parametrize(
    "losses, match",
    [
        ([0.5, 0.5, 0.5, 0.5, 0.5], "equal"),
        ([0.1, 0.2, 0.3], "at least 4"),
        ([0.1, 0.2, np.nan, 0.3, 0.4], "row 2"),
        (np.ones((3, 4)), "1-D"),
    ],
)
def test_fit_rejects_degenerate_input(losses, match):
    with pytest.raises(InputError, match=match):
        BetaMixture().fit(losses)
    BetaMixture().fit([0.1, 0.2, 0.3, 0.9])  # four rows, the minimum, are enough (three are refused above)


def test_fit_normalized_rejects_values_outside_unit_interval():
    with pytest.raises(InputError, match="row 3"):
        BetaMixture().fit_normalized([0.1, 0.2, 0.3, 1.0, 0.5])
    with pytest.raises(InputError, match=r"strictly inside \(0, 1\); row 0 is 0\.0"):  # both ends are outside
        BetaMixture().fit_normalized([0.0, 0.2, 0.3, 0.5, 0.9])
    with pytest.raises(InputError, match="equal"):
        BetaMixture().fit_normalized([0.3] * 6)


def test_bad_options_and_unfitted_use():
    with pytest.raises(ConfigError, match="max_iter"):
        BetaMixture(max_iter=0).fit(_two_cluster_losses())
    with pytest.raises(RuntimeError, match="not fitted"):
        BetaMixture().predict_proba([0.1, 0.2])


@pytest.mark.parametrize("option", ["max_iter", "seed"])
def test_a_bool_is_not_a_count_or_a_seed(option: str):
    # bool is an int subclass: max_iter=True ran one EM step, without a word
    with pytest.raises(ConfigError, match=f"{option} must be an integer >= [01]; got True"):
        BetaMixture(**{option: True}).fit(_two_cluster_losses())
    with pytest.raises(ConfigError, match=f"{option} must be an integer"):
        BetaMixture(**{option: np.True_}).fit_normalized([0.1, 0.2, 0.3, 0.8, 0.9])
    with pytest.raises(ConfigError, match=r"last_epochs must be an integer in \[1, 4\].*got True"):
        loss_noise_probability(_history_with_a_late_switch(), last_epochs=True)


# ---------------------------------------------------------------- loss history
def _history_with_a_late_switch() -> np.ndarray:
    """Rows 0-19 lose 10 early then ~0; rows 20-39 lose ~0 early then 3; rest ~0."""
    rng = np.random.default_rng(5)
    history = rng.uniform(0.05, 0.15, size=(4, 100))
    history[:2, :20] += 10.0
    history[2:, 20:40] += 3.0
    return history


def test_loss_noise_probability_window_selects_epochs():
    history = _history_with_a_late_switch()
    p_all = loss_noise_probability(history)
    p_last = loss_noise_probability(history, last_epochs=2)
    assert p_all[:20].min() > 0.9 and p_all[40:].max() < 0.1
    assert p_last[20:40].min() > 0.9 and p_last[:20].max() < 0.1
    mean_last = history[-2:].mean(axis=0)
    np.testing.assert_allclose(p_last, BetaMixture().fit(mean_last).predict_proba(mean_last))


def test_loss_noise_probability_passes_options_and_validates():
    history = _history_with_a_late_switch()
    assert loss_noise_probability(history, max_iter=3, seed=1).shape == (100,)
    # The options reach the mixture (a review found that dropping them all still passed this test).
    mean_loss = history.mean(axis=0)
    one_step = loss_noise_probability(history, max_iter=1)
    np.testing.assert_allclose(one_step, BetaMixture(max_iter=1).fit(mean_loss).predict_proba(mean_loss))
    default = loss_noise_probability(history)
    assert np.abs(one_step - default).max() > 0.01
    assert np.abs(loss_noise_probability(history, lower_percentile=30, upper_percentile=70) - default).max() > 0.01
    with pytest.raises(ConfigError, match="last_epochs"):
        loss_noise_probability(history, last_epochs=5)
    with pytest.raises(ConfigError, match="last_epochs"):
        loss_noise_probability(history, last_epochs=0)
    with pytest.raises(ConfigError, match="valid options"):
        loss_noise_probability(history, n_components=3)
    history[1, 7] = np.nan
    with pytest.raises(InputError, match="epoch 1, row 7"):
        loss_noise_probability(history)


def test_loss_noise_probability_errors_name_loss_history_not_the_mixtures_argument() -> None:
    # They said "losses has 3 row(s)": a name the caller never used, for an array whose rows are epochs.
    with pytest.raises(InputError, match=re.escape("loss_history has 3 row(s) (shape (2, 3), read as (n_epochs, "
                                                   "n_rows)); the Beta mixture needs at least 4")):
        loss_noise_probability(np.ones((2, 3)))
    with pytest.raises(InputError, match=re.escape("loss_history has 3 row(s) (shape (3,));")):
        loss_noise_probability([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match=re.escape("(shape (10, 1), read as (n_epochs, n_rows)); the Beta mixture "
                                                   "needs at least 4. If rows are on axis 0, pass loss_history.T")):
        with pytest.warns(UserWarning, match="looks transposed"):
            loss_noise_probability(np.arange(10.0)[:, None])  # ten rows' losses as a column
    # Rows that differ epoch by epoch but not on average: the message says what was averaged.
    with pytest.raises(InputError, match=re.escape("loss_history gives all 4 rows the same loss (1.5, averaged over "
                                                   "its last 2 epochs)")):
        loss_noise_probability([[1.0, 2.0, 1.0, 2.0], [2.0, 1.0, 2.0, 1.0]])
    with pytest.raises(InputError, match=re.escape("loss_history gives all 5 rows the same loss (1.0, averaged over "
                                                   "its only epoch)")):
        loss_noise_probability([1.0] * 5)


def test_options_of_the_wrong_type_are_config_errors_and_tensors_are_read() -> None:
    import torch

    for options, message in (({"tol": "a"}, "tol must be a number >= 0; got 'a'"),
                             ({"tol": float("nan")}, "tol must be a number"),
                             ({"seed": -1}, "seed must be an integer >= 0; got -1")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            BetaMixture(**options).fit(np.arange(20.0))
    with pytest.raises(ConfigError, match=re.escape("lower_percentile='5'")):
        normalize_losses([1.0, 2.0, 3.0], lower_percentile="5")
    with pytest.raises(ConfigError, match="eps must be in"):
        normalize_losses([1.0, 2.0, 3.0], eps="x")
    history = torch.rand(5, 30, generator=torch.Generator().manual_seed(0), requires_grad=True)  # straight from a fit
    assert np.array_equal(loss_noise_probability(history), loss_noise_probability(history.detach().numpy()))


def test_min_range_keeps_the_scaling_from_stretching_rounding_over_the_unit_interval() -> None:
    # 950 rows fit to float rounding (0 or up to 1.2e-7), 50 with a real loss: the 5-95% range is rounding only.
    rng = np.random.default_rng(0)
    losses = np.r_[np.zeros(700), rng.uniform(0, 1.2e-7, 250), rng.uniform(1e-6, 5.6e-3, 50)]
    plain = BetaMixture().fit(losses)
    assert plain.upper_bound_ < 1e-6 and (plain.predict_proba(losses)[:950] >= 0.5).sum() >= 200
    floored = BetaMixture(min_range=1e-6).fit(losses)
    assert (floored.lower_bound_, floored.upper_bound_) == (0.0, losses.max())
    p = floored.predict_proba(losses)
    assert not (p[:950] >= 0.5).any() and (p[950:] >= 0.5).sum() >= 40
    wide = rng.uniform(0, 1, 200)  # percentiles far apart: min_range changes nothing
    np.testing.assert_array_equal(BetaMixture(min_range=1e-6).fit(wide).predict_proba(wide),
                                  BetaMixture().fit(wide).predict_proba(wide))
    with pytest.raises(ConfigError, match="min_range must be a number >= 0"):
        BetaMixture(min_range=-1.0).fit(losses)


def test_the_log_likelihood_is_that_of_the_returned_parameters_when_em_stops_early() -> None:
    # The audit found that skipping the E-step after an unconverged last M-step left the tests passing: the
    # reported log-likelihood was then that of the previous iteration's parameters.
    losses = _two_cluster_losses(seed=4)
    for max_iter in (1, 3):
        fit = BetaMixture(max_iter=max_iter).fit(losses)
        assert not fit.converged_ and fit.n_iter_ == max_iter
        u = normalize_losses(losses)
        density = sum(w * stats.beta.pdf(u, a, b) for w, a, b in zip(fit.weights_, fit.alphas_, fit.betas_))
        assert fit.log_likelihood_ == pytest.approx(float(np.log(density).sum()), rel=1e-9)
