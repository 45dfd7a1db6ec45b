"""The one place that names Redis keys: every key, its type, who writes it and who reads it.

Nobody else spells a key name: code asks ``RedisSchema(prefix).key("positions")`` (or the attribute
shortcuts) and the schema table in ``docs/operating.md`` is generated from :data:`KEYS` (``qb schema``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKey:
    """One entry of the schema. ``suffix`` may hold ``{placeholders}`` filled by :meth:`RedisSchema.key`."""

    name: str
    suffix: str
    type: str
    writer: str
    reader: str
    description: str


KEYS: tuple[RedisKey, ...] = (
    RedisKey(
        "orders",
        "orders",
        "stream (consumer group `workers`)",
        "strategy rebalance, `qb order`",
        "execution worker",
        "Orders to execute; one entry per order, fields of the order message.",
    ),
    RedisKey(
        "dead_letter",
        "orders:dead",
        "stream",
        "execution worker",
        "operators, dashboard",
        "Malformed or undeliverable orders with the reason.",
    ),
    RedisKey(
        "fills",
        "fills",
        "stream",
        "execution worker",
        "reconciliation, dashboard",
        "Every (partial) fill with venue, price, quantity, fees.",
    ),
    RedisKey(
        "positions",
        "positions",
        "hash ticker -> quantity",
        "execution worker",
        "VaR sensor, rebalance, reconciliation",
        "Current position per ticker (shares).",
    ),
    RedisKey(
        "risk_current",
        "risk:current",
        "hash",
        "VaR sensor",
        "dashboard, execution worker",
        "Latest VaR/CVaR figures of the book in scope (equities, or the consolidated book with its per-class "
        "Euler components var_equity/var_rates/var_fx), model, backend, where marks came from, timestamp.",
    ),
    RedisKey(
        "risk_history",
        "risk:history",
        "stream",
        "VaR sensor",
        "dashboard, nightly report",
        "History of VaR/CVaR refreshes.",
    ),
    RedisKey(
        "kill_switch",
        "risk:kill_switch",
        "string (JSON: reason, by, at) or absent",
        "VaR sensor, operators (`qb kill-switch`, dashboard), through `quantbridge.kill_switch`",
        "execution worker",
        "Present while risk-increasing orders are blocked; every set/clear lands with "
        "its audit entry; the sensor never clears an operator's switch.",
    ),
    RedisKey(
        "alerts",
        "alerts",
        "pub/sub channel",
        "VaR sensor, quality gates",
        "operators, dashboard",
        "Alert messages (JSON).",
    ),
    RedisKey(
        "stress_ledger",
        "stress:ledger",
        "stream",
        "nightly stress",
        "retraining, dashboard",
        "Stress outcomes, one entry per scenario and position.",
    ),
    RedisKey(
        "audit",
        "audit",
        "stream (hash chain)",
        "every state change: execution worker, VaR sensor, operators",
        "auditors, `qb audit verify`",
        "Tamper-evident audit chain: orders, verdicts, state "
        "transitions, fills, dead letters, kill switch, limits loaded.",
    ),
    RedisKey(
        "explanations",
        "orders:explanations",
        "hash order_id -> JSON",
        "strategy rebalance",
        "`qb explain`, audit, dashboard",
        "SHAP explanation of every order: model version, base value, prediction, contribution per feature.",
    ),
    RedisKey(
        "audit_head",
        "audit:head",
        "string (hash of the last audit entry)",
        "every audit writer",
        "`qb audit verify`",
        "Head of the audit hash chain; appends check and move it in one Lua script "
        "(a stale head is refused).",
    ),
    RedisKey(
        "order_state",
        "orders:state",
        "hash order_id -> JSON (state, filled, history, children)",
        "execution worker",
        "execution worker, reconciliation, dashboard",
        "FIX-style state of every order: "
        "NEW, PARTIALLY_FILLED, FILLED, CANCELLED (unfilled rest) or REJECTED; makes processing idempotent "
        "per order id.",
    ),
    RedisKey(
        "heartbeat",
        "heartbeat:{component}",
        "string (ISO timestamp) with TTL",
        "VaR sensor, execution worker",
        "`qb status`, dashboard",
        "Liveness of a long-running process.",
    ),
    RedisKey(
        "inflight",
        "orders:inflight",
        "hash order_id -> JSON (ticker, side, remaining)",
        "execution worker (Lua, with the order's state and audit entry)",
        "execution worker",
        "Shares of accepted orders not yet filled, reserved when an order is accepted and released on its "
        "fill or cancel: limits and the kill switch count them, so racing workers cannot together breach "
        "a limit.",
    ),
    RedisKey(
        "inflight_rev",
        "orders:inflight:rev",
        "hash ticker -> revision",
        "execution worker (Lua)",
        "execution worker",
        "Bumped by every reservation: a worker's decision commits only if the "
        "revisions it decided on are unchanged (otherwise it reads again and decides again).",
    ),
    RedisKey(
        "decide_turn",
        "orders:decide_turn",
        "string consumer name, with a 50 ms TTL",
        "execution worker (after losing a decision commit to another worker)",
        "execution workers (in every batch's read)",
        "Fairness only, never correctness (the commit guards decide): while another worker holds the "
        "turn, a worker waits before deciding, so a worker whose commits keep losing races cannot starve.",
    ),
    RedisKey(
        "marks",
        "marks",
        "hash ticker -> price",
        "price feeds, simulated venues (mid)",
        "execution worker, VaR sensor, `qb var`",
        "Trusted marks fresher than the lake's last close; limits and venues price "
        "orders at the mark, never only at the order's own reference price.",
    ),
    RedisKey(
        "order_signatures",
        "orders:signatures",
        "hash root -> signature JSON",
        "strategy rebalance, `qb order` (with the orders, one Lua call)",
        "execution worker",
        "Signed Merkle root of each published batch of orders (ML-DSA-65 + Ed25519); each order carries "
        "its root and proof.",
    ),
    RedisKey(
        "policy_active",
        "policy:active",
        "string (JSON)",
        "policy_release DAG, `qb policy rollback` (with its audit entry)",
        "execution workers, `qb policy status`",
        "The active policy bundle: revision, who activated it, when, approvals. Workers load it only "
        "when its signature and approvals verify.",
    ),
    RedisKey(
        "policy_workers",
        "policy:workers",
        "hash consumer -> JSON",
        "execution workers",
        "`qb policy status`, dashboard",
        "The policy revision each worker judges by, since when, and any revision it refused.",
    ),
    RedisKey(
        "ingest_last",
        "ingest:last",
        "hash",
        "market_data_ingest DAG, `qb ingest`",
        "`qb status`, dashboard",
        "Last ingested date, rows, tickers, run id and time.",
    ),
)

_BY_NAME = {k.name: k for k in KEYS}

#: Consumer group of the execution workers on the orders stream.
ORDERS_GROUP = "workers"


class RedisSchema:
    """Full key names under one prefix (default ``qb``)."""

    def __init__(self, prefix: str = "qb") -> None:
        if not prefix or ":" in prefix:
            raise ValueError(f"redis_prefix={prefix!r} is invalid: expected a non-empty word without ':'")
        self.prefix = prefix

    def key(self, name: str, **parts: str) -> str:
        """The full name of schema entry ``name`` (placeholders filled from ``parts``)."""
        try:
            entry = _BY_NAME[name]
        except KeyError:
            raise KeyError(f"Redis key {name!r} is not in the schema; known: {', '.join(_BY_NAME)}") from None
        return f"{self.prefix}:{entry.suffix.format(**parts)}"

    @property
    def ingest_last(self) -> str:
        return self.key("ingest_last")

    def heartbeat(self, component: str) -> str:
        return self.key("heartbeat", component=component)


def schema_markdown(prefix: str = "qb") -> str:
    """The schema as a Markdown table (the copy in ``docs/operating.md`` is generated from this)."""
    rows = ["| key | type | written by | read by | meaning |", "|---|---|---|---|---|"]
    for k in KEYS:
        rows.append(f"| `{prefix}:{k.suffix}` | {k.type} | {k.writer} | {k.reader} | {k.description} |")
    return "\n".join(rows)
