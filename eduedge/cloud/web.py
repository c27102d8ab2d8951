"""`eduedge cloud serve`: the city's pages and JSON API - FastAPI (ASGI) with Jinja2 templates, served by uvicorn.

Pages (Simplified Chinese by default, `?lang=en` for English; times in `city.timezone`):

- `/` the city: schools per rule status and per district (charts), the region rules and the access rate's
  trend, the schools with what they fail (sortable, searchable, filterable: district, type, state, status);
- `/school/ID`: findings in words with their evidence, 30-day trends, devices (down first), gaps, events,
  commands (an operator can send one from the page);
- `/rule/ID`: every school's value against the threshold, worst first;
- `/offline`, `/gaps`, `/ingest`; every table exports at `/export/NAME.csv|xlsx` with the page's query.

API (`/api/...`, documented in `/api/openapi.json`): the same data as JSON, and
`POST /api/schools/ID/commands` (operators only; audited: cloud/audit.py).

Access (cloud/auth.py): every page and API call needs a user of `serve.users` - `Authorization: Bearer
TOKEN`, or the session cookie /login gives for a token; otherwise 401. Static files (`/static`: ECharts,
the page's script and style) are the app's own: nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from eduedge.cloud import audit, pages
from eduedge.cloud.auth import COOKIE, Accounts, User
from eduedge.cloud.city import city_report
from eduedge.cloud.commands import CommandError, send_command
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db, connect
from eduedge.cloud.fmt import Fmt
from eduedge.cloud.i18n import MESSAGES, pick, text
from eduedge.cloud.rollups import ensure_schema as rollups_schema
from eduedge.cloud.tables import to_csv, to_xlsx
from eduedge.cloud.views import gaps, ingest_stats, offline, school_detail, schools

log = logging.getLogger("eduedge.cloud.web")
HERE = Path(__file__).resolve().parent


class CommandRequest(BaseModel):
    command: Literal["rebirth", "run-check", "set-interval"]
    args: dict[str, Any] = Field(default_factory=dict, description="run-check: {check}; set-interval: "
                                                                   "{check, interval_s}")
    timeout: float = Field(30.0, ge=1, le=300, description="seconds to wait for the school's answer")


class CityWeb:
    """The application's state: configuration, one database connection (serialised), the accounts."""

    def __init__(self, cfg: CloudConfig, db: Db | None = None, accounts: Accounts | None = None,
                 sender: Callable[..., Any] = send_command):
        self.cfg = cfg
        self.db = db or connect(cfg.storage)
        rollups_schema(self.db)
        audit.ensure_schema(self.db)
        self.accounts = accounts or Accounts.from_config(cfg.serve)
        self.lock = threading.Lock()
        self.send = sender

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            return fn(self.db, *args)


