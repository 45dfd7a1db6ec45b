"""The nightly report (:mod:`reporting.nightly`, one HTML page with matplotlib pictures per date in the lake,
``reports/date=D/``) and the dashboard's data (:mod:`reporting.snapshot`)."""

from reporting.nightly import RedisSnapshot, build_nightly_report, read_redis_snapshot

__all__ = ["RedisSnapshot", "build_nightly_report", "read_redis_snapshot"]
