"""Assets that chain the DAGs (an ingest publishes prices; later DAGs are scheduled on them)."""

from __future__ import annotations

from airflow.sdk import Asset

PRICES = Asset(name="lake_prices", uri="quantbridge://lake/prices")
REFERENCE = Asset(name="lake_reference", uri="quantbridge://lake/reference")
STRESS_LEDGER = Asset(name="stress_ledger", uri="quantbridge://lake/stress")
SYNTHETIC = Asset(name="lake_synthetic", uri="quantbridge://lake/synthetic")
