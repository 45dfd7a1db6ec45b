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

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from execution.bundle import DATA_FILE, VerifiedBundle, canonical_data, revision_of
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
    """Loads the ``*.rego`` modules and ``data.json`` of a folder (or of a verified bundle) once; evaluates
    orders against them with ``engine`` (regorus takes one module: several need ``engine="regopy"``).

    ``revision`` names what decides: the bundle revision (:func:`execution.bundle.revision_of`) of the
    modules and the effective ``data.json``. Without ``data_overrides`` that is ``data.json``'s own bytes,
    so a folder and the bundle built from it have the same revision; with overrides it is the revision of
    the effective data re-serialised by :func:`execution.bundle.canonical_data` (sorted keys, 2-space
    indent, final newline), which is what :func:`execution.bundle.with_limits` of the same changes stores.
    """

    def __init__(
        self,
        folder: Path = POLICY_DIR,
        data_overrides: dict[str, Any] | None = None,
        engine: Engine = "regorus",
    ) -> None:
        self.folder = Path(folder)
        modules = sorted(self.folder.glob("*.rego"))
        if not modules:
            raise FileNotFoundError(f"no .rego policy in {self.folder}")
        files = {module.name: module.read_bytes() for module in modules}
        files[DATA_FILE] = (self.folder / DATA_FILE).read_bytes()
        self._load(files, data_overrides, engine)

    @classmethod
    def from_verified(
        cls,
        bundle: VerifiedBundle,
        engine: Engine = "regorus",
        data_overrides: dict[str, Any] | None = None,
    ) -> PolicyEngine:
        """An engine on the bytes :func:`execution.bundle.verify` checked (never re-read from disk after the
        check); ``folder`` is the bundle's folder and ``revision`` the bundle's revision."""
        self = cls.__new__(cls)
        self.folder = Path(bundle.path)
        self._load(dict(bundle.files), data_overrides, engine)
        return self

    def _load(self, files: dict[str, bytes], data_overrides: dict[str, Any] | None, engine: Engine) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown policy engine {engine!r}: one of {', '.join(ENGINES)}")
        self.engine = engine
        sources = {name: raw.decode() for name, raw in sorted(files.items()) if name.endswith(".rego")}
        if engine == "regorus" and len(sources) > 1:
            raise ValueError(f"the regorus engine loads one .rego module, {self.folder} has {len(sources)}")
        data = json.loads(files[DATA_FILE])
        if data_overrides:
            for key, value in data_overrides.items():
                data["limits"][key] = value
            files = {**files, DATA_FILE: canonical_data(data)}
        self.data = data
        #: The bundle revision of the modules and the effective data: verdicts and audit entries name it.
        self.revision = revision_of(files)
        if engine == "regorus":
            from opa_eval import OpaEval

            ((name, source),) = sources.items()
            # opa-eval reads a file: the checked source goes to a private temporary copy, read once.
            with tempfile.TemporaryDirectory(prefix="qb-policy-") as tmp:
                path = Path(tmp) / name
                path.write_text(source)
                # One compiled query for a batch; a single order is a batch of one (the same rule).
                self._regorus = OpaEval(str(path), data_json=json.dumps(data), query="data.pretrade.verdicts")
        else:
            from regopy import Interpreter

            self._rego = Interpreter()
            for name, source in sources.items():
                self._rego.add_module(name.removesuffix(".rego"), source)
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
