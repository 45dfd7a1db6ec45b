"""Execution: the worker (pure decisions and its Redis adapters), pre-trade policies (Rego), the router,
simulated venues, Kalman slippage, venue costs and reconciliation (docs/execution.md)."""
