from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from quantdesk.quant_core.errors import InputError, InsufficientDataError
from quantdesk.quant_core.sharpe_inference import (
    DSRResult,
    deflated_sharpe_ratio,
    effective_number_of_trials,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)

# Bailey & López de Prado (2014), "A numerical example": annualised SR 2.5 on daily data,
# T = 1250, N = 100, annualised V = 1/2, skew -3, raw kurtosis 10.
PAPER = {"sr": 2.5, "n_obs": 1250, "skew": -3.0, "kurtosis": 10.0, "sharpe_units": "annualized"}


@pytest.mark.parametrize(
    ("annualization", "n_trials", "skew", "kurtosis", "expected_dsr"),
    [
        # The paper prints 0.9004: it uses 250 sessions a year and sqrt(T - 1) (0.900397).
        (250, 100, -3.0, 10.0, 0.9004),
        # The same inputs on the package's 252-session convention.
        (252, 100, -3.0, 10.0, 0.8997),
        # The paper's follow-ups: DSR 0.9505 after N = 46, and after N = 88 with normal returns.
        (250, 46, -3.0, 10.0, 0.9505),
        (250, 88, 0.0, 3.0, 0.9505),
    ],
)
def test_dsr_reproduces_the_paper_example(
    annualization: int, n_trials: int, skew: float, kurtosis: float, expected_dsr: float
) -> None:
    result = deflated_sharpe_ratio(
        **{**PAPER, "skew": skew, "kurtosis": kurtosis},
        n_trials=n_trials,
        var_trial_sharpes=0.5,
        annualization=annualization,
    )
    assert result.dsr == pytest.approx(expected_dsr, abs=5e-5)
    assert result.passed() is (expected_dsr >= 0.95)


def test_dsr_paper_example_units_and_carried_inputs() -> None:
    result = deflated_sharpe_ratio(**PAPER, n_trials=100, var_trial_sharpes=0.5, annualization=250)
    # Everything inside the formula is per period: SR / sqrt(250), V / 250.
    assert result.sr == pytest.approx(2.5 / math.sqrt(250))
    assert result.var_trial_sharpes == pytest.approx(0.5 / 250)
    assert result.sr0 == pytest.approx(0.1132, abs=5e-5)  # the paper's SR0 (non-annualised)
    assert result.sr_annualized == pytest.approx(2.5)
    assert (result.n_trials, result.n_obs, result.skew, result.kurtosis) == (100, 1250, -3, 10)
    assert result.psr > result.dsr
    d = result.to_dict()
    assert d["kurtosis_convention"] == "raw"
    assert d["sr0_annualized"] == pytest.approx(result.sr0 * math.sqrt(250))


@pytest.mark.parametrize(
    ("annualization", "skew", "kurtosis", "years"),
    [
        # Bailey & López de Prado (2012), §5: annualised SR 2 vs benchmark 1 at 95%.
        (252, 0.0, 3.0, 2.73),
        (52, 0.0, 3.0, 2.83),
        (12, 0.0, 3.0, 3.24),
        (12, -0.72, 5.78, 4.99),  # the HFR index's skewness and kurtosis
    ],
)
def test_min_track_record_length_reproduces_the_paper(
    annualization: int, skew: float, kurtosis: float, years: float
) -> None:
    result = min_track_record_length(
        sr=2.0,
        sr_benchmark=1.0,
        skew=skew,
        kurtosis=kurtosis,
        annualization=annualization,
        sharpe_units="annualized",
    )
    assert result.min_years == pytest.approx(years, abs=5e-3)
    assert result.min_obs == pytest.approx(result.min_years * annualization)
    assert result.sufficient is None


@pytest.mark.parametrize(
    ("sr", "benchmark", "expected"),
    [(0.0, 0.0, 0.5), (0.1, 0.1, 0.5), (0.05, 0.0, None)],
)
def test_psr_golden_values(sr: float, benchmark: float, expected: float | None) -> None:
    result = probabilistic_sharpe_ratio(
        sr=sr, sr_benchmark=benchmark, n_obs=500, skew=0.0, kurtosis=3.0
    )
    if expected is None:  # normal returns: z = SR * sqrt(n - 1) / sqrt(1 + SR^2 / 2)
        expected = stats.norm.cdf(sr * math.sqrt(499) / math.sqrt(1 + sr**2 / 2))
    assert result.psr == pytest.approx(expected, rel=1e-12)


