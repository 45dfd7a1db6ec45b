"""The dashboard app over HTTP without the stack: mounted as the api-server mounts plugin apps, tokens
validated by Airflow's real SimpleAuthManager, data from a real redis-server (fills by the real worker)."""

from __future__ import annotations

import json
import threading

import pytest

from execution.worker import ExecutionWorker
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema

SCHEMA = RedisSchema("qb")


@pytest.fixture(scope="module")
def auth_manager(airflow_db):
    """Airflow's configured auth manager (SimpleAuthManager); token checks read revoked tokens from the DB."""
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture
def tokens(auth_manager):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    admin = SimpleAuthManagerUser(username="admin", role="admin")
    forged = JWTGenerator(secret_key="not-the-servers-secret", valid_for=600, audience=auth_manager._get_jwt_audience())
    return {
        "admin": auth_manager.generate_jwt(admin),
        "no_role": auth_manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None)),
        "expired": auth_manager.generate_jwt(admin, expiration_time_in_seconds=-60),
        "forged": forged.generate(auth_manager.serialize_user(admin)),
        "garbage": "not.a.jwt",
    }


@pytest.fixture
def client(settings, auth_manager):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from quantbridge_airflow.dashboard import URL_PREFIX, create_app

    root = FastAPI()
    root.mount(URL_PREFIX, create_app(settings_provider=lambda: settings))  # as airflow.api_fastapi.app.init_plugins
    with TestClient(root, base_url="http://127.0.0.1:8080", follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def state(redis_client, settings):
    """Figures as the sensor writes them, an operator's kill switch, two orders through the real worker,
    and a nightly report in the lake."""
    figures = {"var": "23456.789", "cvar": "30111.5", "limit": "50000.0", "model": "filtered_historical",
               "backend": "numpy", "updated_at": "2026-01-05T14:30:00+00:00", "positions": "2"}
    redis_client.hset(SCHEMA.key("risk_current"), mapping=figures)
    redis_client.xadd(SCHEMA.key("risk_history"), figures)
    redis_client.xadd(SCHEMA.key("risk_history"), {**figures, "var": "24000.0"})
    worker = ExecutionWorker(redis_client, SCHEMA, "w1", ["AAPL", "MSFT"])
    for order_id, ticker, qty in (("o1", "AAPL", 100.0), ("o2", "MSFT", 5000.0)):
        order = SubmitOrder(order_id=order_id, ts="2026-01-05T14:30:00+00:00", strategy="test", ticker=ticker,
                            side="BUY", quantity=qty, reference_price=150.0)
        redis_client.xadd(SCHEMA.key("orders"), order.to_dict())
    assert worker.run(threading.Event(), block_ms=50, max_orders=2) == 2
    redis_client.set(SCHEMA.key("kill_switch"), json.dumps({"reason": "MANUAL_HALT", "by": "operator"}))
    folder = Lake(settings.lake_root).partition("reports", "date", "2020-12-31")
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<h1>nightly 2020-12-31</h1>")
    (settings.lake_root / "secret.txt").write_text("outside reports/")
    return {"venues": {f["venue"] for _, f in redis_client.xrange(SCHEMA.key("fills"))}}


def test_dashboard_when_anonymous_then_page_redirects_to_login_and_data_refused(client, state):
    page = client.get("/quantbridge/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/auth/login?next=")
    assert "quantbridge" in page.headers["location"]
    for path in ("/quantbridge/api/snapshot", "/quantbridge/panel"):
        reply = client.get(path)
        assert reply.status_code == 401 and "23456" not in reply.text
    assert client.get("/quantbridge/reports/date=2020-12-31/report.html").status_code == 303


@pytest.mark.parametrize("kind, code", [("forged", 403), ("garbage", 403), ("expired", 401), ("no_role", 403)])
def test_dashboard_when_token_bad_or_user_not_allowed_then_refused(client, state, tokens, kind, code):
    bearer = {"Authorization": f"Bearer {tokens[kind]}"}
    assert client.get("/quantbridge/api/snapshot", headers=bearer).status_code == code
    assert client.get("/quantbridge/api/snapshot", cookies={"_token": tokens[kind]}).status_code == code
    assert client.get("/quantbridge/", cookies={"_token": tokens[kind]}).status_code == 303  # back to the login


def test_dashboard_when_bearer_token_then_snapshot_json_from_redis(client, state, tokens):
    reply = client.get("/quantbridge/api/snapshot", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert reply.status_code == 200
    snap = reply.json()
    assert snap["risk"]["var"] == 23456.789 and [h["var"] for h in snap["history"]] == [23456.789, 24000.0]
    assert snap["kill_switch"] == {"active": True, "reason": {"reason": "MANUAL_HALT", "by": "operator"}}
    assert {c["venue"] for c in snap["venue_costs"]} == state["venues"]
    assert snap["report"]["path"] == "date=2020-12-31/report.html"


def test_dashboard_when_cookie_login_then_page_shows_figures_switch_fills_and_report_link(client, state, tokens):
    client.cookies.set("_token", tokens["admin"])
    page = client.get("/quantbridge/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    body = page.text
    assert 'id="var" data-value="23456.789">23,456.79<' in body
    assert '<span id="kill-switch" class="badge on">ACTIVE</span>' in body and "MANUAL_HALT" in body
    assert all(f'<span class="venue">{v}</span>' in body for v in state["venues"])
    assert 'href="reports/date=2020-12-31/report.html"' in body and 'id="user">admin<' in body
    assert "<svg" in body  # the history line
    panel = client.get("/quantbridge/panel")
    assert panel.status_code == 200 and 'id="var"' in panel.text and "<html" not in panel.text


def test_dashboard_reports_when_logged_in_then_file_served_and_traversal_refused(client, state, tokens):
    client.cookies.set("_token", tokens["admin"])
    report = client.get("/quantbridge/reports/date=2020-12-31/report.html")
    assert report.status_code == 200 and report.text == "<h1>nightly 2020-12-31</h1>"
    for path in ("/quantbridge/reports/..%2Fsecret.txt", "/quantbridge/reports/date=2020-12-31/..%2F..%2Fsecret.txt",
                 "/quantbridge/reports/%2Fetc%2Fpasswd", "/quantbridge/reports/date=2020-12-31/missing.html"):
        reply = client.get(path)
        assert reply.status_code == 404 and "outside reports" not in reply.text


def test_dashboard_when_redis_down_then_503_naming_redis(settings, tokens, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from quantbridge.settings import load_settings
    from quantbridge_airflow.dashboard import create_app

    down = load_settings({"lake_root": settings.lake_root, "redis_url": "redis://127.0.0.1:1/0"})
    root = FastAPI()
    root.mount("/quantbridge", create_app(settings_provider=lambda: down))
    reply = TestClient(root).get("/quantbridge/api/snapshot", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert reply.status_code == 503 and "redis://127.0.0.1:1/0" in reply.json()["detail"]
