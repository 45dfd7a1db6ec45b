"""The figures behind the VaR section: today's book backtested with the live VaR code, and the sensor's
live points (``risk:history``) by valuation date."""

from __future__ import annotations

from datetime import date
from typing import Any

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.returns import daily_returns

#: Fewest returns behind one forecast, and fewest forecasts worth a chart, on a short lake.
MIN_WINDOW, MIN_FORECASTS = 60, 20


def var_history(
    lake: Lake,
    day: date,
    positions: dict[str, float],
    *,
    model: str = "filtered_historical_portfolio",
    confidence: float = 0.99,
    window: int = 1000,  # risk.var.VarSpec.window (settings.var_window)
    days: int = 250,
) -> dict[str, Any]:
    """Today's book backtested over the last ``days`` valuation dates, and its next-day VaR as of ``day``.

    The book is ``positions`` (shares), else the $1M equal-weight demo book of ``qb var`` (shares at the
    last close on or before ``day``), held constant in shares. The forecasts are the live code's
    (:func:`risk.backtest.forecast_history`, :func:`risk.portfolio_var.portfolio_var` for ``day``). Returns a
    dict with ``frame`` (index the valuation date D; ``var``, ``cvar``, the book's ``pnl`` from D to the
    next lake date ``loss_date``, ``exception``), ``today`` (the forecast as of ``day``, what the VaR
    sensor publishes), the backtest row (Kupiec, Christoffersen, zone), the window used and the book's
    source; raises InputError naming what is missing when the lake cannot support it.
    """
    from risk.backtest import evaluate, forecast_history
    from risk.portfolio import DEMO_NOTIONAL, equal_weight_book, exposures
    from risk.portfolio_var import portfolio_var, recent_closes
    from risk.var import VarSpec

    closes = recent_closes(lake, window + days + 1, end=day)
    if closes.empty:
        raise InputError(
            "lake prices", f"none on or before {day.isoformat()}", "published prices (qb ingest)"
        )
    last = closes.ffill().iloc[-1].dropna()
    source = "Redis positions"
    if not positions:
        positions, source = equal_weight_book(last, DEMO_NOTIONAL), "demo equal-weight book ($1,000,000)"
    money = exposures(positions, last)  # raises InputError naming tickers the lake does not price
    gross = float(money.abs().sum())
    if gross <= 0:
        raise InputError("positions", positions, "a book with a non-zero exposure")
    quarantined = lake.quarantined_dates()
    n = len(daily_returns(closes.loc[:, list(money.index)], quarantined))
    used = min(window, max(MIN_WINDOW, n - days))
    if n - used < MIN_FORECASTS:
        raise InputError(
            "lake history",
            f"{n} daily returns on or before {day.isoformat()}",
            f"at least {MIN_WINDOW + MIN_FORECASTS} ({MIN_WINDOW} behind a forecast, "
            f"{MIN_FORECASTS} forecasts)",
            hint="ingest more history with `qb ingest`",
        )
    spec = VarSpec(model=model, confidence=confidence, window=used)
    history = forecast_history(closes, positions, spec, quarantined=quarantined, last=days)
    today = portfolio_var(closes, positions, quarantined=quarantined, spec=spec)
    row = evaluate(history["loss"], history["var"], confidence, model)
    frame = history.assign(pnl=-history["loss"]).loc[:, ["loss_date", "var", "cvar", "pnl", "exception"]]
    return {
        "frame": frame,
        "today": today,
        "backtest": row.as_dict(),
        "window": used,
        "source": source,
        "gross": gross,
        "positions": len(money),
        "as_of": str(closes.index[-1]),
    }


def live_points(
    history: list[dict[str, str]], first: date, last: date
) -> tuple[list[date], list[float], int]:
    """Live sensor VaR by valuation date (``as_of``) inside [first, last]; and how many fell outside."""
    xs, ys, outside = [], [], 0
    for entry in history:
        try:
            as_of, var = date.fromisoformat(entry.get("as_of", "")[:10]), float(entry["var"])
        except (KeyError, ValueError):
            continue  # a refresh with an empty book has no valuation date
        if first <= as_of <= last:
            xs.append(as_of)
            ys.append(var)
        else:
            outside += 1
    return xs, ys, outside


__all__ = ["MIN_FORECASTS", "MIN_WINDOW", "live_points", "var_history"]
