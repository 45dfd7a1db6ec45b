"""Execution lane: pre-trade policies (Rego), the tamper-evident audit chain; the worker, venues, router,
Kalman slippage and reconciliation arrive with the rest of issue 7."""
