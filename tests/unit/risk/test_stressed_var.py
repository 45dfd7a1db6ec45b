"""Stressed VaR: the worst 250-day window of a history with one stressed stretch, checked by brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantbridge.errors import InputError
from risk.stressed_var import STRESS_WINDOW, stressed_var
from risk.var import VarSpec

CALM, STRESS = slice(0, 600), slice(600, 700)


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    """1,000 daily closes of three tickers; returns 600-699 five times as volatile."""
    rng = np.random.default_rng(12)
    vol = np.full(999, 0.01)
    vol[STRESS] = 0.05
    returns = rng.standard_normal((999, 3)) * vol[:, None]
    prices = 100 * np.vstack([np.ones(3), np.cumprod(1 + returns, axis=0)])
    days = pd.bdate_range("2001-01-01", periods=1_000).date
    return pd.DataFrame(prices, index=pd.Index(days, name="date"), columns=["AAA", "BBB", "CCC"])


MONEY = {"AAA": 4e5, "BBB": 3e5, "CCC": -3e5}


def test_stressed_var_when_one_stressed_stretch_then_the_worst_window_holds_it_and_matches_brute_force(
    closes,
):
    out = stressed_var(closes, MONEY, VarSpec(model="historical", quantile="linear"), hold="money")

    returns = closes.pct_change().iloc[1:]
    loss = -(returns.to_numpy() @ np.array(list(MONEY.values())))
    by_hand = [np.quantile(loss[j - 250 : j], 0.99) for j in range(250, len(loss) + 1)]
    worst = int(np.argmax(by_hand))
    assert out["var"] == pytest.approx(by_hand[worst], rel=1e-12)
    assert out["start"] == str(returns.index[worst]) and out["end"] == str(returns.index[worst + 249])
    tail = loss[worst : worst + 250]
    assert out["cvar"] == pytest.approx(tail[tail >= by_hand[worst]].mean(), rel=1e-12)
    worst_day = str(returns.index[int(np.argmax(loss))])  # in the stressed stretch
    assert str(returns.index[STRESS][0]) <= worst_day <= str(returns.index[STRESS][-1])
    assert out["start"] <= worst_day <= out["end"]
    assert out["windows"] == len(loss) - 249 and out["window"] == STRESS_WINDOW == 250
    assert out["as_of"] == str(closes.index[-1]) and out["exposure"] == 1e6
    calm = np.quantile(loss[CALM][-250:], 0.99)
    assert out["var"] > 3 * calm


def test_stressed_var_when_filtered_model_then_historical_simulation_and_shares_valued_at_the_last_close(
    closes,
):
    shares = {t: m / closes[t].iloc[-1] for t, m in MONEY.items()}

    filtered = stressed_var(closes, shares, VarSpec(model="filtered_historical_portfolio"))
    garch = stressed_var(closes, shares, VarSpec(model="filtered_historical_garch"))
    plain = stressed_var(closes, MONEY, VarSpec(model="historical"), hold="money")
    normal = stressed_var(closes, MONEY, VarSpec(model="normal"), hold="money")

    assert filtered["model"] == garch["model"] == "historical"
    assert filtered["var"] == pytest.approx(plain["var"], rel=1e-12) == garch["var"]
    assert filtered["start"] == plain["start"]
    assert normal["model"] == "normal" and normal["var"] > 3 * 0.01 * 2.33 * 1e5


def test_stressed_var_when_unbiased_quantile_or_longer_horizon_then_the_spec_is_kept(closes):
    base = stressed_var(closes, MONEY, VarSpec(model="historical", quantile="linear"), hold="money")

    unbiased = stressed_var(closes, MONEY, VarSpec(model="historical", quantile="unbiased"), hold="money")
    four_day = stressed_var(
        closes, MONEY, VarSpec(model="historical", horizon_days=4, quantile="linear"), hold="money"
    )

    assert unbiased["var"] >= base["var"]
    assert four_day["var"] == pytest.approx(2 * base["var"], rel=1e-12) and four_day["horizon_days"] == 4


def test_stressed_var_when_arguments_invalid_then_errors_name_them(closes):
    with pytest.raises(InputError, match="hold"):
        stressed_var(closes, MONEY, VarSpec(), hold="weights")
    with pytest.raises(InputError, match="ZZZ"):
        stressed_var(closes, {"ZZZ": 1.0}, VarSpec())
    with pytest.raises(InputError, match="positions"):
        stressed_var(closes, {}, VarSpec())
    with pytest.raises(InputError, match="window=250"):
        stressed_var(closes.iloc[:100], MONEY, VarSpec())
    gap = closes.copy()
    gap["AAA"] = np.nan
    with pytest.raises(InputError):
        stressed_var(gap, MONEY, VarSpec())
