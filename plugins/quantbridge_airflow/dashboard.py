"""The risk dashboard over HTTP: a FastAPI app the Airflow api-server mounts under ``/quantbridge``
(registered by ``plugins/quantbridge_plugin.py``). It only does HTTP; the data comes from
:func:`reporting.snapshot.risk_snapshot`.

Routes (every one needs an authenticated Airflow user, validated by Airflow's own auth manager from the
``Authorization: Bearer <jwt>`` header or the UI's ``_token`` cookie; a page request without a valid
login is redirected to the login page, a data request gets 401 (no token) or 403 (a bad token)):

``GET /``                 the page, rendered on the server; an inline script swaps in ``panel`` every 5 s
``GET /panel``            the page's body as an HTML fragment
``GET /api/snapshot``     the same data as JSON
``GET /reports/{path}``   a file under the lake's ``reports/`` (the nightly report), no path out of it
``GET /api/csrf``         the CSRF token of the caller's cookie session (read by the page's own script)
``POST /api/kill-switch`` set or clear the kill switch: JSON ``{"action": "on"|"off", "reason": "..."}``
``GET /api/policy``       the active policy revision and what every worker judges by (any signed-in user)
``POST /api/policy/rollback`` re-activate an approved revision: JSON ``{"revision": "...", "reason": "..."}``

**Who may set or clear the switch**: users the auth manager allows to edit Variables
(``is_authorized_variable(method="PUT")``), the same right as Connections, Pools and Variables. With
SimpleAuthManager that is the Op and Admin roles (roles are ordered viewer < user < op < admin); with the
FAB auth manager's default roles it is Op and Admin too (User and Viewer cannot edit Variables). Asking the
auth manager, not reading a role name, keeps custom roles and other auth managers working. Anyone else
gets 403 and the page shows them the switch without the controls. The change is written by
:mod:`quantbridge.kill_switch` as ``operator:<Airflow user name>``, with its audit entry in the same Lua call.

**Who may roll back the policy**: the compliance group, i.e. the users assigned to the two approvals of
``policy_release`` (``QB_COMPLIANCE_APPROVERS`` and ``QB_RISK_APPROVERS``, read from the api-server's
environment, never from the Airflow Variable that Op users may edit). SimpleAuthManager's four fixed roles
cannot express that group, so it is a list of user names, as Airflow's own HITL API checks assigned users
by name; anyone else, Admin included, gets 403. A rollback re-activates only a revision whose signature and
approvals verify (:func:`governance.release.rollback`), recorded as ``compliance:<Airflow user name>``.

**CSRF**: a state change must carry the bearer token in the ``Authorization`` header (a header another
site cannot make a browser send), or, with the UI's ``_token`` cookie, pass both a same-origin check (the
``Origin`` header, else ``Referer``, must be this server's origin) and an ``X-CSRF-Token`` header equal to
:func:`csrf_token` of that cookie (a keyed digest another site cannot compute: the cookie is HttpOnly and
the ``/api/csrf`` reply cannot be read across origins). A cross-site form POST riding on the cookie alone
gets 403. Every error body names Redis by its redacted URL (never a password).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from quantbridge.settings import Settings

log = logging.getLogger(__name__)

URL_PREFIX = "/quantbridge"
REFRESH_MS = 5_000
CSRF_HEADER = "X-CSRF-Token"
MAX_REASON_CHARS = 1_000
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://\S+")


def dashboard_settings() -> Settings:
    """Settings for the api-server: environment ``QB_*`` plus the ``quantbridge_settings`` Variable
    (read from the metadata DB, the api-server's own, not through the task SDK)."""
    from airflow.models.variable import Variable

    from quantbridge.settings import load_settings
    from quantbridge_airflow.config import SETTINGS_VARIABLE, _overrides

    return load_settings(_overrides(Variable.get(SETTINGS_VARIABLE, default_var=None)))


async def authenticated_user(request: Request) -> Any:
    """The Airflow user behind the request's bearer token (preferred) or ``_token`` cookie.

    Raises HTTPException 401 without a token or with an expired one, 403 for an invalid token or a user
    not allowed to see the Airflow website.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    user = await resolve_user_from_token(token)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"user {user.get_name()!r} may not view the website")
    return user


async def optional_user(request: Request) -> Any:
    """Like :func:`authenticated_user` but None instead of an error (pages redirect to the login)."""
    try:
        return await authenticated_user(request)
    except HTTPException:
        return None


def may_operate(user: Any) -> bool:
    """Whether ``user`` may set or clear the kill switch: Op or above (see the module docstring)."""
    from airflow.api_fastapi.app import get_auth_manager

    return bool(get_auth_manager().is_authorized_variable(method="PUT", user=user))


def may_roll_back(user: Any) -> bool:
    """Whether ``user`` belongs to the compliance group (see the module docstring)."""
    from quantbridge.errors import ConfigError
    from quantbridge_airflow.release_tasks import compliance_group

    try:
        return user.get_name() in compliance_group()
    except ConfigError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"quantbridge settings: {exc}") from exc


def allowed(request: Request, user: Any, permitted: bool, action: str, needs: str) -> None:
    """A state change's gate: the CSRF check, then 403 naming the user, the action and what it needs."""
    check_csrf(request)
    if not permitted:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"user {user.get_name()!r} may not {action}: that needs {needs}"
        )


