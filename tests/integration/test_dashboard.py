"""The dashboard app over HTTP without the stack: mounted as the api-server mounts plugin apps, tokens
validated by Airflow's real SimpleAuthManager, data from a real redis-server (fills by the real worker).
The kill switch's controls: Op and Admin may set and clear it (audited under their name), User and Viewer
may not, and a cross-site POST riding on the session cookie is refused. The policy routes: any signed-in user
reads the active revision; only the compliance group (the approvers of policy_release) rolls back."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from execution.worker import ExecutionWorker
from quantbridge import kill_switch
from quantbridge.audit import verify
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema

SCHEMA = RedisSchema("qb")
ORIGIN = "http://127.0.0.1:8080"  # the TestClient's base URL: the dashboard's own origin


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
    forged = JWTGenerator(
        secret_key="not-the-servers-secret", valid_for=600, audience=auth_manager._get_jwt_audience()
    )

    def token(name: str, role: str) -> str:
        return auth_manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))

    return {
        "admin": auth_manager.generate_jwt(admin),
        "op": token("olga", "op"),
        "user": token("ulrich", "user"),
        "viewer": token("vera", "viewer"),
        "carol": token("carol", "user"),  # in the compliance group (see `released`)
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
    root.mount(
        URL_PREFIX, create_app(settings_provider=lambda: settings)
    )  # as airflow.api_fastapi.app.init_plugins
    with TestClient(root, base_url="http://127.0.0.1:8080", follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def state(redis_client, settings):
    """Figures as the sensor writes them, an operator's kill switch, two orders through the real worker,
    and a nightly report in the lake."""
    figures = {
        "var": "23456.789",
        "cvar": "30111.5",
        "limit": "50000.0",
        "model": "filtered_historical",
        "backend": "numpy",
        "updated_at": "2026-01-05T14:30:00+00:00",
        "positions": "2",
    }
    redis_client.hset(SCHEMA.key("risk_current"), mapping=figures)
    redis_client.xadd(SCHEMA.key("risk_history"), figures)
    redis_client.xadd(SCHEMA.key("risk_history"), {**figures, "var": "24000.0"})
    redis_client.set(SCHEMA.heartbeat("var_sensor"), figures["updated_at"])  # the sensor is alive
    # The worker's clock 30 s after the figures (fresh), its marks the prices the orders carry.
    worker = ExecutionWorker(
        redis_client,
        SCHEMA,
        "w1",
        ["AAPL", "MSFT"],
        marks={"AAPL": 150.0, "MSFT": 150.0},
        clock=lambda: datetime(2026, 1, 5, 14, 30, 30, tzinfo=UTC).timestamp(),
    )
    for order_id, ticker, qty in (("o1", "AAPL", 100.0), ("o2", "MSFT", 5000.0)):
        order = SubmitOrder(
            order_id=order_id,
            ts="2026-01-05T14:30:00+00:00",
            strategy="test",
            ticker=ticker,
            side="BUY",
            quantity=qty,
            reference_price=150.0,
        )
        redis_client.xadd(SCHEMA.key("orders"), order.to_dict())
    assert worker.run(threading.Event(), block_ms=50, max_orders=2) == 2
    redis_client.set(SCHEMA.key("kill_switch"), json.dumps({"reason": "MANUAL_HALT", "by": "operator"}))
    folder = Lake(settings.lake_root).partition("reports", "date", "2020-12-31")
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<h1>nightly 2020-12-31</h1>")
    (settings.lake_root / "secret.txt").write_text("outside reports/")
    venues = {f["venue"] for _, f in redis_client.xrange(SCHEMA.key("fills"))}
    assert venues, "the worker filled nothing: the page's fill and venue tables would be empty"
    return {"venues": venues}


def test_dashboard_when_anonymous_then_page_redirects_to_login_and_data_refused(client, state):
    page = client.get("/quantbridge/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/auth/login?next=")
    assert "quantbridge" in page.headers["location"]
    for path in ("/quantbridge/api/snapshot", "/quantbridge/panel"):
        reply = client.get(path)
        assert reply.status_code == 401 and "23456" not in reply.text
    assert client.get("/quantbridge/reports/date=2020-12-31/report.html").status_code == 303


@pytest.mark.parametrize(
    "kind, code", [("forged", 403), ("garbage", 403), ("expired", 401), ("no_role", 403)]
)
def test_dashboard_when_token_bad_or_user_not_allowed_then_refused(client, state, tokens, kind, code):
    bearer = {"Authorization": f"Bearer {tokens[kind]}"}
    assert client.get("/quantbridge/api/snapshot", headers=bearer).status_code == code
    assert client.get("/quantbridge/api/snapshot", cookies={"_token": tokens[kind]}).status_code == code
    assert (
        client.get("/quantbridge/", cookies={"_token": tokens[kind]}).status_code == 303
    )  # back to the login


def test_dashboard_when_bearer_token_then_snapshot_json_from_redis(client, state, tokens):
    reply = client.get("/quantbridge/api/snapshot", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert reply.status_code == 200
    snap = reply.json()
    assert snap["risk"]["var"] == 23456.789 and [h["var"] for h in snap["history"]] == [23456.789, 24000.0]
    assert snap["kill_switch"] == {"active": True, "reason": {"reason": "MANUAL_HALT", "by": "operator"}}
    assert {c["venue"] for c in snap["venue_costs"]} == state["venues"]
    assert snap["report"]["path"] == "date=2020-12-31/report.html"


def test_dashboard_when_cookie_login_then_page_shows_figures_switch_fills_and_report_link(
    client, state, tokens
):
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
    for path in (
        "/quantbridge/reports/..%2Fsecret.txt",
        "/quantbridge/reports/date=2020-12-31/..%2F..%2Fsecret.txt",
        "/quantbridge/reports/%2Fetc%2Fpasswd",
        "/quantbridge/reports/date=2020-12-31/missing.html",
    ):
        reply = client.get(path)
        assert reply.status_code == 404 and "outside reports" not in reply.text


def test_dashboard_when_redis_down_then_503_naming_redis(settings, tokens, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from quantbridge.settings import load_settings
    from quantbridge_airflow.dashboard import create_app

    down = load_settings({"lake_root": settings.lake_root, "redis_url": "redis://:s3cret@127.0.0.1:1/0"})
    root = FastAPI()
    root.mount("/quantbridge", create_app(settings_provider=lambda: down))
    bearer = {"Authorization": f"Bearer {tokens['admin']}"}
    snapshot = TestClient(root).get("/quantbridge/api/snapshot", headers=bearer)
    switch = TestClient(root).post(
        "/quantbridge/api/kill-switch", headers=bearer, json={"action": "on", "reason": "redis is down"}
    )
    for reply in (snapshot, switch):
        assert reply.status_code == 503
        assert "redis://:***@127.0.0.1:1/0" in reply.json()["detail"] and "s3cret" not in reply.text


def test_dashboard_when_settings_invalid_then_500_with_every_url_password_redacted(tokens):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from quantbridge.errors import ConfigError
    from quantbridge_airflow.dashboard import create_app

    def broken():
        raise ConfigError("redis_url", "redis://:s3cret@127.0.0.1:bad/0", "a port number")

    root = FastAPI()
    root.mount("/quantbridge", create_app(settings_provider=broken))
    reply = TestClient(root).get(
        "/quantbridge/api/snapshot", headers={"Authorization": f"Bearer {tokens['admin']}"}
    )
    assert reply.status_code == 500
    assert "redis://:***@127.0.0.1:bad/0" in reply.json()["detail"] and "s3cret" not in reply.text


# --- the kill switch's controls -----------------------------------------------------------------------------


def _switch(client, body, token=None, cookie=None, headers=None):
    """POST api/kill-switch with a bearer token, or with a cookie session and the given headers."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if cookie:
        client.cookies.set("_token", cookie)
    return client.post("/quantbridge/api/kill-switch", headers=sent, json=body)


