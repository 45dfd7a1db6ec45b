from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketdata.reference import read_reference_csv
from quantbridge.errors import InputError
from risk.scenarios import esg_blackouts, fx_vol_spikes, historical_worst


def totals(rows):
    return {r["scenario"]: r for r in rows if r["position"] == "TOTAL"}


def test_fx_vol_spikes_when_vol_doubles_then_var_doubles_and_correlation_one_is_worse():
    rows = fx_vol_spikes(read_reference_csv("fx"), paths=20_000)
    t = totals(rows)
    assert t["fx_vol_x2"]["change"] == pytest.approx(2 * t["fx_vol_x1"]["change"], rel=1e-9)
    assert t["fx_vol_x3"]["change"] == pytest.approx(3 * t["fx_vol_x1"]["change"], rel=1e-9)
    assert t["fx_correlation_one"]["change"] < t["fx_vol_x1"]["change"] < 0
    per_ccy = [r for r in rows if r["scenario"] == "fx_vol_x1" and r["position"] != "TOTAL"]
    assert sum(r["change"] for r in per_ccy) == pytest.approx(t["fx_vol_x1"]["change"])
    with pytest.raises(InputError, match="multiplier"):
        fx_vol_spikes(read_reference_csv("fx"), multipliers=(0,), paths=1000)


def test_esg_blackouts_when_book_held_then_scandal_and_sector_losses_as_specified():
    esg = read_reference_csv("esg")
    holdings = pd.Series({"XOM": 100_000.0, "CVX": 50_000.0, "MSFT": 200_000.0})
    t = totals(esg_blackouts(holdings, esg, gap=-0.3, haircut=0.05, sector_gap=-0.15, threshold=0.35))
    assert t["esg_scandal_MSFT"]["change"] == pytest.approx(200_000 * (0.7 * 0.95 - 1))
    assert t["esg_worst_scandal"]["change"] == t["esg_scandal_MSFT"]["change"]
    # Energy names XOM (0.27) and CVX (0.31) are under 0.35; MSFT (0.80) is not.
    assert t["esg_blackout_energy"]["change"] == pytest.approx(150_000 * (0.85 * 0.95 - 1))
    assert not any(s.startswith("esg_blackout_information") for s in t)
    with pytest.raises(InputError, match="ZZZ"):
        esg_blackouts(pd.Series({"ZZZ": 1.0}), esg)
    with pytest.raises(InputError, match="esg shocks"):
        esg_blackouts(holdings, esg, gap=0.1)


def test_historical_worst_when_real_prices_then_2020_and_2008_windows_found():
    from marketdata.feed import SkfolioFeed

    closes = (
        SkfolioFeed()
        .fetch(date(2007, 1, 2), date(2021, 12, 31))
        .pivot(index="date", columns="ticker", values="close")
    )
    holdings = pd.Series(50_000.0, index=closes.columns)
    t = totals(historical_worst(holdings, closes))
    one_day = next(s for s in t if s.startswith("worst_1d_"))
    ten_day = next(s for s in t if s.startswith("worst_10d_"))
    assert one_day.endswith("2020-03-16") and "2008-" in ten_day
    end = date(2020, 3, 16)
    start = closes.index[closes.index.get_loc(end) - 1]
    expected = float((holdings * (closes.loc[end] / closes.loc[start] - 1)).sum())
    assert t[one_day]["change"] == pytest.approx(expected)
    with pytest.raises(InputError, match="10-day window"):
        historical_worst(holdings, closes.iloc[:5])
