"""Market data: vendor feeds, quality gates (Great Expectations) and ingestion into the Parquet lake
(PySpark)."""
