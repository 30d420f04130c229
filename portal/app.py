"""The portal's pages: one method per screen, from a parsed request to a rendered response."""

from __future__ import annotations

import hmac
import re
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from portal.api import ApiProblem, SettleApi
from portal.catalogue import Translator, translator
from portal.outbox import OutboxEmailNotFoundError, list_outbox, read_email
from portal.paths import local_path
from portal.principals import Directory
from portal.sanitize import sanitize_html
from portal.sessions import COOKIE_NAME, Session, SessionStore
from portal.views import (
    banners,
    dates_ahead,
    default_choice,
    get,
    link_own_urls,
    method_choices,
    method_label,
    methods_by_id,
    names_by_id,
    payment_method_body,
    quoted_method_id,
)
from shared.domain.model import IDENTIFIER

PACKAGE_DIR = Path(__file__).resolve().parent
JsonObject = dict[str, Any]
_ACCOUNT_ID = rf"(?P<account>{IDENTIFIER})"
_EMAIL_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._@+-]{0,250}\.eml)"
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
# Shown inside a sandboxed iframe: no scripts, nothing fetched, inline styles only.
EMAIL_HTML_HEADERS = (
    (
        "Content-Security-Policy",
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(status=303, headers=[("Location", location)], content_type="text/plain; charset=utf-8")


@dataclass(frozen=True)
class Context:
    """What every page handler receives: the request, its session and the captured path values."""

    request: Request
    session: Session
    values: dict[str, str]


Handler = Callable[["PortalApp", Context], Response]


class PortalApp:
    """Routes requests to screens; every call to the billing API goes through `api` and is signed there."""

    def __init__(
        self,
        api: SettleApi,
        *,
        directory: Directory,
        outbox_dir: Path,
        own_origins: tuple[str, ...] = (),
        sessions: SessionStore | None = None,
    ) -> None:
        self.api = api
        self.directory = directory
        self.outbox_dir = outbox_dir
        self.own_origins = tuple(origin.rstrip("/") for origin in own_origins)
        self.sessions = sessions or SessionStore()
        self.templates = Environment(
            loader=FileSystemLoader(PACKAGE_DIR / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
        )
        self._stylesheet = (PACKAGE_DIR / "static" / "portal.css").read_bytes()

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises for bad input."""
        if request.path == "/static/portal.css" and request.method in {"GET", "HEAD"}:
            return Response(200, self._stylesheet, "text/css; charset=utf-8", [("Cache-Control", "max-age=300")])
        session = self.sessions.get(request.cookies.get(COOKIE_NAME))
        new_session = session is None
        if session is None:
            session = self.sessions.create()
        response = self._route(request, session)
        if new_session and not any(name == "Set-Cookie" for name, _ in response.headers):
            response.headers.append(_session_cookie(session))
        return response

    def _route(self, request: Request, session: Session) -> Response:
        for method, pattern, handler, needs_principal in ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None or method != request.method:
                continue
            context = Context(request=request, session=session, values=match.groupdict())
            if needs_principal and session.principal_id is None:
                target = request.path + (f"?{urllib.parse.urlencode(request.query)}" if request.query else "")
                return Response.redirect(f"/signin?{urllib.parse.urlencode({'next': target})}")
            if request.method == "POST" and not _same_token(request.form.get("csrf", ""), session.csrf_token):
                return self._error_page(context, 403, self._t(session)("error.expired_form"))
            return handler(self, context)
        t = self._t(session)
        return self._error_page(Context(request, session, {}), 404, t("error.page_not_found"))

    # Rendering

    def _t(self, session: Session, account_id: str | None = None) -> Translator:
        locale = session.locales.get(account_id or "") or self.directory.locale_of_principal(session.principal_id)
        return translator(locale)

    def render(
        self, context: Context, template: str, *, status: int = 200, account_id: str | None = None, **values: Any
    ) -> Response:
        t = self._t(context.session, account_id)
        page = self.templates.get_template(template).render(
            t=t,
            lang=t.language,
            principal_id=context.session.principal_id,
            csrf=context.session.csrf_token,
            account_id=account_id,
            **values,
        )
        return Response(status, page.encode(), headers=list(PAGE_HEADERS))

    def _error_page(
        self, context: Context, status: int, message: str, *, account_id: str | None = None, fields: Any = ()
    ) -> Response:
        return self.render(
            context, "error.html.j2", status=status, account_id=account_id, message=message, fields=fields
        )

    def _problem_page(self, context: Context, problem: ApiProblem, account_id: str | None) -> Response:
        return self._error_page(
            context,
            _page_status(problem),
            self.describe_problem(problem, self._t(context.session, account_id)),
            account_id=account_id,
            fields=problem.fields,
        )

    @staticmethod
    def describe_problem(problem: ApiProblem, t: Translator) -> str:
        """A sentence for the reader: the known cases in their language, the API's own words otherwise."""
        if problem.status == 502:
            return t("error.unreachable", detail=problem.detail)
        if problem.status == 403:
            return t("error.forbidden")
        if problem.status == 404:
            return t("error.not_found", detail=problem.detail or problem.title)
        return f"{problem.title}: {problem.detail}" if problem.detail else problem.title

    # API helpers

    def overview(self, context: Context, account_id: str) -> JsonObject:
        principal = context.session.principal_id
        assert principal is not None
        overview = self.api.overview(account_id, principal)
        self._remember_locale(context, account_id, overview)
        return overview

    def _remember_locale(self, context: Context, account_id: str, overview: JsonObject) -> None:
        """The account's locale picks the language: from the overview if it has one, else the notification view."""
        if account_id in context.session.locales:
            return
        locale = get(overview, "locale")
        if locale is None:
            principal = context.session.principal_id
            assert principal is not None
            try:
                locale = get(self.api.notification_email(account_id, principal), "locale")
            except ApiProblem:
                known = self.directory.account(account_id)
                locale = known.locale if known else None
        if isinstance(locale, str):
            context.session.locales[account_id] = locale

    # Screens

    def home(self, context: Context) -> Response:
        return Response.redirect("/accounts" if context.session.principal_id else "/signin")

    def signin_form(self, context: Context) -> Response:
        return self.render(
            context,
            "signin.html.j2",
            accounts=self.directory.accounts,
            next=local_path(context.request.query.get("next")),
        )

    def signin(self, context: Context) -> Response:
        principal = context.request.form.get("principal", "")
        target = local_path(context.request.form.get("next")) or "/accounts"
        if principal not in self.directory.principals:
            return self.render(
                context,
                "signin.html.j2",
                status=400,
                accounts=self.directory.accounts,
                next=target,
                error=self._t(context.session)("signin.choose"),
            )
        response = Response.redirect(target)
        response.headers.append(_session_cookie(self.sessions.sign_in(context.session, principal)))
        return response

    def signout(self, context: Context) -> Response:
        self.sessions.drop(context.session.id)
        return Response.redirect("/signin")

    def accounts(self, context: Context) -> Response:
        wanted = context.request.query.get("account", "").strip()
        if wanted:
            return Response.redirect(f"/accounts/{urllib.parse.quote(wanted, safe='')}")
        principal = context.session.principal_id
        assert principal is not None
        return self.render(context, "accounts.html.j2", owned=self.directory.administered_by(principal))

    def account_overview(self, context: Context) -> Response:
        account_id = context.values["account"]
        try:
            overview = self.overview(context, account_id)
        except ApiProblem as problem:
            return self._problem_page(context, problem, account_id)
        t = self._t(context.session, account_id)
        return self.render(
            context,
            "overview.html.j2",
            account_id=account_id,
            overview=overview,
            banners=banners(overview, t),
            methods=methods_by_id(overview),
            method_label=method_label,
            dates_ahead=dates_ahead,
        )

    def billing(self, context: Context) -> Response:
        """`/accounts/{id}/billing`, the overview link of the receipt email."""
        return Response.redirect(f"/accounts/{_quoted(context.values['account'])}")

    def settle_pane(self, context: Context) -> Response:
        account_id = context.values["account"]
        subscription_id = context.request.query.get("subscription", "")
        return self._settle_page(context, account_id, subscription_id, context.request.query.get("method"))

    def _settle_page(
        self,
        context: Context,
        account_id: str,
        subscription_id: str,
        choice: str | None,
        *,
        status: int = 200,
        notice: str | None = None,
        error: ApiProblem | None = None,
        quote: JsonObject | None = None,
    ) -> Response:
        try:
            overview = self.overview(context, account_id)
            t = self._t(context.session, account_id)
            choices = method_choices(overview, t)
            if choice not in {c.value for c in choices}:
                choice = default_choice(choices)
            if quote is None:
                principal = context.session.principal_id
                assert principal is not None
                quote = self.api.quote(account_id, principal, subscription_id, quoted_method_id(choice, overview))
        except ApiProblem as problem:
            return self._problem_page(context, problem, account_id)
        t = self._t(context.session, account_id)
        methods = methods_by_id(overview)
        failed_id = str(get(quote, "failedPaymentMethodId", default=""))
        return self.render(
            context,
            "settle.html.j2",
            status=status,
            account_id=account_id,
            subscription_id=subscription_id,
            quote=quote,
            names=names_by_id(overview),
            failed_method=method_label(methods.get(failed_id), failed_id),
            choices=choices,
            choice=choice,
            idempotency_key=str(uuid.uuid4()),
            notice=notice,
            error=self.describe_problem(error, t) if error else None,
            error_fields=error.fields if error else (),
        )

    def settle(self, context: Context) -> Response:
        account_id = context.values["account"]
        form = context.request.form
        subscription_id = form.get("subscription", "")
        choice = form.get("method", "")
        query = {"subscription": subscription_id, "method": choice}
        if form.get("step") == "review":
            return Response.redirect(f"/accounts/{_quoted(account_id)}/settle?{urllib.parse.urlencode(query)}")
        payment_method = payment_method_body(choice)
        if payment_method is None:
            t = self._t(context.session, account_id)
            return self._settle_page(
                context, account_id, subscription_id, None, status=400, notice=t("settle.choose_method")
            )
        principal = context.session.principal_id
        assert principal is not None
        key = form.get("idempotency_key", "")
        try:
            result = self.api.settle(
                account_id,
                principal,
                subscription_id=subscription_id,
                payment_method=payment_method,
                expected_total={"amount": form.get("amount", ""), "currency": form.get("currency", "")},
                idempotency_key=key,
                # The version belongs to the quote of the method shown; for another choice the total decides.
                quote_version=(form.get("quote_version") or None) if form.get("quoted_method") == choice else None,
            )
        except ApiProblem as problem:
            return self._settle_refused(context, account_id, subscription_id, choice, problem)
        context.session.keep_result(key, {**result, "subscriptionId": subscription_id})
        return Response.redirect(
            f"/accounts/{_quoted(account_id)}/settle/result?{urllib.parse.urlencode({'key': key})}"
        )

    def _settle_refused(
        self, context: Context, account_id: str, subscription_id: str, choice: str, problem: ApiProblem
    ) -> Response:
        new_quote = problem.new_quote if problem.status == 409 else None
        if new_quote is not None:
            t = self._t(context.session, account_id)
            total = get(new_quote, "total", default={})
            notice = t(
                "settle.quote_changed", total=t.money(str(total.get("amount", "")), str(total.get("currency", "")))
            )
            return self._settle_page(
                context, account_id, subscription_id, choice, status=409, notice=notice, quote=new_quote
            )
        if problem.status in {403, 404, 502}:
            return self._problem_page(context, problem, account_id)
        return self._settle_page(
            context, account_id, subscription_id, choice, status=_page_status(problem), error=problem
        )

    def settle_result(self, context: Context) -> Response:
        account_id = context.values["account"]
        result = context.session.result(context.request.query.get("key", ""))
        t = self._t(context.session, account_id)
        if result is None:
            return self._error_page(context, 404, t("result.expired"), account_id=account_id)
        try:
            overview = self.overview(context, account_id)
        except ApiProblem as problem:
            return self._problem_page(context, problem, account_id)
        methods = methods_by_id(overview)
        active = str(get(result, "activePaymentMethodId", default=""))
        reason = str(get(result, "reason", default="") or "")
        return self.render(
            context,
            "result.html.j2",
            account_id=account_id,
            result=result,
            names=names_by_id(overview),
            states={s["id"]: s.get("state") for s in overview.get("subscriptions", [])},
            active_method=method_label(methods.get(active), active),
            reason=t.label("reason", reason),
        )

    def notifications(self, context: Context) -> Response:
        return self._notifications_page(context, None)

    def change_notifications(self, context: Context) -> Response:
        return self._notifications_page(context, context.request.form.get("email", "").strip())

    def _notifications_page(self, context: Context, new_address: str | None) -> Response:
        account_id = context.values["account"]
        principal = context.session.principal_id
        assert principal is not None
        error: ApiProblem | None = None
        try:
            view = self.api.notification_email(account_id, principal, new_address)
        except ApiProblem as problem:
            if new_address is None or problem.status in {403, 404, 502}:
                return self._problem_page(context, problem, account_id)
            error = problem
            try:
                view = self.api.notification_email(account_id, principal)
            except ApiProblem as again:
                return self._problem_page(context, again, account_id)
        locale = get(view, "locale")
        if isinstance(locale, str):
            context.session.locales[account_id] = locale
        t = self._t(context.session, account_id)
        return self.render(
            context,
            "notifications.html.j2",
            status=422 if error else 200,
            account_id=account_id,
            view=view,
            notifications=get(view, "lastNotifications", "notifications", default=[]),
            saved=new_address is not None and error is None,
            attempted=new_address if error else None,
            error=self.describe_problem(error, t) if error else None,
            error_fields=error.fields if error else (),
        )

    def outbox(self, context: Context) -> Response:
        return self.render(
            context,
            "outbox.html.j2",
            folder=str(self.outbox_dir),
            exists=self.outbox_dir.is_dir(),
            entries=list_outbox(self.outbox_dir),
        )

    def outbox_email(self, context: Context) -> Response:
        try:
            email = read_email(self.outbox_dir, context.values["name"])
        except OutboxEmailNotFoundError:
            return self._error_page(context, 404, self._t(context.session)("error.page_not_found"))
        return self.render(
            context,
            "outbox_email.html.j2",
            email=email,
            text=link_own_urls(email.text, self.own_origins),
        )

    def outbox_email_html(self, context: Context) -> Response:
        try:
            email = read_email(self.outbox_dir, context.values["name"])
        except OutboxEmailNotFoundError:
            return Response(404, b"not found", "text/plain; charset=utf-8")
        document = f'<!doctype html><meta charset="utf-8"><title>email</title>{sanitize_html(email.html or "")}'
        return Response(200, document.encode(), headers=list(EMAIL_HTML_HEADERS))


def _page_status(problem: ApiProblem) -> int:
    return problem.status if 400 <= problem.status < 600 else 502


def _quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _session_cookie(session: Session) -> tuple[str, str]:
    return ("Set-Cookie", f"{COOKIE_NAME}={session.id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400")


def _same_token(supplied: str, expected: str) -> bool:
    """The form token check, in constant time (bytes: compare_digest refuses non-ASCII text)."""
    return hmac.compare_digest(supplied.encode(), expected.encode())


def _route(
    method: str, pattern: str, handler: Handler, *, signed_in: bool = True
) -> tuple[str, re.Pattern[str], Handler, bool]:
    return method, re.compile(pattern), handler, signed_in


ROUTES: tuple[tuple[str, re.Pattern[str], Handler, bool], ...] = (
    _route("GET", r"/", PortalApp.home, signed_in=False),
    _route("GET", r"/signin", PortalApp.signin_form, signed_in=False),
    _route("POST", r"/signin", PortalApp.signin, signed_in=False),
    _route("POST", r"/signout", PortalApp.signout, signed_in=False),
    _route("GET", r"/accounts", PortalApp.accounts),
    _route("GET", rf"/accounts/{_ACCOUNT_ID}", PortalApp.account_overview),
    _route("GET", rf"/accounts/{_ACCOUNT_ID}/billing", PortalApp.billing),
    _route("GET", rf"/accounts/{_ACCOUNT_ID}/settle", PortalApp.settle_pane),
    _route("POST", rf"/accounts/{_ACCOUNT_ID}/settle", PortalApp.settle),
    _route("GET", rf"/accounts/{_ACCOUNT_ID}/settle/result", PortalApp.settle_result),
    _route("GET", rf"/accounts/{_ACCOUNT_ID}/notifications", PortalApp.notifications),
    _route("POST", rf"/accounts/{_ACCOUNT_ID}/notifications", PortalApp.change_notifications),
    _route("GET", r"/outbox", PortalApp.outbox, signed_in=False),
    _route("GET", rf"/outbox/{_EMAIL_NAME}", PortalApp.outbox_email, signed_in=False),
    _route("GET", rf"/outbox/{_EMAIL_NAME}/html", PortalApp.outbox_email_html, signed_in=False),
)