def create_app(web: CityWeb) -> FastAPI:
    cfg = web.cfg
    app = FastAPI(title="eduedge city cloud", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  description="The city's read API over what the schools' agents reported, and commands to "
                              "schools (operators). Authenticate with `Authorization: Bearer TOKEN`.")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    zone = pages.zone_of(cfg)

    def lang_of(request: Request) -> str:
        return pick(request.query_params.get("lang"), request.cookies.get("lang"),
                    request.headers.get("accept-language"), cfg.city.language)

    def who(request: Request) -> User | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return web.accounts.by_token(auth[7:].strip())
        cookie = request.cookies.get(COOKIE)
        return web.accounts.by_session(cookie) if cookie else None

    def api_user(request: Request) -> User:
        user = who(request)
        if user is None:
            raise HTTPException(401, "a token is needed: Authorization: Bearer TOKEN",
                                headers={"WWW-Authenticate": "Bearer"})
        return user

    def render(request: Request, template: str, user: User | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        f = Fmt(lang, zone)
        base = request.scope.get("root_path", "").rstrip("/")
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        other = "en" if lang == "zh" else "zh"
        resp = templates.TemplateResponse(request, template, {
            "_": lambda key, **v: text(lang, key, **v), "f": f, "lang": lang, "user": user, "base": base,
            "here": request.url.path[len(base):] or "/", "query": query, "other_lang": other,
            "other_lang_url": request.url.path + "?" + "&".join(
                [f"{quote(k)}={quote(v)}" for k, v in query.items()] + [f"lang={other}"]),
            "json": lambda v: json.dumps(v, ensure_ascii=False).replace("</", "<\\/"), **ctx}, status_code=status)
        if request.query_params.get("lang") in MESSAGES:
            resp.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax", httponly=True)
        return resp

    def page(request: Request) -> User | HTMLResponse:
        user = who(request)
        if user is None:
            return render(request, "login.html", None, 401, next=request.url.path, bad=False)
        return user

    # -- login ------------------------------------------------------------------------------------------

    def _login(request: Request, token: str, nxt: str) -> Response:
        user = web.accounts.by_token(token) if token else None
        if user is None:
            return render(request, "login.html", None, 401, next=nxt, bad=bool(token))
        base = request.scope.get("root_path", "").rstrip("/")
        target = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"
        if not target.startswith(base + "/"):
            target = base + target
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, web.accounts.session(user.name), max_age=int(web.accounts.lifetime_s),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path=base or "/")
        return resp

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, token: str = "", next: str = "/") -> Response:
        # ?token= is for kiosk screens and scripts; the app never logs it (a proxy may: prefer the form).
        return _login(request, token, next)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        return _login(request, (form.get("token") or [""])[0].strip(), (form.get("next") or ["/"])[0])

    @app.get("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        resp = RedirectResponse(base + "/login", status_code=303)
        resp.delete_cookie(COOKIE, path=base or "/")
        return resp

    # -- pages ------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def city_page(request: Request, district: str = "", type: str = "", state: str = "", status: str = "",
                  q: str = "") -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        f = Fmt(lang_of(request), zone)
        ctx = web.read(pages.city, cfg, f, time.time(), district or None, type or None, state or None,
                       status or None, q or None)
        return render(request, "city.html", user, **ctx)

    @app.get("/school/{school_id}", response_class=HTMLResponse, include_in_schema=False)
    def school_page(request: Request, school_id: str, sent: str = "") -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        ctx = web.read(pages.school, cfg, Fmt(lang_of(request), zone), time.time(), school_id)
        if ctx is None:
            return render(request, "error.html", user, 404, message=text(lang_of(request), "error.no_school"))
        return render(request, "school.html", user, sent=sent, **ctx)

    @app.post("/school/{school_id}/command", include_in_schema=False)
    async def school_command(request: Request, school_id: str) -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        args = {"check": form["check"]} if form.get("command") == "run-check" and form.get("check") else {}
        body = CommandRequest(command=form.get("command", "rebirth"), args=args, timeout=30.0)  # type: ignore[arg-type]
        if not user.may_command:
            web.read(audit.record, user.name, user.role, _remote(request), school_id, body.command, body.args,
                     "forbidden", "viewer")
            return render(request, "error.html", user, 403, message=text(lang_of(request), "cmd.forbidden"))
        answer = await anyio.to_thread.run_sync(_command, web, user, _remote(request), school_id, body)
        base = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{base}/school/{quote(school_id)}?sent={quote(answer['status'])}", 303)

    @app.get("/rule/{rule_id}", response_class=HTMLResponse, include_in_schema=False)
    def rule_page(request: Request, rule_id: str) -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        ctx = web.read(pages.rule_page, cfg, Fmt(lang_of(request), zone), time.time(), rule_id)
        if ctx is None:
            return render(request, "error.html", user, 404, message=text(lang_of(request), "rule.unknown"))
        return render(request, "rule.html", user, **ctx)

    @app.get("/offline", response_class=HTMLResponse, include_in_schema=False)
    def offline_page(request: Request) -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        return render(request, "offline.html", user,
                      **web.read(pages.offline_page, cfg, Fmt(lang_of(request), zone), time.time()))

    @app.get("/gaps", response_class=HTMLResponse, include_in_schema=False)
    def gaps_page(request: Request) -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        return render(request, "tables.html", user, heading="gaps.title",
                      **web.read(pages.gaps_page, cfg, Fmt(lang_of(request), zone), time.time()))

    @app.get("/ingest", response_class=HTMLResponse, include_in_schema=False)
    def ingest_page(request: Request) -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        return render(request, "tables.html", user, heading="ingest.title",
                      **web.read(pages.ingest_page, Fmt(lang_of(request), zone)))

    @app.get("/export/{name}.{fmt}", include_in_schema=False)
    def export(request: Request, name: str, fmt: str) -> Response:
        user = page(request)
        if not isinstance(user, User):
            return user
        if fmt not in ("csv", "xlsx"):
            raise HTTPException(404)
        table = web.read(pages.table_for, name, cfg, Fmt(lang_of(request), zone), time.time(),
                         dict(request.query_params))
        if table is None:
            raise HTTPException(404, f"no table {name!r} for this query")
        stamp = time.strftime("%Y%m%d-%H%M")
        if fmt == "csv":
            return Response(to_csv(table), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'})
        return Response(to_xlsx(table),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.xlsx"'})

    # -- API --------------------------------------------------------------------------------------------

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: User = Depends(api_user)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/city", tags=["city"], summary="Region rules, schools per rule status, offline schools, the table")
    def api_city(district: str | None = None, type: str | None = None,
                 user: User = Depends(api_user)) -> dict[str, Any]:
        return web.read(city_report, cfg, time.time(), district, type)

    @app.get("/api/schools", tags=["city"], summary="The schools with their state and status per rule")
    def api_schools(district: str | None = None, type: str | None = None,
                    user: User = Depends(api_user)) -> dict[str, Any]:
        return web.read(schools, cfg, time.time(), district, type)

    @app.get("/api/schools/{school_id}", tags=["school"], summary="One school: findings, history, events, devices, "
                                                                   "gaps, commands")
    def api_school(school_id: str, user: User = Depends(api_user)) -> dict[str, Any]:
        d = web.read(school_detail, cfg, school_id, time.time())
        if d is None:
            raise HTTPException(404, "no such school")
        return d

    @app.get("/api/schools/{school_id}/trends", tags=["school"], summary="30 days of capacity tests, WAN "
                                                                          "utilisation, Wi-Fi coverage, availability")
    def api_trends(school_id: str, user: User = Depends(api_user)) -> dict[str, Any]:
        from eduedge.cloud.trends import school_trends

        return web.read(school_trends, school_id, time.time(), zone)

    @app.get("/api/rules/{rule_id}", tags=["city"], summary="Every school's value against the rule, worst first")
    def api_rule(rule_id: str, request: Request, user: User = Depends(api_user)) -> dict[str, Any]:
        ctx = web.read(pages.rule_page, cfg, Fmt("en", zone), time.time(), rule_id)
        if ctx is None:
            raise HTTPException(404, "no such rule")
        t = ctx["tables"]["rule"]
        return {"rule": rule_id, "title": {"zh": ctx["rule"].title.zh, "en": ctx["rule"].title.en},
                "threshold": ctx["rule"].threshold, "unit": ctx["rule"].unit, "op": ctx["rule"].op,
                "rows": [{c.key: cell.value for c, cell in zip(t.columns, row, strict=True)} for row in t.rows]}

    @app.get("/api/offline", tags=["city"], summary="Every school that is not online, and since when")
    def api_offline(user: User = Depends(api_user)) -> list[dict[str, Any]]:
        return web.read(offline, cfg, time.time())

    @app.get("/api/gaps", tags=["city"], summary="Seq holes and declared gaps per school and agent")
    def api_gaps(user: User = Depends(api_user)) -> list[dict[str, Any]]:
        return web.read(gaps, cfg, time.time())

    @app.get("/api/stats", tags=["ingest"], summary="What the receivers counted; the newest refused messages")
    def api_stats(user: User = Depends(api_user)) -> dict[str, Any]:
        return web.read(ingest_stats)

    @app.get("/api/audit", tags=["commands"], summary="The commands sent, by whom, and their answers")
    def api_audit(school: str | None = None, user: User = Depends(api_user)) -> list[dict[str, Any]]:
        return web.read(audit.recent, school, 200)

    @app.get("/api/me", tags=["access"], summary="Who this token is")
    def api_me(user: User = Depends(api_user)) -> dict[str, str]:
        return {"name": user.name, "role": user.role}

    @app.post("/api/schools/{school_id}/commands", tags=["commands"],
              summary="Send a command to a school's agent and wait for its answer (operators only; audited)",
              responses={403: {"description": "a viewer may not send commands"}})
    def api_command(school_id: str, body: CommandRequest, request: Request,
                    user: User = Depends(api_user)) -> dict[str, Any]:
        if not user.may_command:
            web.read(audit.record, user.name, user.role, _remote(request), school_id, body.command, body.args,
                     "forbidden", "viewer")
            raise HTTPException(403, "only an operator may send commands")
        answer = _command(web, user, _remote(request), school_id, body)
        if answer["status"] == "invalid":
            raise HTTPException(422, answer["reason"])
        return answer

    return app


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def _command(web: CityWeb, user: User, remote: str | None, school: str, body: CommandRequest) -> dict[str, Any]:
    """Send, wait, audit. Its own database connection: the wait must not hold the pages' connection."""
    entry = web.read(audit.record, user.name, user.role, remote, school, body.command, body.args)
    db = connect(web.cfg.storage)
    try:
        answer = web.send(web.cfg, db, school, body.command, body.args, body.timeout)
    except CommandError as e:
        web.read(audit.answered, entry, "invalid", str(e), None)
        return {"status": "invalid", "reason": str(e), "school": school, "command": body.command}
    finally:
        db.close()
    web.read(audit.answered, entry, answer.status, answer.reason, answer.request_id)
    log.info("command %s to %s by %s (%s): %s", body.command, school, user.name, user.role, answer.status)
    return {**answer.to_dict(), "by": user.name}


def serve(web: CityWeb, host: str, port: int, ready: Callable[[int], None] | None = None) -> None:
    """Run uvicorn until SIGTERM/SIGINT (uvicorn's own handlers); `ready(port)` once it listens."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(
        create_app(web), host=host, port=port, root_path=web.cfg.serve.root_path, proxy_headers=True,
        forwarded_allow_ips=web.cfg.serve.forwarded_allow_ips, access_log=False, log_level="info",
        server_header=False))
    if ready is not None:
        orig = server.startup

        async def startup(sockets: Any = None) -> None:
            await orig(sockets)
            ready(server.servers[0].sockets[0].getsockname()[1])

        server.startup = startup  # type: ignore[method-assign]
    server.run()
