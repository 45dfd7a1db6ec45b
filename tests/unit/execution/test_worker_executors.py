"""The worker takes another market's venues (the replay's) only when every routed venue has one."""

from __future__ import annotations

import pytest

from execution.venues import DEFAULT_VENUES, SimulatedVenue
from execution.worker import ExecutionWorker
from quantbridge.errors import InputError
from quantbridge.redis_schema import RedisSchema


def test_worker_when_an_executor_is_missing_then_error_names_the_venue():
    partial = {v.name: SimulatedVenue(v) for v in DEFAULT_VENUES[:2]}
    with pytest.raises(InputError, match=DEFAULT_VENUES[2].name):
        ExecutionWorker(None, RedisSchema("qb"), "w", ["AAPL"], executors=partial)