def _audit(redis_client):
    entries = redis_client.xrange(SCHEMA.key("audit"))
    return [(e["kind"], e["ref"], json.loads(e["payload"])) for _, e in entries]


@pytest.mark.parametrize("role, name", [("admin", "admin"), ("op", "olga")])
def test_dashboard_kill_switch_when_op_or_admin_bearer_then_set_and_cleared_with_audit_naming_user(
    client, redis_client, tokens, role, name
):
    on = _switch(client, {"action": "on", "reason": "venue outage"}, token=tokens[role])
    record = kill_switch.read(redis_client, SCHEMA)
    off = _switch(client, {"action": "off", "reason": "venue back"}, token=tokens[role])

    assert on.status_code == 200 and on.json()["changed"] is True and on.json()["active"] is True
    assert record["by"] == f"operator:{name}" and record["reason"] == "venue outage" and record["at"]
    assert off.status_code == 200 and off.json() == {**off.json(), "changed": True, "active": False}
    assert kill_switch.read(redis_client, SCHEMA) is None
    (set_kind, set_ref, set_entry), (clear_kind, clear_ref, clear_entry) = _audit(redis_client)
    assert (set_kind, set_ref, set_entry["by"], set_entry["reason"]) == (
        "kill_switch_set",
        f"operator:{name}",
        f"operator:{name}",
        "venue outage",
    )
    assert (clear_kind, clear_ref, clear_entry["reason"]) == (
        "kill_switch_cleared",
        f"operator:{name}",
        "venue back",
    )
    assert verify(redis_client, SCHEMA)["ok"] is True