def csrf_token(session_token: str) -> str:
    """The CSRF token bound to one cookie session: an HMAC of the session's JWT, which only a page of
    this origin can obtain (from ``GET /api/csrf``); it changes whenever the session token does."""
    return hmac.new(b"quantbridge-dashboard-csrf", session_token.encode(), hashlib.sha256).hexdigest()


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def _origins(request: Request) -> set[str]:
    """This server's origins: the one the request was addressed to and Airflow's ``[api] base_url``."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    own = {f"{request.url.scheme}://{request.url.netloc}"}
    base = urlsplit(conf.get("api", "base_url", fallback="") or "")
    if base.scheme and base.netloc:
        own.add(f"{base.scheme}://{base.netloc}")
    return own


def check_csrf(request: Request) -> None:
    """Refuse (403) a state change that rides on the cookie alone: see the module docstring."""
    from urllib.parse import urlsplit

    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    if _bearer(request):
        return  # browsers never add this header across sites (a CORS preflight would be needed)
    origin = request.headers.get("origin")
    if not origin and request.headers.get("referer"):
        referer = urlsplit(request.headers["referer"])
        origin = f"{referer.scheme}://{referer.netloc}"
    if not origin or origin not in _origins(request):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"cross-site request refused: Origin {origin or 'absent'} is not this server; "
            "send the Authorization: Bearer header or use the dashboard page",
        )
    session = request.cookies.get(COOKIE_NAME_JWT_TOKEN) or ""
    sent = request.headers.get(CSRF_HEADER, "")
    if not session or not hmac.compare_digest(sent, csrf_token(session)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"missing or wrong {CSRF_HEADER} header: reload the "
            "dashboard page (it fetches the token from api/csrf)",
        )


def _scrub(message: str) -> str:
    """``message`` with the password of every URL in it replaced by ``***``."""
    from quantbridge.settings import redact_url

    return _URL.sub(lambda m: redact_url(m.group(0)), message)


def _login_redirect(request: Request) -> RedirectResponse:
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(
        get_auth_manager().get_url_login(next_url=str(request.url)), status_code=status.HTTP_303_SEE_OTHER
    )


def create_app(
    settings_provider: Callable[[], Settings] = dashboard_settings,
    snapshot: Callable[[Settings], dict[str, Any]] | None = None,
) -> FastAPI:
    """The dashboard app. ``settings_provider`` is called per request (tests pass fixed settings);
    ``snapshot`` defaults to :func:`reporting.snapshot.risk_snapshot`."""
    app = FastAPI(title="quantbridge risk dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    def read() -> dict[str, Any]:
        import redis

        from reporting.snapshot import risk_snapshot

        settings = load()
        try:
            return (snapshot or risk_snapshot)(settings)
        except redis.RedisError as exc:
            raise unavailable(settings, exc) from exc

    def load() -> Settings:
        from quantbridge.errors import QuantbridgeError

        try:
            return settings_provider()
        except QuantbridgeError as exc:
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR, _scrub(f"quantbridge settings: {exc}")
            ) from exc

    def unavailable(settings: Settings, exc: Exception) -> HTTPException:
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            _scrub(f"Redis at {settings.redis_url_redacted()} is unavailable: {exc}"),
        )

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, user: Any = Depends(optional_user)) -> Response:
        if user is None:
            return _login_redirect(request)
        return HTMLResponse(render_page(read(), user.get_name(), may_operate(user)))

    @app.get("/panel", response_class=HTMLResponse)
    def panel(user: Any = Depends(authenticated_user)) -> HTMLResponse:
        return HTMLResponse(render_panel(read()))

    @app.get("/api/snapshot")
    def snapshot_json(user: Any = Depends(authenticated_user)) -> JSONResponse:
        return JSONResponse(read())

    @app.get("/api/csrf")
    def csrf(request: Request, user: Any = Depends(authenticated_user)) -> JSONResponse:
        from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

        session = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
        return JSONResponse(
            {"header": CSRF_HEADER, "token": csrf_token(session) if session else None},
            headers={"Cache-Control": "no-store"},
        )

    @app.post("/api/kill-switch")
    async def kill_switch(request: Request, user: Any = Depends(authenticated_user)) -> JSONResponse:
        allowed(
            request, user, may_operate(user), "set or clear the kill switch", "Airflow's Op or Admin role"
        )
        action, reason = parse_switch_request(await request.body())
        return JSONResponse(change_switch(load(), action, reason, user.get_name()))

    def change_switch(settings: Settings, action: str, reason: str, name: str) -> dict[str, Any]:
        import redis

        from quantbridge import kill_switch as switch
        from quantbridge.redis_client import connect
        from quantbridge.redis_schema import RedisSchema

        by, schema = f"operator:{name}", RedisSchema(settings.redis_prefix)
        client = connect(settings)
        try:
            change = switch.engage if action == "on" else switch.release
            changed = change(client, schema, by=by, reason=reason)
            record = switch.read(client, schema)
        except redis.RedisError as exc:
            raise unavailable(settings, exc) from exc
        finally:
            client.close()
        log.warning("kill switch %s by %s (changed=%s): %s", action, by, changed, reason)
        return {
            "action": action,
            "changed": changed,
            "by": by,
            "reason": reason,
            "active": record is not None,
            "switch": record,
        }

    @app.get("/api/policy")
    def policy(user: Any = Depends(authenticated_user)) -> JSONResponse:
        return JSONResponse({**with_redis(load(), policy_status), "may_roll_back": may_roll_back(user)})

    @app.post("/api/policy/rollback")
    async def policy_rollback(request: Request, user: Any = Depends(authenticated_user)) -> JSONResponse:
        allowed(
            request,
            user,
            may_roll_back(user),
            "roll back the policy",
            "the compliance group (QB_COMPLIANCE_APPROVERS or QB_RISK_APPROVERS)",
        )
        revision, reason = parse_rollback_request(await request.body())
        by = f"compliance:{user.get_name()}"

        def roll_back(settings: Settings, client: Any, schema: Any) -> dict[str, Any]:
            from governance import release
            from quantbridge.lake import Lake
            from quantbridge.signing import keyring

            ring = keyring(settings, "policy", create=False)
            return release.rollback(client, schema, Lake(settings.lake_root), ring, revision, by, reason)

        record = with_redis(load(), roll_back)
        log.warning("policy rolled back to %s by %s: %s", revision, by, reason)
        return JSONResponse(record)

    def with_redis(settings: Settings, action: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """``action(settings, client, schema)``; Redis down -> 503, a refused release step -> 409."""
        import redis

        from quantbridge.errors import InputError, QuantbridgeError
        from quantbridge.redis_client import connect
        from quantbridge.redis_schema import RedisSchema

        client = connect(settings)
        try:
            return action(settings, client, RedisSchema(settings.redis_prefix))
        except redis.RedisError as exc:
            raise unavailable(settings, exc) from exc
        except InputError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, _scrub(str(exc))) from exc
        except QuantbridgeError as exc:  # the bundle does not verify, is already active, no key ring...
            raise HTTPException(status.HTTP_409_CONFLICT, _scrub(str(exc))) from exc
        finally:
            client.close()

    @app.get("/reports/{path:path}")
    def report(path: str, request: Request, user: Any = Depends(optional_user)) -> Response:
        if user is None:
            return _login_redirect(request)
        from quantbridge.errors import InputError
        from reporting.snapshot import report_file

        try:
            return FileResponse(report_file(settings_provider(), path))
        except (InputError, FileNotFoundError) as exc:
            log.info("report %r refused: %s", path, exc)
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report {path!r}") from None

    return app


def parse_switch_request(body: bytes) -> tuple[str, str]:
    """``(action, reason)`` from a JSON body ``{"action": "on"|"off", "reason": "..."}``; else 400 naming
    the field."""
    import json

    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            'body: expected a JSON object {"action": "on" or "off", "reason": "..."}',
        )
    action = data.get("action")
    if action not in ("on", "off"):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"action={action!r} is invalid: expected 'on' or 'off'"
        )
    return action, _reason(data.get("reason"))


def policy_status(settings: Settings, client: Any, schema: Any) -> dict[str, Any]:
    """:func:`governance.release.status`: the active record, every worker's revision, ``in_sync``."""
    from governance.release import status as release_status

    return release_status(client, schema)


