"""Operator controls, each audited with who (``operator:<user>``) and why.

* ``qb kill-switch on|off --reason TEXT``: set or clear the kill switch through :mod:`quantbridge.kill_switch`
  (the change and its ``kill_switch_set``/``kill_switch_cleared`` audit entry land in one Lua call);
  ``qb kill-switch status`` shows it. An operator's switch is the operator's: the VaR sensor never clears it.
* ``qb order submit --ticker T --side BUY|SELL --quantity Q [--limit-price P] [--id ID] [--reason TEXT]``,
  or ``qb order submit --file orders.csv|orders.jsonl``: :class:`~quantbridge.messages.SubmitOrder` messages
  on the orders stream, each with an ``order_submitted`` audit entry (by, source, reason), all in one Lua
  call.
  A file is accepted entirely or refused entirely, with every bad row listed by line, field and value.
* ``qb order status ID|--all [--json]``: the FIX-style state the worker keeps in ``orders:state``.

The user is the login name (``$USER``, :func:`getpass.getuser`). An operator's order carries as its
``reference_price`` the lake's latest close of the ticker (the worker checks limits and fills on its own
mark, never on a price the order brings); ``--limit-price`` is the order's optional ``limit_price``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import re
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.order_rows import (
    OrderRow,
    OrdersRefused,
    at_line,
    parse_order,
    parse_order_file,
)
from quantbridge.errors import InputError, NoDataError, ServiceError
from quantbridge.settings import Settings

if TYPE_CHECKING:
    from quantbridge.signing import KeyRing

MAX_REASON_CHARS = 1_000
STRATEGY = "operator"


def operator_name() -> str:
    """``operator:<login name>``, the ``by`` of every entry this module writes."""
    return f"operator:{getpass.getuser()}"


def new_order_id(now: datetime) -> str:
    """``op:<UTC timestamp>:<8 hex digits of a uuid4>``: sortable by time, unique without coordination."""
    return f"op:{now.strftime('%Y%m%dT%H%M%SZ')}:{uuid.uuid4().hex[:8]}"


# --- parsing (pure: text in, rows or problems out) ----------------------------------------------------------


def latest_closes(settings: Settings) -> tuple[date, dict[str, float]]:
    """The lake's latest price date and each ticker's close on it (the worker's tradable universe)."""
    from quantbridge.lake import Lake

    lake = Lake(settings.lake_root)
    dates = lake.price_dates()
    if not dates:
        raise InputError(
            "lake prices",
            str(settings.lake_root),
            "published prices (an operator's order is "
            "priced at the ticker's latest close): run `qb ingest` first",
        )
    prices = lake.read_prices(start=dates[-1])
    closes = {
        str(t): float(c) for t, c in zip(prices["ticker"], prices["close"], strict=True) if math.isfinite(c)
    }
    return dates[-1], closes


def _plan(
    rows: list[OrderRow],
    closes: dict[str, float],
    price_date: date,
    existing: dict[str, str | None],
    now: datetime,
    names: dict[str, str],
) -> tuple[list[Any], list[str]]:
    """The orders to publish, or every problem: unknown tickers, ids repeated in the input or already used."""
    from quantbridge.messages import SubmitOrder

    problems: list[str] = []
    first_line: dict[str, int | None] = {}
    orders = []
    ts = now.isoformat(timespec="microseconds")
    for row in rows:
        label = names.get("ticker", "ticker")
        if row.ticker not in closes:
            known = ", ".join(sorted(closes)[:12]) + (", ..." if len(closes) > 12 else "")
            problems.append(
                at_line(
                    row.line,
                    f"{label}={row.ticker!r} has no close in the lake on {price_date} "
                    f"(the latest prices): expected one of {known}",
                )
            )
            continue
        order_id = row.order_id or new_order_id(now)
        id_label = names.get("id", "id")
        if order_id in first_line:
            where = "an earlier order" if first_line[order_id] is None else f"line {first_line[order_id]}"
            problems.append(at_line(row.line, f"{id_label}={order_id!r} repeats the id of {where}"))
            continue
        first_line[order_id] = row.line
        if existing.get(order_id) is not None:
            state = _state_name(existing[order_id])
            problems.append(
                at_line(
                    row.line,
                    f"{id_label}={order_id!r} is already used: the order has a state "
                    f"in orders:state ({state}); ids are never reused",
                )
            )
            continue
        orders.append(
            (
                row,
                SubmitOrder(
                    order_id=order_id,
                    ts=ts,
                    strategy=STRATEGY,
                    ticker=row.ticker,
                    side=row.side,
                    quantity=row.quantity,
                    reference_price=closes[row.ticker],
                    limit_price=row.limit_price,
                ),
            )
        )
    return orders, problems


def _by_line(problems: list[str]) -> list[str]:
    """Problems ordered by their file line (stable: a line's problems keep their order)."""

    def line(problem: str) -> int:
        match = re.match(r"line (\d+): ", problem)
        return int(match.group(1)) if match else 0

    return sorted(problems, key=line)


def _state_name(raw: str | None) -> str:
    try:
        return str(json.loads(raw or "{}").get("state", "unknown"))
    except (ValueError, AttributeError):
        return "unreadable"


def publish(
    client: Any,
    schema: Any,
    planned: list[Any],
    *,
    by: str,
    source: str,
    reason: str | None,
    ring: KeyRing | None = None,
) -> list[str]:
    """XADD every order with its ``order_submitted`` audit entry in one Lua call, guarded on each id having
    no state yet (a race with another submitter refuses the whole batch). Returns the audit entry ids.

    The batch is signed with the ``orders`` key ring (``ring``, default the one of the settings): each order
    carries its Merkle root and proof, and the root's signature lands in ``order_signatures`` in the same
    Lua call; each audit entry names the root (``sig_root``)."""
    from quantbridge.audit import AuditWriter, Effects, GuardFailed
    from quantbridge.signing import keyring, sign_orders

    if not planned:
        return []
    if ring is None:
        from quantbridge.settings import load_settings

        ring = keyring(load_settings(), "orders")
    root, signature, signed = sign_orders(ring, [order.to_dict() for _, order in planned])
    state_key, stream = schema.key("order_state"), schema.key("orders")
    entries, guards, xadds = [], [], []
    for (row, order), fields in zip(planned, signed, strict=True):
        payload: dict[str, Any] = {"by": by, "source": source, "order": order.to_dict(), "sig_root": root}
        if row.line is not None:
            payload["line"] = row.line
        if reason:
            payload["reason"] = reason
        entries.append(("order_submitted", order.order_id, payload))
        guards.append((state_key, order.order_id, None))
        xadds.append((stream, tuple(fields.items())))
    try:
        effects = Effects(
            guards=tuple(guards),
            hset=((schema.key("order_signatures"), root, signature),),
            xadd=tuple(xadds),
        )
        written, _ = AuditWriter(client, schema).commit(entries, effects)
    except GuardFailed as exc:
        raise InputError(
            "id",
            exc.field,
            "an id without a state in orders:state",
            "another process used it meanwhile; nothing was submitted",
        ) from None
    return [entry_id for entry_id, _ in written]


def _reason(args: argparse.Namespace, *, required: bool) -> str | None:
    reason = (args.reason or "").strip()
    if not reason:
        if required:
            raise InputError(
                "--reason", args.reason, "a non-empty reason (the audit trail records who and why)"
            )
        return None
    if len(reason) > MAX_REASON_CHARS or any(ord(c) < 32 and c not in "\t" for c in reason):
        raise InputError("--reason", reason[:80], f"one line of at most {MAX_REASON_CHARS} characters")
    return reason


def _connect(settings: Settings) -> tuple[Any, Any]:
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    return connect(settings, verify=True), RedisSchema(settings.redis_prefix)


# --- commands -----------------------------------------------------------------------------------------------


def cmd_kill_switch(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Set, clear or show the kill switch; set and clear are audited in the same Lua call as the change."""
    from quantbridge import kill_switch

    reason = _reason(args, required=args.action != "status")
    by = operator_name()
    client, schema = _connect(settings)
    try:
        before = kill_switch.read(client, schema)
        if args.action == "on":
            changed = kill_switch.engage(client, schema, by=by, reason=str(reason))
        elif args.action == "off":
            changed = kill_switch.release(client, schema, by=by, reason=str(reason))
        else:
            changed = False
        after = kill_switch.read(client, schema)
    finally:
        client.close()
    out: dict[str, Any] = {"action": args.action, "active": after is not None, "switch": after}
    if args.action != "status":
        out.update(changed=changed, by=by, reason=reason)
        if not changed:
            out["note"] = (
                "the switch was already off"
                if args.action == "off" and before is None
                else "the switch was already set by you; nothing written"
                if args.action == "on"
                else "the switch changed while clearing it; nothing written: look again"
            )
    return out, 0


def cmd_order_submit(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Validate every order (file rows by line), price it at the lake's latest close, publish all or none
    (one signed batch: :func:`quantbridge.signing.sign_orders` with the ``orders`` key ring)."""
    from quantbridge.signing import keyring

    reason = _reason(args, required=False)
    single = {
        "ticker": args.ticker,
        "side": args.side,
        "quantity": args.quantity,
        "limit_price": args.limit_price,
        "id": args.id,
    }
    names = {
        "ticker": "--ticker",
        "side": "--side",
        "quantity": "--quantity",
        "limit_price": "--limit-price",
        "id": "--id",
    }
    if args.file:
        given = [k for k, v in single.items() if v is not None]
        if given:
            raise InputError(
                names[given[0]], single[given[0]], "no order flags with --file (the file holds the orders)"
            )
        path = Path(args.file)
        rows, problems = parse_order_file(path)
        source, names = f"file:{path.name}", {}
    else:
        row, problems = parse_order(single, None, names)
        rows, source = ([row] if row else []), "cli"
    source_name = args.file or "order"
    try:
        price_date, closes = latest_closes(settings)
        client, schema = _connect(settings)
    except (InputError, ServiceError) as exc:
        if problems:  # refused anyway: list the rows' problems, and what could not be checked
            raise OrdersRefused(source_name, problems + [f"tickers and ids not checked: {exc}"]) from None
        raise
    now = datetime.now(UTC)
    try:
        ids = [r.order_id for r in rows if r.order_id is not None]
        states = client.hmget(schema.key("order_state"), ids) if ids else []
        planned, found = _plan(rows, closes, price_date, dict(zip(ids, states, strict=True)), now, names)
        if problems or found:
            raise OrdersRefused(source_name, _by_line(problems + found))
        by = operator_name()
        ring = keyring(settings, "orders")
        audit_ids = publish(client, schema, planned, by=by, source=source, reason=reason, ring=ring)
    finally:
        client.close()
    orders = [
        {
            "order_id": o.order_id,
            "ticker": o.ticker,
            "side": o.side,
            "quantity": o.quantity,
            "limit_price": o.limit_price,
            "reference_price": o.reference_price,
        }
        for _, o in planned
    ]
    return {
        "submitted": len(orders),
        "by": by,
        "source": source,
        "reason": reason,
        "prices_as_of": price_date.isoformat(),
        "audit_entries": len(audit_ids),
        "orders": orders,
    }, 0


def _summary(order_id: str, raw: str | None) -> dict[str, Any]:
    try:
        state = json.loads(raw or "")
    except ValueError:
        state = None
    if not isinstance(state, dict):
        return {"order_id": order_id, "state": "UNREADABLE", "raw": (raw or "")[:200]}
    return {"order_id": order_id, **state}


def cmd_order_status(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """One order's state (exit 1 when it has none yet) or every order's, from ``orders:state``."""
    if bool(args.order_id) == bool(args.all):
        raise InputError("ID", args.order_id, "one order id, or --all (not both)")
    client, schema = _connect(settings)
    key = None
    try:
        key = schema.key("order_state")
        if args.all:
            rows = [_summary(str(k), v) for k, v in sorted(client.hscan_iter(key))]
        else:
            raw = client.hget(key, args.order_id)
            if raw is None:
                raise NoDataError(
                    f"order {args.order_id!r} has no state in {key}: the worker has not taken "
                    "it yet, or no order has that id"
                )
            rows = [_summary(args.order_id, raw)]
    finally:
        client.close()
    out = {"orders": rows, "count": len(rows)}
    if args.json:
        return out, 0
    print_status_table(rows)
    return {}, 0  # the table is the human output


def print_status_table(rows: list[dict[str, Any]], stream: Any = None) -> None:
    """id, state, filled, the state history and, per state, the rejection reasons or the children."""
    stream = stream or sys.stdout
    if not rows:
        print("no orders in orders:state yet", file=stream)
        return
    width = max(10, *(len(r["order_id"]) for r in rows))
    print(f"{'order id':<{width}}  {'state':<16}{'filled':>12}  history / detail", file=stream)
    for r in rows:
        history = " > ".join(map(str, r.get("history") or []))
        if r.get("reasons"):
            detail = "reasons: " + "; ".join(map(str, r["reasons"]))
        elif r.get("children"):
            detail = f"{len(r['children'])} child order(s): " + ", ".join(
                str(c.get("venue", "?")) for c in r["children"] if isinstance(c, dict)
            )
        else:
            detail = str(r.get("raw", ""))
        filled = r.get("filled")
        filled_text = f"{float(filled):,.0f}" if isinstance(filled, (int, float)) else "-"
        print(
            f"{r['order_id']:<{width}}  {str(r.get('state')):<16}{filled_text:>12}  {history}"
            + (f"  [{detail}]" if detail else ""),
            file=stream,
        )


def cmd_order(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    return {"submit": cmd_order_submit, "status": cmd_order_status}[args.order_action](args, settings)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``qb kill-switch`` and ``qb order`` on the subcommand parsers of ``qb``."""
    p = sub.add_parser(
        "kill-switch", parents=[common], help="set, clear or show the kill switch (audited: who, why)"
    )
    p.add_argument("action", choices=["on", "off", "status"])
    p.add_argument("--reason", default=None, help="why (required for on and off; kept in the audit trail)")
    p.set_defaults(func=cmd_kill_switch)

    p = sub.add_parser(
        "order", parents=[common], help="submit operator orders (audited) or show order states"
    )
    actions = p.add_subparsers(dest="order_action", required=True)
    s = actions.add_parser("submit", parents=[common], help="one order from the flags, or a .csv/.jsonl file")
    s.add_argument("--ticker", default=None)
    s.add_argument("--side", default=None, help="BUY or SELL")
    s.add_argument("--quantity", default=None, help="shares, a positive number")
    s.add_argument(
        "--limit-price",
        dest="limit_price",
        default=None,
        help="worst price accepted (optional; limits and fills use the worker's own mark)",
    )
    s.add_argument("--id", default=None, help="order id (default op:<UTC time>:<random>); never reused")
    s.add_argument(
        "--file",
        default=None,
        help="CSV (header ticker,side,quantity[,limit_price][,id]) or "
        "JSONL (one object per line, same keys): all orders or none",
    )
    s.add_argument("--reason", default=None, help="why (kept in each order's audit entry)")
    s.set_defaults(func=cmd_order)
    s = actions.add_parser("status", parents=[common], help="state of one order, or of all (orders:state)")
    s.add_argument("order_id", nargs="?", default=None, metavar="ID")
    s.add_argument("--all", action="store_true", help="every order with a state")
    s.set_defaults(func=cmd_order)