@pytest.mark.parametrize("role", ["viewer", "user"])
def test_dashboard_kill_switch_when_viewer_or_user_then_403_and_switch_unchanged(
    client, redis_client, tokens, role
):
    kill_switch.engage(redis_client, SCHEMA, by="operator:olga", reason="halt")
    before = redis_client.get(SCHEMA.key("kill_switch"))
    entries = redis_client.xlen(SCHEMA.key("audit"))

    off = _switch(client, {"action": "off", "reason": "let me trade"}, token=tokens[role])
    on = _switch(client, {"action": "on", "reason": "mine now"}, token=tokens[role])

    assert off.status_code == on.status_code == 403 and "Op or Admin" in off.json()["detail"]
    assert redis_client.get(SCHEMA.key("kill_switch")) == before
    assert redis_client.xlen(SCHEMA.key("audit")) == entries


def test_dashboard_kill_switch_when_cross_site_form_post_with_cookie_only_then_403_and_nothing_written(
    client, redis_client, tokens
):
    client.cookies.set("_token", tokens["admin"])
    forged = {"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}

    form = client.post("/quantbridge/api/kill-switch", headers=forged, content=b"action=on&reason=pwned")
    no_origin = client.post("/quantbridge/api/kill-switch", json={"action": "on", "reason": "pwned"})
    evil_referer = client.post(
        "/quantbridge/api/kill-switch",
        json={"action": "on", "reason": "pwned"},
        headers={"Referer": "https://evil.example/page"},
    )

    for reply in (form, no_origin, evil_referer):
        assert reply.status_code == 403 and "cross-site request refused" in reply.json()["detail"]
    assert redis_client.get(SCHEMA.key("kill_switch")) is None
    assert redis_client.xlen(SCHEMA.key("audit")) == 0


def test_dashboard_kill_switch_when_same_origin_cookie_without_right_csrf_token_then_403(
    client, redis_client, tokens
):
    viewer_csrf = client.get("/quantbridge/api/csrf", cookies={"_token": tokens["viewer"]}).json()["token"]
    client.cookies.clear()
    body = {"action": "on", "reason": "pwned"}

    missing = _switch(client, body, cookie=tokens["admin"], headers={"Origin": ORIGIN})
    other_session = _switch(
        client, body, cookie=tokens["admin"], headers={"Origin": ORIGIN, "X-CSRF-Token": viewer_csrf}
    )

    for reply in (missing, other_session):
        assert reply.status_code == 403 and "X-CSRF-Token" in reply.json()["detail"]
    assert redis_client.get(SCHEMA.key("kill_switch")) is None


def test_dashboard_kill_switch_when_page_session_same_origin_with_csrf_token_then_set_by_the_user(
    client, redis_client, tokens
):
    client.cookies.set("_token", tokens["op"])
    csrf = client.get("/quantbridge/api/csrf")
    token = csrf.json()["token"]

    on = client.post(
        "/quantbridge/api/kill-switch",
        json={"action": "on", "reason": "from the page"},
        headers={"Origin": ORIGIN, "X-CSRF-Token": token},
    )
    again = client.post(
        "/quantbridge/api/kill-switch",
        json={"action": "on", "reason": "twice"},
        headers={"Referer": f"{ORIGIN}/quantbridge/", "X-CSRF-Token": token},
    )

    assert csrf.status_code == 200 and csrf.headers["cache-control"] == "no-store" and len(token) == 64
    assert on.status_code == 200 and on.json()["changed"] is True
    assert again.status_code == 200 and again.json()["changed"] is False  # already set by olga: not rewritten
    assert kill_switch.read(redis_client, SCHEMA)["by"] == "operator:olga"
    assert [kind for kind, _, _ in _audit(redis_client)] == ["kill_switch_set"]


def test_dashboard_kill_switch_when_operator_takes_over_sensor_switch_then_owned_and_previous_audited(
    client, redis_client, tokens
):
    kill_switch.engage(redis_client, SCHEMA, by="var_sensor", reason="VAR_LIMIT_BREACHED")

    reply = _switch(client, {"action": "on", "reason": "hold until the review"}, token=tokens["op"])

    assert reply.status_code == 200 and reply.json()["switch"]["by"] == "operator:olga"
    kind, _, entry = _audit(redis_client)[-1]
    assert kind == "kill_switch_set" and entry["previous"]["by"] == "var_sensor"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action": "maybe", "reason": "x"}, "action='maybe'"),
        ({"action": "on"}, "reason=None"),
        ({"action": "on", "reason": "   "}, "reason='   '"),
        ({"action": "on", "reason": "two\nlines"}, "reason='two\\nlines'"),
        ({"action": "on", "reason": "x" * 1001}, "reason='xxxx"),
        (["on", "why"], "body"),
    ],
)
def test_dashboard_kill_switch_when_body_invalid_then_400_naming_the_field(
    client, redis_client, tokens, body, field
):
    reply = _switch(client, body, token=tokens["admin"])

    assert reply.status_code == 400 and reply.json()["detail"].startswith(field)
    assert redis_client.get(SCHEMA.key("kill_switch")) is None