def parse_rollback_request(body: bytes) -> tuple[str, str]:
    """``(revision, reason)`` from a JSON body ``{"revision": "<64 hex>", "reason": "..."}``; else 400."""
    import json

    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, 'body: expected a JSON object {"revision": "...", "reason": "..."}'
        )
    revision = data.get("revision")
    if not isinstance(revision, str) or not re.fullmatch(r"[0-9a-f]{64}", revision):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"revision={str(revision)[:80]!r} is invalid: expected a bundle revision (64 hex digits, "
            "`qb policy status` lists them)",
        )
    return revision, _reason(data.get("reason"))


def _reason(reason: Any) -> str:
    """One line of 1 to MAX_REASON_CHARS characters, stripped; else 400."""
    if (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > MAX_REASON_CHARS
        or any(ord(c) < 32 and c != "\t" for c in reason)
    ):
        shown = reason[:80] if isinstance(reason, str) else reason
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"reason={shown!r} is invalid: expected one line of 1 to {MAX_REASON_CHARS} "
            "characters (the audit trail records who and why)",
        )
    return reason.strip()


# --- rendering (server side; every value escaped) ---------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _money(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.2f}"


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"


def _table(
    headers: list[str], rows: list[list[str]], table_id: str, empty: str, text_columns: int = 1
) -> str:
    """An HTML table; the first ``text_columns`` columns are left-aligned text, the rest numbers."""
    if not rows:
        return f'<p class="empty" id="{table_id}-empty">{_e(empty)}</p>'

    def cls(i: int) -> str:
        return "" if i < text_columns else ' class="n"'

    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _sparkline(history: list[dict[str, Any]], width: int = 900, height: int = 140) -> str:
    """VaR, CVaR and the limit over the history as an inline SVG (no script needed)."""
    points = [h for h in history if h.get("var") is not None]
    if len(points) < 2:
        return '<p class="empty" id="history-empty">fewer than two refreshes in qb risk history yet</p>'
    values = [v for h in points for v in (h["var"], h.get("cvar"), h.get("limit")) if v is not None]
    low, high = 0.0, max(values) * 1.05 or 1.0

    def line(key: str) -> str:
        step = width / (len(points) - 1)
        return " ".join(
            f"{i * step:.1f},{height - (h[key] - low) / (high - low) * height:.1f}"
            for i, h in enumerate(points)
            if h.get(key) is not None
        )

    stroke = 'fill="none" vector-effect="non-scaling-stroke"'
    return (
        f'<svg id="history" viewBox="0 0 {width} {height}" width="100%" height="{height}" '
        f'preserveAspectRatio="none" role="img" aria-label="VaR history, {len(points)} refreshes">'
        f'<polyline {stroke} stroke="#c0392b" stroke-dasharray="4 3" points="{line("limit")}"/>'
        f'<polyline {stroke} stroke="#8e44ad" points="{line("cvar")}"/>'
        f'<polyline {stroke} stroke="#2471a3" stroke-width="2" points="{line("var")}"/></svg>'
        f'<p class="legend"><span style="color:#2471a3">VaR</span> · '
        f'<span style="color:#8e44ad">CVaR</span> · '
        f'<span style="color:#c0392b">limit</span> · {len(points)} refreshes, {_e(points[0]["at"])} to '
        f"{_e(points[-1]['at'])}</p>"
    )


