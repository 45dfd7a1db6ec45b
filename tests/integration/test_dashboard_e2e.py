"""The risk dashboard end to end in the real stack: `qb airflow start` (api-server, scheduler, dag-processor,
triggerer), real state (Q1 2020 ingested through Spark and the gates, `market_data_ingest` triggered over REST
for the next day with every Param as the UI's form sends them, orders filled by the execution worker, the VaR
sensor's refreshes, the stress ledger), then Debian's headless Chromium logs in through Airflow's login form
and reads the dashboard.
A second test drives the kill switch's controls in the same stack with real tokens from the api-server's
``POST /auth/token`` for an Admin, an Op and a Viewer (only the first two may change it; a cross-site form
POST riding on the cookie is refused), then in the browser the Op sets and clears it from the page, each
change audited under their name.

Skipped only where chromium or chromedriver is missing (`make system` installs them). A screenshot goes
to the test's tmp dir and, when ``DASHBOARD_SCREENSHOT`` is set, to that path too (how docs/dashboard.png
is made; not QB_SCREENSHOT: settings refuse unknown QB_* variables).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.cli.main import main
from app.services import AIRFLOW_COMPONENTS, read_pid
from quantbridge import kill_switch
from quantbridge.audit import verify
from quantbridge.lake import Lake
from quantbridge.messages import SubmitOrder
from quantbridge.redis_schema import RedisSchema
from reporting.snapshot import risk_snapshot
from tests.conftest import _free_port

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCHEMA = RedisSchema("qb")
LAKE_END, DAY = date(2020, 3, 31), date(2020, 4, 1)  # ingested in the test, then by the DAG over REST
BOOK = {"AAPL": 600, "MSFT": 900, "JPM": 1200, "XOM": 2500, "JNJ": 800, "WMT": 1000}  # shares
# Users of the stack (SimpleAuthManager name:role); passwords are generated into the stack's password file.
USERS = "admin:admin,olga:op,vera:viewer"
# Every Param of market_data_ingest, as the trigger form sends them.
INGEST_CONF = {"date": DAY.isoformat(), "source": ""}


def _request(url: str, token: str | None = None, body: dict | None = None, method: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        # 60 s: unpausing lets the scheduler start the latest interval's run, whose task can hold SQLite's
        # write lock for seconds on a loaded machine while the trigger waits for it (seen: 12.7 s).
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, {}


def _raw_get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request (GET unless told) without following redirects."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(
            method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {}
        )
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


@pytest.fixture
def browser_binaries():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.skip(
            f"headless Chromium is not installed ({', '.join(missing)} missing): "
            "`make system` installs Debian's chromium and chromium-driver"
        )


@pytest.fixture
def stack(browser_binaries, tmp_path, monkeypatch, settings, redis_client, capsys):
    """The real stack on a free port, stopped by pid afterwards (as
    tests/integration/test_airflow_stack.py)."""
    port = _free_port()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW__API__PORT", str(port))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("AIRFLOW__API_AUTH__JWT_SECRET", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__UNIT_TEST_MODE", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    t0 = time.monotonic()
    assert main(["airflow", "start", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    info["start_seconds"] = time.monotonic() - t0
    yield info
    assert main(["airflow", "stop", "--json", "--quiet"]) == 0
    stopped = json.loads(capsys.readouterr().out)["stopped"]
    assert sorted(stopped) == sorted(AIRFLOW_COMPONENTS)
    assert all(read_pid(tmp_path / "airflow" / "pids" / f"{c}.pid") is None for c in AIRFLOW_COMPONENTS)


def _ingest_quarter(settings, spark) -> None:
    """Q1 2020 through Spark and the quality gates, and the reference tables."""
    from marketdata.feed import SkfolioFeed
    from marketdata.ingest import ingest_range
    from marketdata.reference import load_reference_tables

    lake = Lake(settings.lake_root)
    ingest_range(settings, SkfolioFeed(), date(2020, 1, 2), LAKE_END, spark=spark)
    load_reference_tables(lake)


def _trade_and_measure(settings, redis_client) -> list[dict]:
    """The book bought order by order through the execution worker (marks: the lake's closes), a VaR-sensor
    refresh (configured limit) before the first order and after each fill, then the stress ledger of DAY
    written by the functions the nightly_stress tasks call (partition + stream). Returns the refreshes after
    each fill."""
    from execution.worker import ExecutionWorker, lake_marks
    from quantbridge.positions import read_positions
    from risk.ledger import publish_stream, write_partition
    from risk.sensor import SensorConfig, VarSensor
    from risk.stress_night import load_inputs, run_stress

    lake = Lake(settings.lake_root)
    last = lake.read_close_matrix(end=LAKE_END).ffill().iloc[-1]
    worker = ExecutionWorker(redis_client, SCHEMA, "e2e-worker", list(last.index), marks=lake_marks(lake))
    sensor = VarSensor(
        SensorConfig.from_settings(settings, window=60, scope="equities"), lake, SCHEMA, lambda: redis_client
    )
    sensor.refresh(redis_client)  # figures and heartbeat first: without them the worker fails closed
    refreshes: list[dict] = []
    for i, (ticker, shares) in enumerate(BOOK.items()):
        order = SubmitOrder(
            order_id=f"e2e-{i}",
            ts=f"{DAY.isoformat()}T14:3{i}:00+00:00",
            strategy="e2e",
            ticker=ticker,
            side="BUY",
            quantity=float(shares),
            reference_price=float(last[ticker]),
        )
        redis_client.xadd(SCHEMA.key("orders"), order.to_dict())
        assert worker.run(threading.Event(), block_ms=50, max_orders=1) == 1
        refreshes.append(sensor.refresh(redis_client))
    frame = run_stress(
        load_inputs(lake, DAY, read_positions(redis_client, SCHEMA)), paths=2000, seed=settings.seed
    )
    write_partition(lake, DAY, frame)
    publish_stream(redis_client, SCHEMA, DAY, frame)
    return refreshes


def _wait_for_dag(base: str, token: str, dag_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the dag-processor parses the folder
        status, dags = _request(base + "/api/v2/dags", token)
        if status == 200 and dag_id in [d["dag_id"] for d in dags["dags"]]:
            return
        time.sleep(1)
    pytest.fail(f"{dag_id} never appeared in the API")


def _trigger(base: str, token: str, dag_id: str, logical_date: str, conf: dict) -> str:
    """Unpause and trigger as the UI's form does; returns the run's URL."""
    assert _request(f"{base}/api/v2/dags/{dag_id}", token, {"is_paused": False}, "PATCH")[0] == 200
    status, run = _request(
        f"{base}/api/v2/dags/{dag_id}/dagRuns", token, {"logical_date": logical_date, "conf": conf}
    )
    assert status == 200, run
    return f"{base}/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"


def _wait_for_run(url: str, token: str) -> None:
    deadline, state = time.monotonic() + 240, None
    while time.monotonic() < deadline and state not in {"success", "failed"}:
        time.sleep(2)
        state = _request(url, token)[1].get("state")
    if state != "success":
        tis = _request(url + "/taskInstances", token)[1].get("task_instances", [])
        pytest.fail(f"{url} ended {state}: {[(t['task_id'], t['state']) for t in tis]}")


def _login(driver, url: str, username: str, password: str) -> None:
    """Through Airflow's login form, which sends the browser back to ``url``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(url)
    wait.until(
        ec.presence_of_element_located((By.NAME, "username")), f"no login form at {driver.current_url}"
    ).send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]")),
        "the login form's submit button stayed disabled",
    ).click()
    wait.until(ec.url_to_be(url), f"login did not return to {url}")


