"""``qb audit``, ``qb worker`` and ``qb reconcile``: the execution side, its books and its audit chain."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from app.cli.common import echo
from quantbridge.errors import InputError, ServiceError
from quantbridge.settings import Settings


def cmd_audit(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Verify the audit hash chain against the signed lake checkpoints (exit 1 on a break), or sign a
    checkpoint of its head (count, hash, entry id, time) with the ``audit`` key ring (ML-DSA-65 + Ed25519) and
    append it; lines signed earlier with the Ed25519-only ``settings.audit_key_path`` still verify."""
    from quantbridge.audit import audit_keyring, checkpoint, load_public_key, verify
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client, schema, lake = connect(settings), RedisSchema(settings.redis_prefix), Lake(settings.lake_root)
    try:
        if args.action == "checkpoint":
            return checkpoint(client, schema, lake, audit_keyring(settings)), 0
        out = verify(
            client,
            schema,
            lake,
            public_key=load_public_key(settings.audit_key_path),
            ring=audit_keyring(settings, create=False),
        )
        return out, (0 if out["ok"] else 1)
    finally:
        client.close()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """The execution worker: consumes the orders stream until SIGTERM (or --duration/--max-orders)."""
    import signal
    import socket
    import threading

    from execution.worker import tradable_tickers, worker_from_lake
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect

    lake = Lake(settings.lake_root)
    if not tradable_tickers(lake):
        raise InputError(
            "lake prices",
            str(settings.lake_root),
            "published prices (the tradable universe): run `qb ingest`",
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.duration:
        threading.Timer(args.duration, stop.set).start()
    consumer = args.consumer or f"{socket.gethostname()}-{os.getpid()}"
    client = connect(settings, verify=True)  # a refused password is reported clearly, before anything else
    worker = worker_from_lake(client, settings, lake, consumer)
    port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
    server = None
    try:
        server = worker.metrics.serve(port) if port else None
    except OSError as exc:
        if args.metrics_port is not None:
            raise ServiceError(
                f"--metrics-port={port} cannot be served ({exc}): pick a free port or 0"
            ) from None
        # Workers run side by side in one group: only the first one on a host gets the default port.
        echo(args, f"note: metrics port {port} busy ({exc}); this worker runs without /metrics")
        port = 0
    echo(
        args,
        f"execution worker {consumer}: {len(worker.tickers)} tickers, policies from policies/"
        + (f", metrics on 127.0.0.1:{port}/metrics" if port else ""),
    )
    try:
        handled = worker.run(stop, max_orders=args.max_orders, reclaim_idle_ms=args.reclaim_idle_ms)
    finally:
        if server is not None:
            server.shutdown()
    return {"consumer": consumer, "handled": handled}, 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], int]:
    """Execution positions and P&L against lake marks; exit 1 when there is any break."""
    from execution.reconcile import reconcile
    from quantbridge.lake import Lake
    from quantbridge.redis_client import connect
    from quantbridge.redis_schema import RedisSchema

    client = connect(settings)
    try:
        out = reconcile(client, RedisSchema(settings.redis_prefix), Lake(settings.lake_root), args.date)
    finally:
        client.close()
    return out, (0 if out["ok"] else 1)


def add_parser(sub: Any, common: argparse.ArgumentParser, date_type: Callable[[str], Any]) -> None:
    """Register ``qb audit``, ``qb worker`` and ``qb reconcile``."""
    p = sub.add_parser(
        "audit",
        parents=[common],
        help="verify the audit chain against the signed checkpoints, or sign a checkpoint",
    )
    p.add_argument("action", choices=["verify", "checkpoint"])
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "worker", parents=[common], help="the execution worker (orders stream -> policies -> venues)"
    )
    p.add_argument("--consumer", default=None, help="consumer name in the group (default host-pid)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-orders", type=int, default=None)
    p.add_argument(
        "--reclaim-idle-ms",
        type=int,
        default=30_000,
        help="take over other consumers' pending orders idle this long (XAUTOCLAIM)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, help="0 disables /metrics (default QB_WORKER_METRICS_PORT)"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "reconcile", parents=[common], help="execution positions/P&L vs the risk engine's marks"
    )
    p.add_argument("--date", type=date_type("--date"), required=True)
    p.set_defaults(func=cmd_reconcile)