def render_panel(snap: dict[str, Any]) -> str:
    """The dashboard's body: figures, kill switch, history, stress, fills, venue costs, report link."""
    risk = snap.get("risk") or {}
    kill = snap["kill_switch"]
    var, cvar, limit = risk.get("var"), risk.get("cvar"), risk.get("limit")
    usage = f"{var / limit:.0%} of limit" if var is not None and limit else ""
    if kill["active"]:
        reason = kill["reason"]
        record = reason if isinstance(reason, dict) else {"reason": str(reason)}
        switch = (
            f'<span id="kill-switch" class="badge on">ACTIVE</span> <small id="kill-reason">'
            f'{_e(record.get("reason", ""))}</small><br><small>set by <span id="kill-by">'
            f'{_e(record.get("by") or "unknown")}</span> at <span id="kill-at">'
            f"{_e(record.get('at') or '-')}</span></small>"
        )
    else:
        switch = '<span id="kill-switch" class="badge off">OFF</span>'
    beats = " · ".join(
        f'{_e(c)}: <span id="heartbeat-{_e(c)}">{_e(t or "no heartbeat")}</span>'
        for c, t in snap["heartbeats"].items()
    )
    figures = (
        f'<section class="cards">'
        f'<div class="card"><h3>VaR</h3>'
        f'<div class="big" id="var" data-value="{_e(_raw(var))}">{_money(var)}</div>'
        f"<small>{_e(usage)}</small></div>"
        f'<div class="card"><h3>CVaR</h3>'
        f'<div class="big" id="cvar" data-value="{_e(_raw(cvar))}">{_money(cvar)}</div></div>'
        f'<div class="card"><h3>Limit</h3><div class="big" id="limit">{_money(limit)}</div></div>'
        f'<div class="card"><h3>Kill switch</h3><div class="big">{switch}</div></div>'
        f'</section><p class="meta">model <b>{_e(risk.get("model", "-"))}</b>, '
        f"backend {_e(risk.get('backend', '-'))}, "
        f"confidence {_e(risk.get('confidence', '-'))}, horizon {_count(risk.get('horizon_days'))} d, "
        f"{_count(risk.get('positions'))} positions, "
        f'prices as of <span id="as-of">{_e(risk.get("as_of") or "-")}</span>, '
        f'updated <span id="updated">{_e(risk.get("updated_at", "never"))}</span><br>{beats}</p>'
    )
    stress = snap["stress"]
    stress_rows = [
        [
            _e(s["family"]),
            _e(s["scenario"]),
            _money(s["base_value"]),
            _money(s["shocked_value"]),
            f'<span class="{"neg" if s["change"] < 0 else "pos"}">{_money(s["change"])}</span>',
        ]
        for s in stress["scenarios"]
    ]
    fills = [
        [
            _e(f.get("ts", "")),
            _e(f.get("ticker")),
            _e(f.get("side")),
            f'<span class="venue">{_e(f.get("venue"))}</span>',
            _num(f.get("quantity"), 0),
            _money(f.get("price")),
            _money(f.get("fee")),
            _num(f.get("slippage_bps")),
        ]
        for f in snap["fills"]
    ]
    costs = [
        [
            f'<span class="venue">{_e(c["venue"])}</span>',
            str(c["fills"]),
            _num(c["quantity"], 0),
            _money(c["notional"]),
            _money(c["fees"]),
            _num(c["fee_bps"]),
            _num(c["slippage_bps"]),
            f"<b>{_num(c['cost_bps'])}</b>",
        ]
        for c in snap["venue_costs"]
    ]
    positions = [[_e(t), _num(q, 0)] for t, q in sorted(snap["positions"].items())]
    report = snap.get("report")
    report_link = (
        f'<a id="report-link" href="reports/{_e(report["path"])}">nightly report of {_e(report["date"])}</a>'
        if report
        else '<span id="report-link">no nightly report in the lake yet</span>'
    )
    stress_title = (
        f"Stress, {_e(stress['date'])} <small>({_e(stress['source'])}, {stress['rows']} ledger rows, "
        f"totals worst first)</small>"
        if stress["date"]
        else "Stress"
    )
    return (
        figures
        + f"<section><h2>VaR history</h2>{_sparkline(snap['history'])}</section>"
        + f"<section><h2>{stress_title}</h2>"
        + _table(
            ["family", "scenario", "base", "shocked", "change"], stress_rows, "stress", "no stress run yet", 2
        )
        + '</section><section class="two">'
        + "<div><h2>Execution cost by venue <small>(bps of notional)</small></h2>"
        + _table(
            ["venue", "fills", "shares", "notional", "fees", "fee bps", "slippage bps", "cost bps"],
            costs,
            "venue-costs",
            "no fills yet",
        )
        + "</div><div><h2>Positions</h2>"
        + _table(["ticker", "shares"], positions, "positions", "no positions")
        + "</div></section><section><h2>Recent fills</h2>"
        + _table(
            ["time", "ticker", "side", "venue", "shares", "price", "fee", "slippage bps"],
            fills,
            "fills",
            "no fills yet",
            4,
        )
        + f'</section><p class="meta">{report_link} · generated {_e(snap["generated_at"])} · '
        + '<a href="api/snapshot">JSON</a></p>'
    )