def _switch_with_real_tokens(base: str, passwords: dict[str, str], redis_client) -> list[str]:
    """The kill switch over REST with tokens from the api-server: Viewer refused, a cross-site form POST with
    only the session cookie refused, Op sets, Admin clears. Returns the ``by`` of each audited change."""
    tokens = {}
    for user in ("admin", "olga", "vera"):
        status, token = _request(base + "/auth/token", body={"username": user, "password": passwords[user]})
        assert status == 201, (user, status)
        tokens[user] = token["access_token"]
    url = base + "/quantbridge/api/kill-switch"
    before = redis_client.get(SCHEMA.key("kill_switch"))
    assert _request(url, tokens["vera"], {"action": "off", "reason": "viewer tries"})[0] == 403
    assert _request(url, tokens["vera"], {"action": "on", "reason": "viewer tries"})[0] == 403
    cross_site = {
        "Cookie": f"_token={tokens['admin']}",
        "Origin": "https://evil.example",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert _raw_get(url, cross_site, "POST", b"action=off&reason=csrf")[0] == 403
    assert redis_client.get(SCHEMA.key("kill_switch")) == before  # none of the three changed it
    status, on = _request(url, tokens["olga"], {"action": "on", "reason": "e2e: op halts"})
    assert status == 200 and on["changed"] and on["switch"]["by"] == "operator:olga"
    status, off = _request(url, tokens["admin"], {"action": "off", "reason": "e2e: admin resumes"})
    assert status == 200 and off["changed"] and not off["active"]
    return ["operator:olga", "operator:admin"]


def _text_or_none(driver, element_id: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _switch_in_browser(driver, dashboard: str, password: str) -> None:
    """Log in as the Op, set the switch from the page with a reason, then clear it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    _login(driver, dashboard, "olga", password)
    wait = WebDriverWait(driver, 30)
    for action, reason, shown in (
        ("on", "e2e: halt from the page", "ACTIVE"),
        ("off", "e2e: resume from the page", "OFF"),
    ):
        box = wait.until(ec.presence_of_element_located((By.ID, "kill-reason-input")), "no kill switch form")
        box.clear()
        box.send_keys(reason)
        driver.find_element(By.ID, f"kill-{action}").click()
        wait.until(
            ec.text_to_be_present_in_element((By.ID, "kill-result"), f"done: switch {shown}"),
            f"kill switch {action} from the page: {driver.find_element(By.ID, 'kill-result').text!r}",
        )
        # The panel is re-rendered after the POST: read it until it shows the new state (a read that lands
        # mid-render finds a stale element and is tried again).
        wait.until(
            lambda d, shown=shown: _text_or_none(d, "kill-switch") == shown,
            f"kill switch panel after {action}: {_text_or_none(driver, 'kill-switch')!r}",
        )
        if action == "on":
            assert driver.find_element(By.ID, "kill-by").text == "operator:olga"
            assert driver.find_element(By.ID, "kill-reason").text == reason


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1900",
        "--disable-gpu",
        "--no-first-run",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_dashboard_e2e_when_logged_in_through_airflow_then_live_risk_stress_and_fills_shown(
    stack, settings, redis_client, spark, tmp_path, capsys
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    t0 = time.monotonic()
    phases: dict[str, float] = {"stack start": stack["start_seconds"]}

    def lap(name: str) -> None:
        phases[name] = time.monotonic() - t0 - sum(v for k, v in phases.items() if k != "stack start")

    base, dashboard = stack["url"], stack["url"] + "/quantbridge/"

    # Anonymous: the page sends the browser to Airflow's login, data endpoints refuse, a bad token is refused.
    status, headers, _ = _raw_get(dashboard)
    assert status == 303 and headers["location"].startswith("/auth/login?next=")
    assert _raw_get(base + "/quantbridge/api/snapshot")[0] == 401
    assert _raw_get(base + "/quantbridge/api/snapshot", {"Authorization": "Bearer not.a.jwt"})[0] == 403
    assert _raw_get(base + "/quantbridge/panel", {"Cookie": "_token=forged"})[0] == 403

    lap("anonymous checks")
    _ingest_quarter(settings, spark)
    lap("Spark ingest of Q1 2020")
    status, token = _request(base + "/auth/token", body={"username": "admin", "password": stack["password"]})
    assert status == 201
    _wait_for_dag(base, token["access_token"], "market_data_ingest")
    run_url = _trigger(
        base, token["access_token"], "market_data_ingest", f"{DAY.isoformat()}T22:00:00Z", INGEST_CONF
    )
    _wait_for_run(run_url, token["access_token"])
    lap("DAG parsed, triggered, run to success")
    assert Lake(settings.lake_root).price_dates()[-1] == DAY  # the DAG's partition
    refreshes = _trade_and_measure(settings, redis_client)
    figures = refreshes[-1]
    assert figures["as_of"] == DAY.isoformat()
    lap("orders, VaR refreshes, stress")
    snap = risk_snapshot(settings, redis_client)
    assert snap["stress"]["date"] == DAY.isoformat() and snap["stress"]["source"] == "lake"
    var_in_redis = float(redis_client.hget(SCHEMA.key("risk_current"), "var"))
    assert var_in_redis == pytest.approx(figures["var"])
    switch_on = bool(redis_client.exists(SCHEMA.key("kill_switch")))
    states = [json.loads(redis_client.hget(SCHEMA.key("order_state"), f"e2e-{i}")) for i in range(len(BOOK))]
    # Once a refresh sets the switch, the worker's policy blocks every further (risk-increasing) buy.
    for i, state in enumerate(states):
        blocked = i > 0 and refreshes[i - 1]["kill_switch"]
        assert (state["state"] == "REJECTED") == blocked, (i, state)
        assert not blocked or any(r.startswith("KILL_SWITCH_ACTIVE") for r in state["reasons"])
    assert switch_on == refreshes[-1]["kill_switch"]
    venues = {f["venue"] for _, f in redis_client.xrange(SCHEMA.key("fills"))}

    driver = _chrome()
    try:
        _login(driver, dashboard, "admin", stack["password"])  # anonymous: the login form, then back here
        wait = WebDriverWait(driver, 30)
        var_cell = wait.until(
            ec.presence_of_element_located((By.ID, "var")), "no VaR figure on the dashboard"
        )

        assert var_cell.text == f"{var_in_redis:,.2f}"
        assert float(var_cell.get_attribute("data-value")) == var_in_redis
        assert driver.find_element(By.ID, "kill-switch").text == ("ACTIVE" if switch_on else "OFF")
        shown_venues = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#fills .venue")}
        assert shown_venues and shown_venues <= venues
        assert {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#venue-costs .venue")} == venues
        stress_rows = driver.find_elements(By.CSS_SELECTOR, "#stress tbody tr")
        assert len(stress_rows) == len(snap["stress"]["scenarios"]) > 0
        assert DAY.isoformat() in driver.find_element(By.XPATH, "//h2[starts-with(., 'Stress')]").text
        assert driver.find_element(By.ID, "user").text == "admin"
        assert driver.find_element(By.ID, "as-of").text == DAY.isoformat()  # prices the DAG run published
        assert driver.find_elements(By.CSS_SELECTOR, "svg#history polyline")
        report = driver.find_element(By.ID, "report-link")
        if snap["report"]:
            assert report.get_attribute("href").endswith("/quantbridge/reports/" + snap["report"]["path"])
        else:
            assert report.text == "no nightly report in the lake yet"
        time.sleep(6)  # one refresh of the panel by the page's script, still logged in
        assert driver.find_element(By.ID, "status").text == "live"
        assert driver.find_element(By.ID, "var").text == f"{var_in_redis:,.2f}"

        shot = tmp_path / "dashboard.png"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 120, 3000))  # the window includes the browser's frame
        assert driver.save_screenshot(str(shot))
        if os.environ.get("DASHBOARD_SCREENSHOT"):
            target = Path(os.environ["DASHBOARD_SCREENSHOT"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target)
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))  # for the post-mortem, next to the stack's logs
        raise
    finally:
        driver.quit()
    lap("browser: login, dashboard, refresh, screenshot")
    with capsys.disabled():
        print("\n" + "; ".join(f"{k} {v:.1f} s" for k, v in phases.items()))


def test_dashboard_e2e_kill_switch_when_tokens_from_the_api_server_then_only_op_and_admin_change_it(
    stack, redis_client, tmp_path, capsys
):
    t0 = time.monotonic()
    base, dashboard = stack["url"], stack["url"] + "/quantbridge/"
    passwords = json.loads(Path(stack["password_file"]).read_text())
    kill_switch.engage(redis_client, SCHEMA, by="var_sensor", reason="VAR_LIMIT_BREACHED")  # after a breach

    changed_by = _switch_with_real_tokens(base, passwords, redis_client)
    rest_s = time.monotonic() - t0
    driver = _chrome()
    try:
        _switch_in_browser(driver, dashboard, passwords["olga"])
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        raise
    finally:
        driver.quit()

    entries = redis_client.xrange(SCHEMA.key("audit"))
    changes = [(e["kind"], e["ref"], json.loads(e["payload"])) for _, e in entries]
    assert [(kind, ref) for kind, ref, _ in changes] == [
        ("kill_switch_set", "var_sensor"),
        ("kill_switch_set", changed_by[0]),
        ("kill_switch_cleared", changed_by[1]),
        ("kill_switch_set", "operator:olga"),
        ("kill_switch_cleared", "operator:olga"),
    ]
    assert changes[1][2]["previous"]["by"] == "var_sensor"  # the Op took over the sensor's switch
    assert [p["reason"] for _, _, p in changes[3:]] == [
        "e2e: halt from the page",
        "e2e: resume from the page",
    ]
    assert redis_client.get(SCHEMA.key("kill_switch")) is None and verify(redis_client, SCHEMA)["ok"] is True
    with capsys.disabled():
        print(
            f"\nstack start {stack['start_seconds']:.1f} s; REST checks {rest_s:.1f} s; "
            f"browser set + clear {time.monotonic() - t0 - rest_s:.1f} s"
        )