def test_dashboard_kill_switch_when_body_not_json_then_400(client, redis_client, tokens):
    reply = client.post(
        "/quantbridge/api/kill-switch",
        content=b"{not json",
        headers={"Authorization": f"Bearer {tokens['op']}", "Content-Type": "application/json"},
    )

    assert reply.status_code == 400 and reply.json()["detail"].startswith("body: expected a JSON object")
    assert redis_client.get(SCHEMA.key("kill_switch")) is None


def test_dashboard_kill_switch_when_anonymous_or_bad_token_then_refused(client, redis_client, tokens):
    anonymous = client.post("/quantbridge/api/kill-switch", json={"action": "on", "reason": "x"})
    forged = _switch(client, {"action": "on", "reason": "x"}, token=tokens["forged"])

    assert anonymous.status_code == 401 and forged.status_code == 403
    assert redis_client.get(SCHEMA.key("kill_switch")) is None


@pytest.mark.parametrize(
    "role, controls", [("admin", True), ("op", True), ("user", False), ("viewer", False)]
)
def test_dashboard_page_when_switch_set_then_who_why_when_shown_and_controls_only_for_op_or_admin(
    client, redis_client, tokens, role, controls
):
    kill_switch.engage(redis_client, SCHEMA, by="operator:olga", reason="earnings <halt>")
    record = kill_switch.read(redis_client, SCHEMA)
    client.cookies.set("_token", tokens[role])

    body = client.get("/quantbridge/").text

    assert '<span id="kill-switch" class="badge on">ACTIVE</span>' in body
    assert '<small id="kill-reason">earnings &lt;halt&gt;</small>' in body
    assert f'<span id="kill-by">operator:olga</span> at <span id="kill-at">{record["at"]}</span>' in body
    assert ('id="kill-form"' in body) is controls and ('id="kill-not-allowed"' in body) is (not controls)