def _count(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"


def _raw(value: Any) -> str:
    return "" if value is None else repr(float(value))


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#017cee;color:#fff;padding:10px 20px;display:flex;justify-content:space-between;
align-items:center}
header a{color:#fff}main,.controls{padding:12px 20px;max-width:1200px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:10px 16px;min-width:200px;box-shadow:0 1px 3px #0002}
.card h3{margin:0;font-size:13px;color:#5b6b7c;font-weight:500}
.big{font-size:26px;font-weight:600}
.badge{padding:2px 10px;border-radius:12px;font-size:18px}.on{background:#c0392b;color:#fff}
.off{background:#27ae60;color:#fff}
section{background:#fff;border-radius:8px;padding:8px 16px;margin:12px 0;box-shadow:0 1px 3px #0002}
section.two{display:flex;gap:32px;flex-wrap:wrap}h2{font-size:16px;margin:6px 0}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px;text-align:left;border-bottom:1px solid #e3e8ee}th.n,td.n{text-align:right}
.neg{color:#c0392b}.pos{color:#1e8449}.meta{font-size:13px;color:#5b6b7c}.empty{color:#8a96a3;font-style:italic}
.legend{font-size:12px;color:#5b6b7c;margin:2px 0}
"""

_SCRIPT = """
const panel = document.getElementById('panel');
const timer = setInterval(async () => {
  try {
    const reply = await fetch('panel', {credentials: 'same-origin'});
    if (reply.status === 401 || reply.status === 403) { clearInterval(timer);
      document.getElementById('status').textContent = 'session expired: reload to log in'; return; }
    if (reply.ok) { panel.innerHTML = await reply.text();
      document.getElementById('status').textContent = 'live'; }
  } catch (err) { document.getElementById('status').textContent = 'offline, retrying'; }
}, %d);
"""


_CONTROL_SCRIPT = """
const form = document.getElementById('kill-form');
if (form) form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = document.getElementById('kill-result');
  const action = event.submitter ? event.submitter.value : 'on';
  const reason = document.getElementById('kill-reason-input').value;
  try {
    const csrf = await (await fetch('api/csrf', {credentials: 'same-origin'})).json();
    const reply = await fetch('api/kill-switch', {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', [csrf.header]: csrf.token || ''},
      body: JSON.stringify({action: action, reason: reason})});
    const body = await reply.json();
    result.textContent = reply.ok ? (body.changed ? 'done: switch ' + (body.active ? 'ACTIVE' : 'OFF')
      : 'nothing changed: switch ' + (body.active ? 'ACTIVE' : 'OFF')) : 'refused: ' + body.detail;
    if (reply.ok) { const p = await fetch('panel', {credentials: 'same-origin'});
      if (p.ok) document.getElementById('panel').innerHTML = await p.text(); }
  } catch (err) { result.textContent = 'failed: ' + err; }
});
"""


def render_controls(may_set: bool) -> str:
    """The kill switch's controls (outside the refreshed panel, so typing survives a refresh), or for users
    without the right a line saying who has it."""
    if not may_set:
        return (
            '<section id="kill-controls"><h2>Kill switch control</h2>'
            '<p class="empty" id="kill-not-allowed">Setting or clearing the kill switch needs '
            "Airflow's Op or Admin role.</p></section>"
        )
    return (
        '<section id="kill-controls"><h2>Kill switch control</h2><form id="kill-form">'
        f'<input id="kill-reason-input" name="reason" required maxlength="{MAX_REASON_CHARS}" size="60" '
        'placeholder="reason (kept in the audit trail with your name)"> '
        '<button type="submit" id="kill-on" name="action" value="on">Set (halt risk-increasing orders)'
        "</button> "
        '<button type="submit" id="kill-off" name="action" value="off">Clear</button> '
        '<span id="kill-result" class="meta"></span></form></section>'
    )


def render_page(snap: dict[str, Any], user: str, may_set: bool = False) -> str:
    """The whole page: header, the panel, the switch's controls for operators and the scripts (relative
    URLs, so any mount works)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>quantbridge risk dashboard</title>'
        f"<style>{_STYLE}</style></head><body><header><b>quantbridge · live risk</b><span>"
        f'<span id="status">live</span> · signed in as <span id="user">{_e(user)}</span> · '
        '<a href="../">Airflow</a></span></header>'
        f'<main id="panel">{render_panel(snap)}</main><div class="controls">{render_controls(may_set)}</div>'
        f"<script>{_SCRIPT % REFRESH_MS}{_CONTROL_SCRIPT}</script></body></html>"
    )
