"""Synthetic section: the latest ``synthetic/run=*/`` samples against the lake's real daily returns of the
same tickers (histograms, Q-Q plot, moments, Wasserstein distance, two-sample KS test)."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np

from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.returns import daily_returns
from reporting.sections.section import Section, figure, html_table, no_data, save_png
from reporting.sections.synthetic_samples import synthetic_samples


def _moments(values: np.ndarray) -> dict[str, float]:
    from scipy import stats

    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)),
        "skew": float(stats.skew(values)),
        "excess_kurtosis": float(stats.kurtosis(values)),
        "q01": float(np.quantile(values, 0.01)),
        "q99": float(np.quantile(values, 0.99)),
    }


def _chart(real_v: np.ndarray, synth_v: np.ndarray, days: int, run: str, path: Path) -> None:
    fig = figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    lo, hi = np.quantile(np.concatenate([real_v, synth_v]), [0.001, 0.999])
    bins = np.linspace(lo, hi, 61)
    left.hist(real_v, bins=bins, density=True, alpha=0.55, color="#2c3e50", label=f"real (last {days} days)")
    left.hist(synth_v, bins=bins, density=True, alpha=0.55, color="#e67e22", label=f"synthetic run {run}")
    left.set_xlabel("daily return")
    left.legend(fontsize=8)
    q = np.linspace(0.005, 0.995, 199)
    rq, sq = np.quantile(real_v, q), np.quantile(synth_v, q)
    right.plot(rq, sq, ".", ms=3, color="#e67e22")
    edge = [min(rq[0], sq[0]), max(rq[-1], sq[-1])]
    right.plot(edge, edge, color="black", lw=0.7)
    right.set_xlabel("real quantile")
    right.set_ylabel("synthetic quantile")
    right.set_title("Q-Q")
    save_png(fig, path)


def synthetic_section(lake: Lake, day: date, folder: Path, window: int) -> Section:
    """The section ``synthetic``: the samples against the last ``window`` real daily returns."""
    from scipy import stats

    s = Section("synthetic", "Synthetic vs real return distributions")
    found = synthetic_samples(lake)
    if found is None:
        s.note = no_data(
            "no synthetic/run=*/ samples with return columns in the lake "
            "(the synthetic_generation DAG writes them)"
        )
        return s
    run, synth = found
    closes = lake.read_close_matrix(end=day)
    tickers = sorted(set(synth["ticker"]) & set(closes.columns))
    if closes.empty or not tickers:
        s.note = no_data(f"no real prices on or before {day.isoformat()} for the tickers of run {run}")
        return s
    try:
        real = daily_returns(closes.loc[:, tickers], lake.quarantined_dates()).tail(window)
    except InputError as exc:
        s.note = no_data(str(exc))
        return s
    real_v = real.to_numpy().ravel()
    synth_v = synth.loc[synth["ticker"].isin(tickers), "value"].to_numpy(dtype=np.float64)
    if real_v.size < 2 or synth_v.size < 2:
        s.note = no_data(f"fewer than two values to compare (real {real_v.size}, synthetic {synth_v.size})")
        return s
    m_real, m_syn = _moments(real_v), _moments(synth_v)
    wasserstein = float(stats.wasserstein_distance(real_v, synth_v))
    ks = stats.ks_2samp(real_v, synth_v)
    _chart(real_v, synth_v, len(real), run, folder / "synthetic.png")
    s.png = "synthetic.png"
    s.figures = {
        "run": run,
        "tickers": len(tickers),
        "real": m_real,
        "synthetic": m_syn,
        "wasserstein": wasserstein,
        "ks_statistic": float(ks.statistic),
        "ks_p": float(ks.pvalue),
    }
    ratio = m_syn["std"] / m_real["std"] if m_real["std"] else math.inf
    warn = (
        f"<p><b>Units differ</b>: synthetic std is {ratio:.1f}x the real one; the samples may be scaled "
        "(for example in units of volatility), not simple daily returns.</p>"
        if not 0.2 < ratio < 5
        else ""
    )
    moments = html_table(
        ["", "n", "mean", "std", "skew", "excess kurtosis", "1%", "99%"],
        [
            [name, m["n"], m["mean"], m["std"], m["skew"], m["excess_kurtosis"], m["q01"], m["q99"]]
            for name, m in (("real", m_real), ("synthetic", m_syn))
        ],
    )
    tests = (
        f"<p>Wasserstein distance {wasserstein:.5f}; two-sample KS statistic {ks.statistic:.4f} "
        f"(p = {ks.pvalue:.3g}).</p>"
    )
    s.body = warn + moments + tests
    return s


__all__ = ["synthetic_section"]
