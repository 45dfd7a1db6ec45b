"""``qb replay``: the bridge carried through real history day by day, through its own components.

:mod:`app.replay.loop` runs the days (ingest, the session's execution, VaR, reconciliation, stress,
retraining, rebalance); :mod:`app.replay.server` keeps the run's own redis-server;
:mod:`app.replay.checkpoint` makes a killed run resume where it stopped; :mod:`app.replay.results` turns
what was recorded into the TCA, the KPIs and the tear sheet.
"""
