"""Pre-trade policy evaluation: the Rego policies in ``policies/`` evaluated in-process.

A verdict is data, not an exception: ``PolicyVerdict(allowed, reasons)`` where each reason is a code with
its figures, e.g. ``"NOTIONAL_EXCEEDS_MAX: max=250000, notional=300000, mark=100"``. What the policies see
of the world besides the order is a :class:`RiskContext`: the worker's own mark (never only the order's
price), the position plus the shares of open orders, the kill switch and whether the risk figures are fresh.

Two engines run the same Rego files (the single source of truth): ``regorus`` (the Rust engine, through
``opa-eval``; the default, about 8x less time per order than regopy on a batch of 500, measured with
``python -m bench.policy_bench``, see docs/execution.md) and ``regopy`` (rego-cpp). They reach the same
verdicts; regopy prints some floats with 16 significant digits (``8.539999999999999``) where regorus and
OPA print the shortest form (``8.54``), the same number (tests/unit/execution/test_policy_differential.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quantbridge.messages import SubmitOrder
from quantbridge.settings import PROJECT_ROOT

POLICY_DIR = PROJECT_ROOT / "policies"

#: The in-process Rego engines :class:`PolicyEngine` can run.
Engine = Literal["regorus", "regopy"]
ENGINES: tuple[Engine, ...] = ("regorus", "regopy")


@dataclass(frozen=True)
class PolicyVerdict:
    allowed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class RiskContext:
    """The state an order is judged against. ``mark``: the trusted price of the ticker (lake close or venue
    mid); ``pending_buy``/``pending_sell``: shares of accepted orders not filled yet (all workers);
    ``risk_stale``: the VaR figures are missing or older than ``risk_max_age_s`` (``risk_age_s`` old)."""

    mark: float
    position: float = 0.0
    pending_buy: float = 0.0
    pending_sell: float = 0.0
    kill_switch: bool = False
    risk_stale: bool = False
    risk_age_s: float | None = None
    risk_max_age_s: float = 90.0
    esg_score: float | None = None


class PolicyEngine:
    """Loads every ``*.rego`` module and ``data.json`` of a folder once; evaluates orders against them with
    ``engine`` (regorus takes one module: a folder of several needs ``engine="regopy"``)."""

    def __init__(
        self,
        folder: Path = POLICY_DIR,
        data_overrides: dict[str, Any] | None = None,
        engine: Engine = "regorus",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown policy engine {engine!r}: one of {', '.join(ENGINES)}")
        self.folder = Path(folder)
        self.engine = engine
        modules = sorted(self.folder.glob("*.rego"))
        if not modules:
            raise FileNotFoundError(f"no .rego policy in {self.folder}")
        if engine == "regorus" and len(modules) > 1:
            raise ValueError(f"the regorus engine loads one .rego module, {self.folder} has {len(modules)}")
        digest = hashlib.sha256()
        sources = {}
        for module in modules:
            source = module.read_text()
            digest.update(f"{module.name}\n{len(source)}\n{source}".encode())
            sources[module] = source
        data = json.loads((self.folder / "data.json").read_text())
        for key, value in (data_overrides or {}).items():
            data["limits"][key] = value
        self.data = data
        digest.update(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
        #: SHA-256 of the modules and the effective limits: the audit entry of a load names it.
        self.sha256 = digest.hexdigest()
        if engine == "regorus":
            from opa_eval import OpaEval

            # One compiled query for a batch; a single order is a batch of one (the same rule).
            self._regorus = OpaEval(
                str(modules[0]), data_json=json.dumps(data), query="data.pretrade.verdicts"
            )
        else:
            from regopy import Interpreter

            self._rego = Interpreter()
            for module, source in sources.items():
                self._rego.add_module(module.stem, source)
            self._rego.add_data(data)
            # Compiled once: a bundle query is ~8x faster than compiling the modules on every order.
            self._bundle = self._rego.build("data.pretrade")
            self._batch = self._rego.build("data.pretrade.verdicts")

    @staticmethod
    def _item(order: SubmitOrder, context: RiskContext) -> dict[str, Any]:
        return {
            "order": {
                "ticker": order.ticker,
                "side": order.side,
                "quantity": order.quantity,
                "reference_price": order.reference_price,
                "strategy": order.strategy,
            },
            **vars(context),
        }  # not dataclasses.asdict: its deep copy showed in the worker's profile

    def evaluate(self, order: SubmitOrder, context: RiskContext) -> PolicyVerdict:
        """The verdict on one order in ``context``."""
        if self.engine == "regorus":
            return self.evaluate_many([(order, context)])[0]
        self._rego.set_input(self._item(order, context))
        result = json.loads(str(self._rego.query_bundle(self._bundle)))["expressions"][0]
        return PolicyVerdict(bool(result["allow"]), tuple(sorted(result.get("deny", []))))

    def evaluate_many(self, items: list[tuple[SubmitOrder, RiskContext]]) -> list[PolicyVerdict]:
        """Verdicts on several (order, context) at once, in order: one Rego query for the batch."""
        if not items:
            return []
        batch = {"items": [self._item(*item) for item in items]}
        if self.engine == "regorus":
            # One JSON text per batch (the binding's only input); the result comes back as Python objects.
            results = self._regorus.evaluate_parsed(json.dumps(batch, separators=(",", ":"), allow_nan=False))
        else:
            self._rego.set_input(batch)
            results = json.loads(str(self._rego.query_bundle(self._batch)))["expressions"][0]
        if len(results) != len(items):
            raise RuntimeError(f"policy engine gave {len(results)} verdicts for {len(items)} orders")
        return [PolicyVerdict(bool(r["allow"]), tuple(sorted(r["deny"]))) for r in results]