def test_psr_from_returns_uses_moment_skew_and_raw_kurtosis(rng: np.random.Generator) -> None:
    r = rng.standard_t(4, size=800) * 0.01 + 0.0005
    result = probabilistic_sharpe_ratio(r)
    assert result.source == "returns"
    assert result.sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert result.skew == pytest.approx(stats.skew(r, bias=True))
    assert result.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False, bias=True))
    explicit = probabilistic_sharpe_ratio(
        sr=result.sr, n_obs=800, skew=result.skew, kurtosis=result.kurtosis
    )
    assert explicit.psr == pytest.approx(result.psr, rel=1e-12)
    start = np.datetime64("2020-01-01")
    frame = pl.DataFrame({"date": start + np.arange(800), "net": r})
    assert probabilistic_sharpe_ratio(frame).psr == pytest.approx(result.psr, rel=1e-12)


def test_min_track_record_from_returns_reports_sufficiency(rng: np.random.Generator) -> None:
    r = rng.normal(0.002, 0.01, size=1000)  # per-period SR about 0.2: needs ~70 returns
    result = min_track_record_length(r)
    assert result.n_obs == 1000
    assert result.sufficient is True
    assert result.min_obs < 1000


@pytest.mark.parametrize(
    ("n_trials", "expected"),
    [
        (1, 0.0),
        # (1 - γ) Φ⁻¹(0.99) + γ Φ⁻¹(1 - 1/(100 e)), times sqrt(V) = 1.
        (
            100,
            (1 - np.euler_gamma) * stats.norm.ppf(0.99)
            + np.euler_gamma * stats.norm.ppf(1 - 1 / (100 * math.e)),
        ),
    ],
)
def test_expected_max_sharpe_golden(n_trials: int, expected: float) -> None:
    assert expected_max_sharpe(n_trials, 1.0) == pytest.approx(expected, rel=1e-12)
    assert expected_max_sharpe(n_trials, 4.0) == pytest.approx(2 * expected, rel=1e-12)


def test_expected_max_sharpe_matches_monte_carlo() -> None:
    rng = np.random.default_rng(11)
    # 20,000 draws of the maximum of 100 standard normals: mean 2.50 (MC s.e. ~0.003);
    # the Euler-Mascheroni approximation gives 2.53, about 1% high (conservative).
    simulated = rng.standard_normal((20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 1.0) == pytest.approx(simulated, rel=0.02)


def test_expected_max_sharpe_is_floored_and_increasing() -> None:
    values = [expected_max_sharpe(n, 1.0) for n in (1, 1.1, 1.5, 2, 10, 100, 1000)]
    assert values[:2] == [0.0, 0.0]  # the approximation dips below 0 near N = 1
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_dsr_with_one_trial_equals_psr_against_zero(rng: np.random.Generator) -> None:
    r = rng.normal(0.0005, 0.01, size=500)
    dsr = deflated_sharpe_ratio(r, n_trials=1)
    assert dsr.sr0 == 0.0
    assert dsr.var_trial_sharpes is None
    assert dsr.dsr == pytest.approx(probabilistic_sharpe_ratio(r).psr, rel=1e-12)


def test_dsr_trial_sharpes_give_their_ddof1_variance() -> None:
    trials = np.array([0.01, 0.03, -0.02, 0.05, 0.0])
    by_list = deflated_sharpe_ratio(
        sr=0.05, n_obs=1000, skew=0, kurtosis=3, n_trials=5, trial_sharpes=trials
    )
    by_var = deflated_sharpe_ratio(
        sr=0.05, n_obs=1000, skew=0, kurtosis=3, n_trials=5, var_trial_sharpes=trials.var(ddof=1)
    )
    assert by_list == by_var
    annual = deflated_sharpe_ratio(
        sr=0.05 * math.sqrt(252),
        n_obs=1000,
        skew=0,
        kurtosis=3,
        n_trials=5,
        trial_sharpes=trials * math.sqrt(252),
        sharpe_units="annualized",
    )
    assert annual.dsr == pytest.approx(by_list.dsr, rel=1e-12)


_VALID = {"sr": 0.1, "n_obs": 1250, "skew": 0.0, "kurtosis": 3.0, "n_trials": 1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sr": 2.5}, "annualised Sharpe"),  # an annualised value passed as per period
        ({"n_trials": 10, "var_trial_sharpes": 0.5}, "standard deviation of Sharpes"),
        ({"kurtosis": 0.0}, "RAW kurtosis"),  # excess kurtosis of a normal
        ({"n_trials": 0}, "at least 1"),
        ({"n_trials": True}, "number of at least 1"),
        ({"n_trials": 10}, "dispersion"),
        ({"n_trials": 10, "var_trial_sharpes": 1e-3, "trial_sharpes": [0.1, 0.2]}, "Both"),
        ({"n_obs": None}, "must be given"),
        ({"n_obs": 1}, "at least 2"),
        ({"annualization": 0}, "positive"),
        ({"sharpe_units": "yearly"}, "unit"),
    ],
)
def test_dsr_refuses_misuse(changes: dict, message: str) -> None:
    kwargs = {k: v for k, v in {**_VALID, **changes}.items() if v is not None}
    with pytest.raises(InputError, match=message) as info:
        deflated_sharpe_ratio(**kwargs)
    assert info.value.fix