# --- the policy: status for everyone signed in, rollback for the compliance group ---------------------------


@pytest.fixture
def released(settings, redis_client, tmp_path, monkeypatch):
    """Two revisions released through four eyes (the project's policies, then a tighter notional limit), the
    second active; the compliance group is Carol and Alice (compliance) and Dave (risk)."""
    from execution.bundle import build, store, with_limits
    from execution.policy import POLICY_DIR
    from governance import release
    from quantbridge.lake import Lake
    from quantbridge.signing import keyring

    monkeypatch.setenv("QB_COMPLIANCE_APPROVERS", "carol,alice")
    monkeypatch.setenv("QB_RISK_APPROVERS", "dave")
    policy_settings = settings.replace(key_dir=tmp_path / "keys")
    ring, lake = keyring(policy_settings, "policy"), Lake(policy_settings.lake_root)
    approvals = [
        {"user": "carol", "at": "2026-01-05T10:00:00+00:00", "task": "approve_compliance"},
        {"user": "dave", "at": "2026-01-05T10:05:00+00:00", "task": "approve_risk"},
    ]
    first = build(POLICY_DIR, "alice", "the project's policies")
    second = with_limits(first, {"max_order_notional": 200_000}, "alice", "tighter notional")
    for bundle in (first, second):
        store(bundle, lake, ring)
        release.activate(redis_client, SCHEMA, lake, ring, bundle.revision, approvals, "airflow:test")
    unapproved = with_limits(first, {"max_order_notional": 1_000_000}, "alice", "never approved")
    store(unapproved, lake, ring)
    return {
        "settings": policy_settings,
        "first": first.revision,
        "second": second.revision,
        "unapproved": unapproved.revision,
    }


@pytest.fixture
def policy_client(released, auth_manager):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from quantbridge_airflow.dashboard import URL_PREFIX, create_app

    root = FastAPI()
    root.mount(URL_PREFIX, create_app(settings_provider=lambda: released["settings"]))
    with TestClient(root, base_url=ORIGIN, follow_redirects=False) as test_client:
        yield test_client


def _rollback(client, body, token=None, cookie=None, headers=None):
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if cookie:
        client.cookies.set("_token", cookie)
    return client.post("/quantbridge/api/policy/rollback", headers=sent, json=body)


def _active_revision(redis_client):
    return json.loads(redis_client.get(SCHEMA.key("policy_active")))["revision"]


@pytest.mark.parametrize("role, may", [("viewer", False), ("op", False), ("admin", False), ("carol", True)])
def test_dashboard_policy_status_when_signed_in_then_active_revision_and_whether_user_may_roll_back(
    policy_client, released, redis_client, tokens, role, may
):
    redis_client.hset(SCHEMA.key("policy_workers"), "w1", json.dumps({"revision": released["second"]}))

    reply = policy_client.get("/quantbridge/api/policy", headers={"Authorization": f"Bearer {tokens[role]}"})

    assert reply.status_code == 200
    body = reply.json()
    assert (
        body["active"]["revision"] == released["second"] and body["active"]["previous"] == released["first"]
    )
    assert sorted(body["active"]["approvers"]) == ["carol", "dave"]
    assert body["workers"] == {"w1": {"revision": released["second"]}} and body["in_sync"] is True
    assert body["may_roll_back"] is may


def test_dashboard_policy_status_when_anonymous_then_401(policy_client):
    assert policy_client.get("/quantbridge/api/policy").status_code == 401


@pytest.mark.parametrize("role", ["viewer", "op", "admin", "user"])
def test_dashboard_policy_rollback_when_not_in_compliance_group_then_403_and_active_unchanged(
    policy_client, released, redis_client, tokens, role
):
    reply = _rollback(policy_client, {"revision": released["first"], "reason": "back"}, token=tokens[role])

    assert reply.status_code == 403 and "compliance group" in reply.json()["detail"]
    assert _active_revision(redis_client) == released["second"]


