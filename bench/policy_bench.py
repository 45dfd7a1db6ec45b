"""In-process Rego engines on the project's own policy (policies/pretrade.rego + data.json).

For each engine and batch size (1, 50, 500 orders) the time per order of a verdict call, input building and
result conversion included (what the worker pays): warm-up, then the median of ``--repeats`` passes over a
seeded, realistic mix of allowed and denied orders. Faithfulness: every engine's verdicts (allow flag and
the sorted reason strings) against regopy's on the same corpus, exactly and with the numbers in the
reasons compared to 15 significant digits (regopy prints some floats with 16, regorus with fewer).

    python -m bench.policy_bench [--orders 500] [--repeats 7] [--json]

Engines: regopy, regorus (opa-eval) through :class:`execution.policy.PolicyEngine`; OPA itself through
opa-golib-python-bindings (``opa_bindings``, when importable: its wheel asks for Python >= 3.14, so it is
not in the lock); OPA compiled to WebAssembly (opa-py-wasm) when an ``opa`` binary can build the .wasm.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

from execution.policy import PolicyEngine, PolicyVerdict, RiskContext
from quantbridge.messages import SubmitOrder

Items = list[tuple[SubmitOrder, RiskContext]]
BATCHES = (1, 50, 500)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def corpus(n: int, seed: int = 16) -> Items:
    """``n`` orders as the worker sees them: mostly allowed, some denied by each rule (about 1 in 3)."""
    rng = random.Random(seed)
    marks = {"AAPL": 187.32, "MSFT": 411.05, "XOM": 104.6, "JPM": 198.77, "NVDA": 121.4, "RRC": 38.15}
    esg = {"AAPL": 0.71, "MSFT": 0.8, "XOM": 0.21, "JPM": 0.55, "NVDA": 0.25, "RRC": None}
    items = []
    for i in range(n):
        ticker = rng.choice(list(marks))
        mark = marks[ticker]
        side = rng.choice(("BUY", "SELL"))
        quantity = float(rng.choice((1, 5, 10, 25, 100, 250, 500, 1000, 2500)))
        # Most orders carry a price near the mark; a few are off the 10% band.
        price = round(mark * (rng.uniform(0.98, 1.02) if rng.random() < 0.9 else rng.uniform(0.8, 1.2)), 2)
        stale = rng.random() < 0.05
        items.append(
            (
                SubmitOrder(
                    order_id=f"o{i}",
                    ts="2026-12-01T09:30:00+00:00",
                    strategy="momentum",
                    ticker=ticker,
                    side=side,
                    quantity=quantity,
                    reference_price=price,
                ),
                RiskContext(
                    mark=mark,
                    position=float(rng.choice((0, 100, -300, 2500, 19_500, -19_800))),
                    pending_buy=float(rng.choice((0, 0, 50, 400))),
                    pending_sell=float(rng.choice((0, 0, 25, 300))),
                    kill_switch=rng.random() < 0.05,
                    risk_stale=stale,
                    risk_age_s=round(rng.uniform(90, 600), 3) if stale else round(rng.uniform(1, 60), 3),
                    esg_score=esg[ticker],
                ),
            )
        )
    return items


class OpaGolib:
    """OPA itself (Go, through a c-shared library): the same module, data and batch rule."""

    def __init__(self) -> None:
        from opa_bindings import OpaEngine

        base = PolicyEngine(engine="regopy")
        self._opa = OpaEngine()
        for module in sorted(base.folder.glob("*.rego")):
            self._opa.add_policy(module.name, module.read_text())
        self._opa.add_data(base.data)

    def evaluate_many(self, items: Items) -> list[PolicyVerdict]:
        batch = {"items": [PolicyEngine._item(*item) for item in items]}
        results = self._opa.eval_document("pretrade.verdicts", batch)
        return [PolicyVerdict(bool(r["allow"]), tuple(sorted(r["deny"]))) for r in results]

    def evaluate(self, order: SubmitOrder, context: RiskContext) -> PolicyVerdict:
        return self.evaluate_many([(order, context)])[0]


def engines() -> tuple[dict[str, Any], dict[str, str]]:
    """The engines that load here, and why the others were not measured."""
    found: dict[str, Any] = {
        "regopy": PolicyEngine(engine="regopy"),
        "regorus": PolicyEngine(engine="regorus"),
    }
    missing = {}
    try:
        found["opa-golib"] = OpaGolib()
    except ImportError as exc:
        missing["opa-golib"] = f"opa_bindings not importable ({exc}); its wheel requires Python >= 3.14"
    if shutil.which("opa") is None:
        missing["opa-wasm"] = "no opa binary (package index, Debian) to run `opa build -t wasm`"
    return found, missing


def canonical(verdict: PolicyVerdict) -> tuple[bool, tuple[str, ...]]:
    """The verdict with each number of its reasons to 15 significant digits: 8.539999999999999 -> 8.54."""
    return verdict.allowed, tuple(
        _NUMBER.sub(lambda m: f"{float(m.group()):.15g}", r) for r in verdict.reasons
    )


def time_per_order(call: Callable[[Items], object], items: Items, size: int, repeats: int) -> float:
    """Median over ``repeats`` passes of the time per order, calling ``call`` on chunks of ``size``."""
    chunks = [items[i : i + size] for i in range(0, len(items) - size + 1, size)]
    for chunk in chunks[:3]:
        call(chunk)  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for chunk in chunks:
            call(chunk)
        samples.append((time.perf_counter() - t0) / (len(chunks) * size))
    return statistics.median(samples) * 1e6


def run(orders: int, repeats: int) -> dict[str, Any]:
    items = corpus(orders)
    found, missing = engines()
    reference = [found["regopy"].evaluate(*item) for item in items]
    opa = found["opa-golib"].evaluate_many(items) if "opa-golib" in found else None
    rows = []
    for name, engine in found.items():
        single = lambda chunk, e=engine: [e.evaluate(*chunk[0])]  # noqa: E731 - batch of 1: the one-order call
        us = {
            str(size): time_per_order(single if size == 1 else engine.evaluate_many, items, size, repeats)
            for size in BATCHES
        }
        got = engine.evaluate_many(items)
        assert got == [engine.evaluate(*item) for item in items], f"{name}: batch and single verdicts differ"
        rows.append(
            {
                "engine": name,
                "us_per_order": us,
                "denied": sum(not v.allowed for v in got),
                "differ_exact": sum(a != b for a, b in zip(got, reference, strict=True)),
                "differ_as_numbers": sum(
                    canonical(a) != canonical(b) for a, b in zip(got, reference, strict=True)
                ),
                "allow_differs": sum(a.allowed != b.allowed for a, b in zip(got, reference, strict=True)),
                "differ_vs_opa_exact": None
                if opa is None
                else sum(a != b for a, b in zip(got, opa, strict=True)),
            }
        )
    return {
        "orders": orders,
        "repeats": repeats,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "not_measured": missing,
    }


def table(result: dict[str, Any]) -> str:
    head = [
        "engine",
        *(f"batch {b} us/order" for b in BATCHES),
        "denied",
        "differ vs regopy (exact/numbers)",
        "vs OPA exact",
    ]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in result["rows"]:
        cells = [r["engine"], *(f"{r['us_per_order'][str(b)]:.1f}" for b in BATCHES), str(r["denied"])]
        cells.append(f"{r['differ_exact']} / {r['differ_as_numbers']} of {result['orders']}")
        cells.append("-" if r["differ_vs_opa_exact"] is None else str(r["differ_vs_opa_exact"]))
        lines.append(" | ".join(cells))
    for name, why in result["not_measured"].items():
        lines.append(f"{name}: not measured: {why}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders in the corpus (a multiple of 500)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(args.orders, args.repeats)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