def test_returns_and_moments_together_or_flat_returns_are_refused() -> None:
    with pytest.raises(InputError, match="Both returns and explicit"):
        probabilistic_sharpe_ratio([0.01, 0.02, -0.01], sr=0.1)
    with pytest.raises(InputError, match="zero variance"):
        deflated_sharpe_ratio(np.full(100, 0.001), n_trials=1)
    with pytest.raises(InsufficientDataError):
        probabilistic_sharpe_ratio([0.01])
    with pytest.raises(InputError, match="does not exceed the benchmark"):
        min_track_record_length(sr=0.05, sr_benchmark=0.05, skew=0, kurtosis=3)


moments = st.tuples(
    st.floats(-0.5, 0.5),  # per-period SR (annualised up to ~8)
    st.integers(10, 5000),
    st.floats(-2.0, 2.0),
    st.floats(0.0, 20.0),  # kurtosis in excess of the 1 + skew^2 bound
)


@settings(max_examples=80, deadline=None)
@given(m=moments, bump=st.floats(1e-3, 0.3))
def test_psr_increases_with_the_sharpe(m: tuple, bump: float) -> None:
    sr, n, skew, extra = m
    kurt = 1.0 + skew**2 + extra
    low = probabilistic_sharpe_ratio(sr=sr, n_obs=n, skew=skew, kurtosis=kurt)
    high = probabilistic_sharpe_ratio(sr=min(sr + bump, 0.6), n_obs=n, skew=skew, kurtosis=kurt)
    assert 0.0 <= low.psr <= high.psr <= 1.0


@settings(max_examples=80, deadline=None)
@given(m=moments, confidence=st.floats(0.6, 0.99))
def test_min_track_record_length_is_where_psr_reaches_the_confidence(
    m: tuple, confidence: float
) -> None:
    sr, _, skew, extra = m
    sr = abs(sr) + 0.02
    kurt = 1.0 + skew**2 + extra
    trl = min_track_record_length(sr=sr, skew=skew, kurtosis=kurt, confidence=confidence)
    above = probabilistic_sharpe_ratio(
        sr=sr, n_obs=max(2, math.ceil(trl.min_obs)), skew=skew, kurtosis=kurt
    )
    assert above.psr >= confidence - 1e-9
    if math.floor(trl.min_obs) >= 2 and trl.min_obs - math.floor(trl.min_obs) > 1e-9:
        below = probabilistic_sharpe_ratio(
            sr=sr, n_obs=math.floor(trl.min_obs), skew=skew, kurtosis=kurt
        )
        assert below.psr < confidence


@settings(max_examples=60, deadline=None)
@given(
    m=moments,
    n_small=st.floats(1.0, 50.0),
    extra_trials=st.floats(0.0, 500.0),
    sd=st.floats(1e-3, 0.1),
)
def test_dsr_never_exceeds_psr_and_falls_with_more_trials(
    m: tuple, n_small: float, extra_trials: float, sd: float
) -> None:
    sr, n, skew, extra = m
    common = {
        "sr": sr,
        "n_obs": n,
        "skew": skew,
        "kurtosis": 1.0 + skew**2 + extra,
        "var_trial_sharpes": sd**2,
    }
    few = deflated_sharpe_ratio(**common, n_trials=n_small)
    many = deflated_sharpe_ratio(**common, n_trials=n_small + extra_trials)
    assert many.dsr <= few.dsr <= few.psr + 1e-15
    assert many.sr0 >= few.sr0 >= 0.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3))
