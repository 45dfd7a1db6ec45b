"""The replay's day loop: each trading day through the production components, in the order production runs
them, resumable after a kill.

For each trading day D of [start, end] (the feed's calendar):

1. **ingest** D: stage, quality gates, Spark publish (:mod:`marketdata.ingest`, the DAG's three tasks) and the
   ingest record; a quarantined D is skipped by everything below, as in production;
2. **session** D: the orders the rebalance published at the previous close execute now, through the real
   :class:`~execution.worker.ExecutionWorker` and Redis (policies, router, Kalman filters, audit), against
   :class:`~execution.market.Market` anchored on D's real close; never at the close that produced them;
3. **VaR** (:class:`~risk.sensor.VarSensor`, before the session and after the fills) and **reconciliation**;
4. **nightly stress** (:mod:`risk.stress_night`, ledger partition and stream), **retraining** when due (the
   first trading day of each month: the retraining DAG's train, promote and decide steps, so the book decision
   ``models/decision.json`` names the champion or the best baseline as in production), then the **rebalance**
   at the close of D (:func:`strategy.rebalance.rebalance`: it trades the book the decision names), sized to
   the account's value (cash and positions).

After each day: ``OUT/days/D.json`` (what the day did) and a checkpoint (:mod:`app.replay.checkpoint`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from app.replay import checkpoint as ckpt
from app.replay.server import ReplayRedis
from app.replay.session import run_session
from execution.venues import DEFAULT_VENUES
from quantbridge.errors import InputError, NoDataError
from quantbridge.settings import Settings, load_settings
from strategy.registry import CHAMPION_FILE
from strategy.selection import DECISION_FILE

#: Trading days of history ingested before ``start``: the retraining window (750) plus the features' lookback.
HISTORY_DAYS = 1000
#: The replay's venues: the simulated venues' fees, spreads and noise, with the depth an order's children can
#: take over a session (DEPTH_SCALE x the top of book the defaults model for one instant). The data has no
#: intraday prices, so a day's children reach the venues at once; a real desk works a $10M book's orders
#: over the session, where the touch refills many times. What the replay's own trading takes still depletes
#: it and recovers between sessions (execution.market).
DEPTH_SCALE = 25
REPLAY_VENUES = tuple(replace(v, depth=v.depth * DEPTH_SCALE) for v in DEFAULT_VENUES)
#: Share of the pre-trade notional limit each order clip may use at its decision price: the limit is checked
#: at the next session's mark, which may be higher.
CLIP_SHARE = 0.9


@dataclass(frozen=True)
class ReplayArgs:
    """What a run is: ``out`` is resumed only with the same values."""

    start: date
    end: date
    out: Path
    capital: float = 10_000_000.0
    seed: int = 20260101
    stress_paths: int = 5000
    var_limit_pct: float = 5.0
    synthetic: str | None = None
    regime: int = 3
    history_days: int = HISTORY_DAYS
    #: The lake holding the ``synthetic`` run (the user's ``QB_LAKE_ROOT``); its windows are copied in.
    synthetic_lake: Path | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InputError(
                "--end", self.end.isoformat(), f"a date on or after --start {self.start.isoformat()}"
            )
        if not self.capital > 0 or not math.isfinite(self.capital):
            raise InputError("--capital", self.capital, "a positive amount")
        if not 0 < self.var_limit_pct <= 100:
            raise InputError("--var-limit-pct", self.var_limit_pct, "a percentage of capital in (0, 100]")
        if self.history_days < 200:
            raise InputError(
                "--history-days", self.history_days, "at least 200 (retraining's minimum window)"
            )
        if self.stress_paths < 1000:
            raise InputError("--stress-paths", self.stress_paths, "at least 1000 (the DAG's minimum)")

    def fingerprint(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, (date, Path)) else v) for k, v in asdict(self).items() if k != "out"
        }


def _settings(args: ReplayArgs, redis_url: str, password: str) -> Settings:
    """The user's settings, with the run's own lake, Redis, seed and a VaR limit in proportion to capital."""
    return load_settings(
        overrides={
            "lake_root": str(args.out / "lake"),
            "redis_url": redis_url,
            "redis_password": password,
            "redis_prefix": "qb",
            "seed": args.seed,
            "var_limit": args.capital * args.var_limit_pct / 100,
            # The sensor refreshes at each session's open and after its fills; figures count as fresh for the
            # whole replayed day (the live bound, 3 x 30 s, is kept: a day here takes seconds).
            "audit_key_path": str(args.out / "keys" / "checkpoint_ed25519.pem"),
        }
    )


class Replay:
    """One replay run (``run`` resumes after the last completed day when ``out`` holds a checkpoint)."""

    def __init__(self, args: ReplayArgs, progress: Callable[[str], None] = lambda _m: None) -> None:
        self.args, self.progress = args, progress
        self.server = ReplayRedis(args.out / "redis")
        self.timings: dict[str, float] = {}

    # --- set-up ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or resume) every day, then the results; returns the summary of ``OUT/kpis.json``."""
        args = self.args
        if args.synthetic is not None:
            from app.replay.synthetic import check_run

            check_run(args)
        resumed = ckpt.claim(args.out, args.fingerprint())
        last = ckpt.latest(args.out)
        url = self.server.start(restore_from=last.rdb if last else None)
        try:
            return self._run(url, last, resumed)
        finally:
            self.server.stop()

    def _run(self, url: str, last: ckpt.Checkpoint | None, resumed: bool) -> dict[str, Any]:
        from marketdata.spark_writer import get_spark
        from quantbridge.lake import Lake
        from quantbridge.redis_client import connect
        from quantbridge.redis_schema import RedisSchema

        args = self.args
        settings = self.settings = _settings(args, url, self.server.password)
        self.lake = Lake(settings.lake_root)
        self.client, self.schema = connect(settings), RedisSchema(settings.redis_prefix)
        self.spark = get_spark(settings.spark_master)
        if last is None:
            self._history()
        self.feed = self._feed()
        days = self._calendar()
        if last is None:
            state: dict[str, Any] = {
                "done": None,
                "number": 0,
                "orders_last_id": "0-0",
                "fills_last_id": "0-0",
            }
            state |= {"cash": 0.0, "market": None, "filters": {}, "models": [], "champion": None}
            state |= {"decision": None, "retrained_month": None}
        else:
            state = dict(last.state)
            self._roll_back_models(state)
        self._components(state)
        todo = [d for d in days if state["done"] is None or d > date.fromisoformat(state["done"])]
        done_before = len(days) - len(todo)
        if resumed:
            self.progress(
                f"resuming after {state['done'] or 'the history ingest'}: "
                f"{done_before} of {len(days)} days done"
            )
        started = time.perf_counter()
        for i, day in enumerate(todo):
            record = self._day(day, state, last_day=day == days[-1])
            self._finish_day(day, state, record)
            elapsed = time.perf_counter() - started
            left = (len(todo) - i - 1) * elapsed / (i + 1)
            self.progress(_progress_line(done_before + i + 1, len(days), day, record, left))
        from app.replay.results import build_results

        return build_results(self, days)

    def _feed(self) -> Any:
        from marketdata.feed import SkfolioFeed

        if self.args.synthetic is None:
            return SkfolioFeed(self.settings.universe)
        from app.replay.synthetic import synthetic_feed

        return synthetic_feed(self.lake, self.args)

    def _calendar(self) -> list[date]:
        """The trading days of [start, end] in the feed (its dates, as the ingest DAG skips closed days)."""
        if hasattr(self.feed, "dates"):
            days = [d for d in self.feed.dates() if self.args.start <= d <= self.args.end]
        else:
            frame = self.feed.fetch(self.args.start, self.args.end)
            days = sorted({d for d in frame["date"]})
        if not days:
            raise NoDataError(
                f"no trading day in {self.args.start.isoformat()}..{self.args.end.isoformat()} "
                f"in the feed {self.feed.name}"
            )
        return days

    def _history(self) -> None:
        """The lake's history before ``start``: real closes through the bulk path of ``qb ingest``."""
        from marketdata.feed import SkfolioFeed
        from marketdata.ingest import ingest_range
        from marketdata.reference import load_reference_tables

        t0 = time.perf_counter()
        first = self.args.start - timedelta(days=int(self.args.history_days * 7 / 5) + 30)
        history_end = self.args.start - timedelta(days=1)  # a synthetic year continues from there
        real = SkfolioFeed(self.settings.universe)
        low, _ = real.extent()
        result = ingest_range(self.settings, real, max(first, low), history_end, spark=self.spark)
        load_reference_tables(self.lake)
        self.timings["history_ingest"] = time.perf_counter() - t0
        self.progress(
            f"history: {len(result.published)} days "
            f"{result.as_dict()['first_date']}..{result.as_dict()['last_date']}"
            f" ingested in {time.perf_counter() - t0:.1f} s"
        )

    def _components(self, state: dict[str, Any]) -> None:
        """The worker (with the market's venues and the router's filters as checkpointed) and the sensor."""
        from execution.kalman import SlippageFilter
        from execution.market import Market
        from execution.worker import ExecutionWorker, governed, lake_marks, tradable_tickers
        from marketdata.reference import esg_scores
        from risk.sensor import SensorConfig, VarSensor

        s = self.settings
        self.market = (
            Market(REPLAY_VENUES, seed=self.args.seed)
            if state["market"] is None
            else Market.from_state(state["market"])
        )
        scores = esg_scores(self.lake)
        self.worker = ExecutionWorker(
            self.client,
            self.schema,
            "replay",
            tradable_tickers(self.lake),
            scores.to_dict() if scores is not None else {},
            REPLAY_VENUES,
            executors={v.name: self.market.venue(v.name) for v in REPLAY_VENUES},
            marks=lake_marks(self.lake),
            risk_stale_after_s=s.risk_stale_after_s,
            max_deliveries=s.max_deliveries,
            **governed(s, self.lake),  # signed orders and approved policies, as in production
        )
        for key, (estimate, variance) in state["filters"].items():
            venue, ticker = key.split("|", 1)
            self.worker.router.filters[(venue, ticker)] = SlippageFilter(estimate=estimate, variance=variance)
        # Equities only: the replay trades them on its own capital (its VaR limit is a share of it).
        config = SensorConfig.from_settings(s, scope="equities")
        self.sensor = VarSensor(config, self.lake, self.schema, lambda: self.client)
        limits = self.worker.policy.data.get("limits", {})
        self.max_notional = float(limits["max_order_notional"]) * CLIP_SHARE
        self.max_shares = float(limits["max_position_shares"])

    def _roll_back_models(self, state: dict[str, Any]) -> None:
        """Remove model versions registered after the checkpoint and restore its champion and book decision
        (a resumed day retrains and decides again, under the same version name)."""
        root = self.lake.root / "models"
        keep = set(state["models"])
        for folder in root.glob("version=*"):
            if folder.name.split("=", 1)[1] not in keep:
                shutil.rmtree(folder)
        # a checkpoint written before the replay took book decisions has no "decision": there was none
        for name, text in ((CHAMPION_FILE, state["champion"]), (DECISION_FILE, state.get("decision"))):
            if text is None:
                (root / name).unlink(missing_ok=True)
            else:
                (root / name).write_text(text)

    # --- one day ---------------------------------------------------------------------------------------
    def _timed(self, step: str, record: dict[str, Any], fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            seconds = time.perf_counter() - t0
            record.setdefault("seconds", {})[step] = round(seconds, 4)
            self.timings[step] = self.timings.get(step, 0.0) + seconds

    def _day(self, day: date, state: dict[str, Any], last_day: bool) -> dict[str, Any]:
        record: dict[str, Any] = {"day": day.isoformat()}
        ingest = self._timed("ingest", record, lambda: self._ingest(day))
        record["ingest"] = ingest
        if not ingest["published"]:
            record["skipped"] = f"quarantined: {ingest['failed']}"
            return record
        closes = self.lake.read_close_matrix(day, day).iloc[-1].dropna()
        anchors = {str(t): float(p) for t, p in closes.items()}
        record["closes"] = anchors
        record["market_before"] = self.market.state()
        self._timed("var", record, lambda: self.sensor.refresh(self.client))
        session = self._timed(
            "session",
            record,
            lambda: run_session(
                self.client,
                self.schema,
                self.worker,
                self.market,
                day,
                anchors,
                self._daily_vol(day),
                state["orders_last_id"],
                state["fills_last_id"],
            ),
        )
        state["orders_last_id"], state["fills_last_id"] = session.orders_last_id, session.fills_last_id
        record["orders"], record["fills"] = session.orders, session.fills
        record["refusals"] = session.refusals
        for f in session.fills:
            sign = 1.0 if f["side"] == "BUY" else -1.0
            state["cash"] -= sign * f["quantity"] * f["price"] + f["fee"]
        figures = self._timed("var", record, lambda: self.sensor.refresh(self.client))
        record["var"] = {k: figures.get(k) for k in ("var", "cvar", "model", "as_of", "limit", "kill_switch")}
        from quantbridge.positions import read_positions

        positions = read_positions(self.client, self.schema)
        record["positions"], record["cash"] = positions, state["cash"]
        record["nav"] = (
            self.args.capital + state["cash"] + sum(q * anchors.get(t, 0.0) for t, q in positions.items())
        )
        record["reconcile"] = self._timed("reconcile", record, lambda: self._reconcile(day))
        record["stress"] = self._timed("stress", record, lambda: self._stress(day, positions))
        month = day.strftime("%Y-%m")
        if state["retrained_month"] != month:
            record["retrain"] = self._timed("retrain", record, lambda: self._retrain(day, record["nav"]))
            state["retrained_month"] = month
        if not last_day:  # orders of the last day would never execute inside the run
            record["rebalance"] = self._timed(
                "rebalance", record, lambda: self._rebalance(day, record["nav"])
            )
        return record

    def _ingest(self, day: date) -> dict[str, Any]:
        from marketdata.ingest import gate, publish, stage
        from marketdata.ingest_record import record_ingest

        staged = stage(self.lake, self.feed, day, day)
        report = gate(self.lake, self.settings, day, day)
        partitions = publish(self.lake, self.spark, day, day) if report.passed else {}
        summary = {
            "partitions": len(partitions),
            "rows": sum(partitions.values()),
            "last_date": max(partitions, default=None),
            "tickers": list(staged.tickers),
            "source": staged.source,
            "passed": report.passed,
            "run_id": f"replay__{day.isoformat()}",
        }
        record_ingest(self.client, self.schema, summary)
        return {
            "published": bool(partitions),
            "source": staged.source,
            "failed": [] if report.passed else report.to_text(limit=5).splitlines()[:5],
        }

    def _daily_vol(self, day: date) -> dict[str, float]:
        """Each name's daily volatility known before ``day``: the EWMA (0.94) of its last 250 returns."""
        import numpy as np

        from quantbridge.returns import daily_returns
        from risk.covariance import ewma_variance

        dates = [d for d in self.lake.price_dates() if d < day][-251:]
        returns = daily_returns(
            self.lake.read_close_matrix(dates[0], dates[-1]), self.lake.quarantined_dates()
        )
        out = {}
        for ticker in returns.columns:
            r = returns[ticker].dropna().to_numpy()
            out[str(ticker)] = float(np.sqrt(ewma_variance(r**2)[-1])) if len(r) > 20 else 0.02
        return out

    def _reconcile(self, day: date) -> dict[str, Any]:
        from execution.reconcile import reconcile

        report = reconcile(self.client, self.schema, self.lake, day)
        return {
            "ok": report["ok"],
            "breaks": report["breaks"],
            "pnl_to_date": report["execution_pnl_to_date"],
        }

    def _stress(self, day: date, positions: dict[str, float]) -> dict[str, Any]:
        from risk.ledger import publish_stream, write_partition
        from risk.stress_night import load_inputs, run_stress

        inputs = load_inputs(self.lake, day, positions)
        frame = run_stress(
            inputs,
            ["rates", "fx", "esg", "historical"],
            paths=self.args.stress_paths,
            seed=self.settings.seed,
            dask_scheduler=self.settings.dask_scheduler,
        )
        write_partition(self.lake, day, frame)
        publish_stream(self.client, self.schema, day, frame)
        return {"rows": len(frame)}

    def _retrain(self, day: date, nav: float) -> dict[str, Any]:
        """The retraining DAG's three steps (train, promote, decide) at the close of ``day``; the book
        decision's costs are the execution lane's model (as the DAG's decide task builds it) on the account's
        value ``nav``. A lake too short for the decision leaves the previous one in force, as the DAG's
        skipped task does."""
        from app.cli.strategy import execution_costs
        from strategy.registry import get, promote_if_better
        from strategy.selection import decide_book
        from strategy.training import retrain

        s = self.settings
        trained = retrain(
            self.lake,
            day,
            750,
            "gbm",
            seed=s.seed,
            stress_weight=s.train_stress_weight,
            dask_scheduler=s.dask_scheduler,
            version=f"replay-{day.isoformat()}",
        )
        promoted = promote_if_better(self.lake, get(self.lake, trained["version"]))
        try:
            book = decide_book(self.lake, day, execution_costs(nav))
            decision = {k: book[k] for k in ("trade", "reason", "champion", "period")}
        except NoDataError as exc:
            decision = {"trade": None, "reason": f"no new decision: {exc}"}
        return {
            "version": trained["version"],
            "ic": trained["metrics"].get("ic"),
            "holdout": trained["holdout"],
            "promoted": promoted["promoted"],
            "promotion_reason": promoted["reason"],
            "decision": decision,
        }

    def _rebalance(self, day: date, nav: float) -> dict[str, Any]:
        from strategy.portfolio import Constraints
        from strategy.rebalance import rebalance

        out = rebalance(
            self.lake,
            self.client,
            self.schema,
            day,
            self.args.capital,
            Constraints(),
            book_value=nav,
            max_order_notional=self.max_notional,
            max_position_shares=self.max_shares,
        )
        return {k: out[k] for k in ("book", "model_version", "orders", "published", "weights")}

    def _finish_day(self, day: date, state: dict[str, Any], record: dict[str, Any]) -> None:
        """The day's record, then the checkpoint that makes it done."""
        folder = self.args.out / "days"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{day.isoformat()}.tmp"
        tmp.write_text(json.dumps(record, sort_keys=True, default=str) + "\n")
        tmp.replace(folder / f"{day.isoformat()}.json")
        models = self.lake.root / "models"
        state["done"], state["number"] = day.isoformat(), state["number"] + 1
        state["market"] = self.market.state()
        state["filters"] = {
            f"{v}|{t}": [f.estimate, f.variance] for (v, t), f in self.worker.router.filters.items()
        }
        state["models"] = sorted(p.name.split("=", 1)[1] for p in models.glob("version=*"))
        for key, name in (("champion", CHAMPION_FILE), ("decision", DECISION_FILE)):
            path = models / name
            state[key] = path.read_text() if path.is_file() else None
        ckpt.write(self.args.out, state["number"], state, lambda path: self.server.save(self.client, path))


def _progress_line(n: int, total: int, day: date, record: dict[str, Any], left_s: float) -> str:
    if "skipped" in record:
        return f"[{n:>3}/{total}] {day.isoformat()} skipped ({record['skipped'][:60]})  eta {_mmss(left_s)}"
    orders = record.get("orders", [])
    filled = sum(o["state"] == "FILLED" for o in orders)
    rejected = sum(o["state"] == "REJECTED" for o in orders)
    var = record.get("var", {}).get("var") or 0.0
    return (
        f"[{n:>3}/{total}] {day.isoformat()} orders {len(orders):>3} filled {filled:>3} "
        f"rejected {rejected:>3} "
        f"nav {record['nav']:>14,.0f} VaR {float(var):>11,.0f}  eta {_mmss(left_s)}"
    )


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run_replay(args: ReplayArgs, progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run or resume the replay of ``args``; returns the KPIs."""
    return Replay(args, progress).run()