def test_dashboard_policy_rollback_when_compliance_member_then_earlier_revision_active_and_audited(
    policy_client, released, redis_client, tokens
):
    reply = _rollback(
        policy_client, {"revision": released["first"], "reason": "  limit too tight  "}, token=tokens["carol"]
    )

    assert reply.status_code == 200
    record = reply.json()
    assert (record["revision"], record["action"], record["by"], record["reason"]) == (
        released["first"],
        "rolled_back",
        "compliance:carol",
        "limit too tight",
    )
    assert record["previous"] == released["second"] and _active_revision(redis_client) == released["first"]
    kind, ref, entry = _audit(redis_client)[-1]
    assert (kind, ref, entry["by"]) == ("policy_rolled_back", released["first"], "compliance:carol")
    assert verify(redis_client, SCHEMA)["ok"] is True


@pytest.mark.parametrize(
    "body, code, says",
    [
        ("unapproved", 409, "approvals.json"),
        ("second", 409, "already the active revision"),
        ("f" * 64, 409, "not stored"),
        ("abc", 400, "revision='abc' is invalid"),
        (None, 400, "reason"),
    ],
)
def test_dashboard_policy_rollback_when_revision_unapproved_active_unknown_or_body_bad_then_refused(
    policy_client, released, redis_client, tokens, body, code, says
):
    request = (
        {"revision": released["first"], "reason": ""}
        if body is None
        else {"revision": released.get(body, body), "reason": "try"}
    )

    reply = _rollback(policy_client, request, token=tokens["carol"])

    assert reply.status_code == code and says in reply.json()["detail"]
    assert _active_revision(redis_client) == released["second"]


def test_dashboard_policy_rollback_when_cross_site_cookie_then_403_and_with_csrf_token_then_done(
    policy_client, released, redis_client, tokens
):
    body = {"revision": released["first"], "reason": "from the page"}
    forged = _rollback(
        policy_client, body, cookie=tokens["carol"], headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403 and _active_revision(redis_client) == released["second"]

    csrf = policy_client.get("/quantbridge/api/csrf").json()["token"]
    done = _rollback(policy_client, body, headers={"Origin": ORIGIN, "X-CSRF-Token": csrf})

    assert done.status_code == 200 and _active_revision(redis_client) == released["first"]


def test_dashboard_policy_when_approvers_setting_invalid_then_500_naming_it(
    policy_client, tokens, monkeypatch
):
    monkeypatch.setenv("QB_COMPLIANCE_APPROVERS", " , ")

    reply = policy_client.get(
        "/quantbridge/api/policy", headers={"Authorization": f"Bearer {tokens['carol']}"}
    )

    assert reply.status_code == 500 and "compliance_approvers" in reply.json()["detail"]


def test_dashboard_policy_rollback_when_body_not_a_json_object_then_400(policy_client, released, tokens):
    bearer = {"Authorization": f"Bearer {tokens['carol']}"}
    for body in (b"revision=abc", b"[1, 2]"):
        reply = policy_client.post("/quantbridge/api/policy/rollback", headers=bearer, content=body)
        assert reply.status_code == 400 and reply.json()["detail"].startswith("body: expected a JSON object")


def test_dashboard_policy_when_redis_down_then_503_naming_redis(settings, tokens, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from quantbridge.settings import load_settings
    from quantbridge_airflow.dashboard import create_app

    monkeypatch.setenv("QB_COMPLIANCE_APPROVERS", "carol")
    down = load_settings({"lake_root": settings.lake_root, "redis_url": "redis://:s3cret@127.0.0.1:1/0"})
    root = FastAPI()
    root.mount("/quantbridge", create_app(settings_provider=lambda: down))
    bearer = {"Authorization": f"Bearer {tokens['carol']}"}
    reply = TestClient(root).get("/quantbridge/api/policy", headers=bearer)

    assert reply.status_code == 503
    assert "redis://:***@127.0.0.1:1/0" in reply.json()["detail"] and "s3cret" not in reply.text