def test_dsr_is_invariant_to_the_scale_of_returns(seed: int, scale: float) -> None:
    r = np.random.default_rng(seed).normal(0.0004, 0.01, size=300)
    base = deflated_sharpe_ratio(r, n_trials=20, var_trial_sharpes=1e-3)
    scaled = deflated_sharpe_ratio(r * scale, n_trials=20, var_trial_sharpes=1e-3)
    assert scaled.dsr == pytest.approx(base.dsr, rel=1e-9, abs=1e-12)


# --- effective number of trials -------------------------------------------------------------


def _equicorrelation(n: int, rho: float) -> np.ndarray:
    return np.full((n, n), rho) + (1.0 - rho) * np.eye(n)


@pytest.mark.parametrize(
    ("method", "rho", "expected"),
    [
        ("average_correlation", 0.5, 20 / (1 + 19 * 0.5)),
        ("average_correlation", -0.02, 20.0),  # negative mean correlation is floored at 0
        ("participation_ratio", 0.5, 20 / (1 + 19 * 0.25)),
        ("clusters", 0.5, 20.0),  # a shared factor does not merge trials
        ("clusters", 0.95, 1.0),
        ("participation_ratio", 1.0, 1.0),
    ],
)
def test_effective_trials_golden_on_equicorrelation(
    method: str, rho: float, expected: float
) -> None:
    got = effective_number_of_trials(correlation=_equicorrelation(20, rho), method=method)
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("method", ["clusters", "average_correlation", "participation_ratio"])
def test_effective_trials_count_groups_of_duplicates(method: str) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(2000, 4))
    # Four ideas, each tried five times with tiny tweaks (rho ~ 0.9999).
    trials = np.repeat(base, 5, axis=1) + 1e-2 * rng.normal(size=(2000, 20))
    got = effective_number_of_trials(trials, method=method)
    assert got == pytest.approx(4.0, rel=0.02)
    corr = np.corrcoef(trials, rowvar=False)
    assert effective_number_of_trials(correlation=corr, method=method) == pytest.approx(got)


def test_effective_trials_of_independent_trials_is_about_n() -> None:
    rng = np.random.default_rng(4)
    trials = rng.normal(size=(1000, 30))
    assert effective_number_of_trials(trials) == 30.0
    # Sampling noise in the correlations shrinks the eigenvalue count a little: N/(1+(N-1)/T).
    pr = effective_number_of_trials(trials, method="participation_ratio")
    assert 30 / (1 + 29 / 1000) * 0.95 < pr <= 30
    frame = pl.DataFrame({"date": range(1000), **{f"t{i}": trials[:, i] for i in range(30)}})
    assert effective_number_of_trials(frame) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"returns": np.ones((5, 2)), "correlation": np.eye(2)}, "exactly one"),
        ({"correlation": np.array([[1.0, 0.2], [0.3, 1.0]])}, "not a correlation matrix"),
        ({"correlation": np.array([[2.0, 0.0], [0.0, 2.0]])}, "not a correlation matrix"),
        ({"correlation": np.eye(3), "method": "li_ji"}, "unknown"),
        ({"correlation": np.eye(3), "min_correlation": 1.5}, "min_correlation"),
        ({"returns": np.column_stack([np.arange(5.0), np.ones(5)])}, "zero variance"),
    ],
)
def test_effective_trials_refuses_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        effective_number_of_trials(**kwargs)


# --- synthetic known truth, end to end ------------------------------------------------------

T_OBS = 1500
DAILY_VOL = 0.01


