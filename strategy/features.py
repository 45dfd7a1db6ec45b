"""Leakage-free features on Dask: every feature at date D uses closes up to D only.

Per (date, ticker): ``ret_1d``, ``ret_5d``, ``mom_21d`` (21-day return), ``mom_63d``, ``vol_21d`` (std of
daily returns), ``mr_z21`` (close minus its 21-day mean, in 21-day standard deviations: mean reversion),
``beta_63d`` (to the equal-weight market of the universe), ``esg`` (reference score, point in time: see
below). The label ``target_5d`` is the 5-day return a decision at the close of D can earn, from the close
of D+1 (when its orders execute, the replay's convention) to the close of D+1+5, minus its cross-sectional
mean on the same date: it alone looks ahead, and rows without it (the last 6 dates) are kept for scoring,
not training.

ESG is point in time: the bundled ESG table is a single, undated snapshot (illustrative scores, first
committed on :data:`ESG_SNAPSHOT_DATE`), so its value exists only from that date. Before it the ``esg``
feature is missing (NaN; the model's imputer fills a constant), never today's score applied back to 1990.

Dask partitions the panel by ticker (each ticker whole in one partition), so the rolling windows run in
parallel and the same code scales to a Dask cluster (``QB_DASK_SCHEDULER``).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

FEATURES = ("ret_1d", "ret_5d", "mom_21d", "mom_63d", "vol_21d", "mr_z21", "beta_63d", "esg")
TARGET = "target_5d"
HORIZON = 5
LOOKBACK = 63
#: Trading days between a decision (close of D) and its execution (close of D+1), as the replay trades.
EXECUTION_LAG = 1
#: The date from which the bundled ESG snapshot is known (its first commit to the repository): before it
#: no point-in-time ESG value exists and the ``esg`` feature is left out (NaN).
ESG_SNAPSHOT_DATE = date(2026, 11, 25)


def _per_ticker(frame: pd.DataFrame) -> pd.DataFrame:
    """Rolling features of one partition (one or more whole tickers, each sorted by date)."""
    out = []
    for ticker, g in frame.groupby(level=0, sort=False):
        g = g.sort_values("date")
        close = g["close"]
        ret = close.pct_change(fill_method=None)
        feats = pd.DataFrame(
            {
                "date": g["date"].to_numpy(),
                "ticker": ticker,
                "ret_1d": ret.to_numpy(),
                "ret_5d": close.pct_change(5, fill_method=None).to_numpy(),
                "mom_21d": close.pct_change(21, fill_method=None).to_numpy(),
                "mom_63d": close.pct_change(63, fill_method=None).to_numpy(),
                "vol_21d": ret.rolling(21).std().to_numpy(),
                "mr_z21": ((close - close.rolling(21).mean()) / close.rolling(21).std()).to_numpy(),
                "mkt": g["mkt"].to_numpy(),
                "fwd_5d": (
                    close.shift(-(HORIZON + EXECUTION_LAG)) / close.shift(-EXECUTION_LAG) - 1
                ).to_numpy(),
            }
        )
        cov = ret.rolling(LOOKBACK).cov(pd.Series(g["mkt"].to_numpy(), index=ret.index))
        feats["beta_63d"] = (
            cov / pd.Series(g["mkt"].to_numpy(), index=ret.index).rolling(LOOKBACK).var()
        ).to_numpy()
        out.append(feats)
    columns = [
        "date",
        "ticker",
        "ret_1d",
        "ret_5d",
        "mom_21d",
        "mom_63d",
        "vol_21d",
        "mr_z21",
        "mkt",
        "fwd_5d",
        "beta_63d",
    ]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def build_features(
    closes: pd.DataFrame,
    esg: pd.Series | None = None,
    npartitions: int = 4,
    dask_scheduler: str = "",
    esg_as_of: date | None = ESG_SNAPSHOT_DATE,
) -> pd.DataFrame:
    """Feature panel from a (dates x tickers) close matrix; one row per (date, ticker) with a full lookback.

    ``esg``: score per ticker (missing tickers get NaN, which the model pipeline imputes), known from
    ``esg_as_of`` on: rows dated before it get NaN (no point-in-time value); None applies it everywhere
    (only for a table that truly held on every date).
    ``dask_scheduler``: a distributed scheduler address (``QB_DASK_SCHEDULER``); empty = local threads.
    """
    import dask
    import dask.dataframe as dd

    closes = closes.sort_index()
    market = closes.pct_change(fill_method=None).mean(axis=1)  # same-date cross-section only
    long = closes.stack(future_stack=True).rename("close").reset_index()
    long.columns = ["date", "ticker", "close"]
    long["mkt"] = long["date"].map(market)
    long = long.dropna(subset=["close"]).set_index("ticker").sort_index()
    meta = _per_ticker(long.iloc[0:0])
    # Keep dates as Python dates (Dask would turn object columns into strings).
    with dask.config.set({"dataframe.convert-string": False}):
        graph = dd.from_pandas(
            long, npartitions=max(1, min(npartitions, long.index.nunique())), sort=True
        ).map_partitions(_per_ticker, meta=meta)
        if dask_scheduler:
            from dask.distributed import Client

            with Client(dask_scheduler) as client:
                panel = client.compute(graph).result()
        else:
            panel = graph.compute(scheduler="threads")
    panel = panel.sort_values(["date", "ticker"], ignore_index=True)
    panel["esg"] = panel["ticker"].map(esg).astype("float64") if esg is not None else np.nan
    if esg is not None and esg_as_of is not None:
        before = pd.to_datetime(panel["date"]) < pd.Timestamp(esg_as_of)
        panel.loc[before, "esg"] = np.nan
    panel[TARGET] = panel["fwd_5d"] - panel.groupby("date")["fwd_5d"].transform("mean")
    first_full = sorted(panel["date"].unique())[LOOKBACK : LOOKBACK + 1]
    if not first_full:
        return panel.iloc[0:0].loc[:, ["date", "ticker", *FEATURES, TARGET]]
    panel = panel[panel["date"] >= first_full[0]]
    return panel.loc[:, ["date", "ticker", *FEATURES, TARGET]].reset_index(drop=True)