def _search(seed: int) -> tuple[DSRResult, DSRResult]:
    """A planted effect among 5 trials, and the best of a 100-variant pure-noise search."""
    rng = np.random.default_rng([2026, seed])

    def noise(size: int | tuple[int, int]) -> np.ndarray:
        # Student-t(5) scaled to unit variance: fat tails (population raw kurtosis 9).
        return rng.standard_t(5, size=size) / math.sqrt(5 / 3) * DAILY_VOL

    planted = noise(T_OBS) + DAILY_VOL * 2.0 / math.sqrt(252)  # true annualised Sharpe 2
    trials = np.column_stack([planted] + [noise(T_OBS) for _ in range(4)])
    trial_sr = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    real = deflated_sharpe_ratio(planted, n_trials=5, trial_sharpes=trial_sr)

    search = noise((T_OBS, 100))
    search_sr = search.mean(axis=0) / search.std(axis=0, ddof=1)
    best = search[:, int(np.argmax(search_sr))]
    fake = deflated_sharpe_ratio(best, n_trials=100, trial_sharpes=search_sr)
    return real, fake


def test_known_truth_planted_effect_passes_and_noise_search_fails() -> None:
    real, fake = _search(2)
    # Planted: realised annualised SR 2.29 (true 2, s.e. ~0.41). Its own Sharpe inflates the
    # variance of the 5 trial Sharpes, so SR0 is 1.45 annualised; DSR 0.980, passing by 0.03
    # (DSR = 0.95 would need a realised SR of 2.12).
    assert real.sr_annualized == pytest.approx(2.29, abs=0.01)
    assert real.dsr > 0.95
    assert real.passed()
    # Noise: the best of 100 looks good on its own (annualised SR 0.92, PSR(0) 0.988) but
    # sits at the expected maximum of 100 skill-less trials (SR0 0.96 annualised): DSR 0.46,
    # far below 0.95 (passing would need a realised SR of 1.63).
    assert fake.sr_annualized > 0.9
    assert fake.psr > 0.95
    assert fake.dsr < 0.6
    assert not fake.passed()
    assert fake.n_trials == 100
    assert real.n_trials == 5


def test_known_truth_power_and_false_positive_rate_over_seeds() -> None:
    results = [_search(seed) for seed in range(20)]
    real_pass = sum(r.passed() for r, _ in results)
    fake_pass = sum(f.passed() for _, f in results)
    # Power: a true SR of 2 over 1500 days passes when the realised SR exceeds ~1.6, which
    # happens ~85% of the time (33/40 seeds in a longer run). 13/20 is 2.5 s.d. below that.
    assert real_pass >= 13
    # The best of 100 noise variants must beat its own expected maximum by 1.645 s.e.
    # (~0.2% chance per seed): no seed in 40 passed in a longer run (max DSR 0.76).
    assert fake_pass == 0


def test_shared_conventions_are_one_object() -> None:
    from quantdesk.quant_core import conventions, effective_trials, metrics, sharpe_inference

    assert sharpe_inference.PERIODS_PER_YEAR is metrics.PERIODS_PER_YEAR
    assert metrics.PERIODS_PER_YEAR == conventions.PERIODS_PER_YEAR == 252
    assert sharpe_inference._as_return_matrix is effective_trials._as_return_matrix
    assert (
        sharpe_inference.effective_number_of_trials is effective_trials.effective_number_of_trials
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (2.5, 2.5), (np.float32(0.25), 0.25), ("3", 3.0)],
)
def test_finite_float_accepts_numbers(value: object, expected: float) -> None:
    from quantdesk.quant_core.conventions import finite_float

    assert finite_float(value, "v") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "not a number"),
        (None, "not a number"),
        ([1], "not a number"),
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
    ],
)
def test_finite_float_names_the_bad_value(value: object, message: str) -> None:
    from quantdesk.quant_core.conventions import finite_float

    with pytest.raises(InputError, match=f"v=.* is {message}"):
        finite_float(value, "v")


def test_statistics_alone_need_neither_numpy_nor_scipy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from quantdesk.quant_core.sharpe_inference import deflated_sharpe_ratio; "
        "r = deflated_sharpe_ratio(sr=0.07, n_obs=1260, skew=-0.5, kurtosis=6.0, n_trials=10, "
        "var_trial_sharpes=0.0004); "
        "print(r.dsr, sorted(m for m in ('numpy', 'polars', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dsr, loaded = out.stdout.split(" ", 1)
    assert loaded.strip() == "[]"
    expected = deflated_sharpe_ratio(
        sr=0.07, n_obs=1260, skew=-0.5, kurtosis=6.0, n_trials=10, var_trial_sharpes=0.0004
    )
    assert float(dsr) == expected.dsr
