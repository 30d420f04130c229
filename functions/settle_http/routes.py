"""HTTP routes of the portal's settle-balance flow, and support's collection holds (admin key); each decodes, calls
one service and maps the answer."""

from __future__ import annotations

import json

import azure.functions as func

from functions.settle_http.models import (
    HoldRequest,
    NotificationEmailRequest,
    OverviewRequest,
    QuoteRequest,
    ReleaseRequest,
    SettleRequest,
)
from functions.settle_http.pipeline import handle
from functions.settle_http.problems import json_response
from shared.bootstrap import Dependencies
from shared.domain.settle_balance import PaymentMethodNotFoundError, SettleCommand
from shared.domain.settlement import SettlementStatus
from shared.services.views import hold_answer

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for load balancers and the local host's smoke test; touches no storage."""
    return func.HttpResponse(json.dumps({"status": "ok"}), mimetype="application/json")


@bp.function_name("settlement_overview")
@bp.route(route="accounts/{accountId}/overview", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def overview(req: func.HttpRequest) -> func.HttpResponse:
    """Subscriptions, outstanding amounts, open alerts and whether settle balance applies."""

    def run(deps: Dependencies, account_id: str, body: OverviewRequest) -> func.HttpResponse:
        return json_response(deps.account_overview(account_id, body.principal_id).to_wire())

    return handle(req, OverviewRequest, run)


@bp.function_name("settlement_quote")
@bp.route(route="accounts/{accountId}/settlement/quote", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def quote(req: func.HttpRequest) -> func.HttpResponse:
    """The total to pay at once, line by line, with a version that detects a stale quote."""

    def run(deps: Dependencies, account_id: str, body: QuoteRequest) -> func.HttpResponse:
        result = deps.quote_settlement(account_id, body.principal_id, body.subscription_id, body.payment_method_id)
        return json_response(result.to_wire())

    return handle(req, QuoteRequest, run)


@bp.function_name("settlement_settle")
@bp.route(route="accounts/{accountId}/settlement", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def settle(req: func.HttpRequest) -> func.HttpResponse:
    """Pay the whole balance once per Idempotency-Key: 200 succeeded or declined, 202 pending."""

    def run(deps: Dependencies, account_id: str, body: SettleRequest) -> func.HttpResponse:
        command = SettleCommand(
            account_id=account_id,
            principal_id=body.principal_id,
            subscription_id=body.subscription_id,
            payment=body.payment_method.to_choice(),
            expected_total=body.expected_total.to_money(),
            quote_version=body.quote_version,
            idempotency_key=body.idempotency_key,
        )
        outcome = deps.settle_balance(command)
        status = 202 if outcome.status is SettlementStatus.PENDING else 200
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return json_response(outcome.to_wire(), status, headers)

    return handle(req, SettleRequest, run, pointers={PaymentMethodNotFoundError: "#/paymentMethod/id"})


@bp.function_name("settlement_notification_email")
@bp.route(route="accounts/{accountId}/notification-email", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def notification_email_route(req: func.HttpRequest) -> func.HttpResponse:
    """Read the billing notification address and the last notifications' status, or change the address."""

    def run(deps: Dependencies, account_id: str, body: NotificationEmailRequest) -> func.HttpResponse:
        view = deps.notification_email(account_id, body.principal_id, body.notification_email)
        return json_response(view.to_wire())

    return handle(req, NotificationEmailRequest, run)


@bp.function_name("account_hold")
@bp.route(route="accounts/{accountId}/hold", methods=["PUT"], auth_level=func.AuthLevel.ADMIN)
def hold(req: func.HttpRequest) -> func.HttpResponse:
    """Support holds the account's collection, or changes the hold's reason and end (its `since` stays)."""

    def run(deps: Dependencies, account_id: str, body: HoldRequest) -> func.HttpResponse:
        change = deps.hold_account(account_id, reason=body.reason, set_by=body.set_by, until=body.until)
        return json_response(hold_answer(account_id, change).to_wire())

    return handle(req, HoldRequest, run, signed=False)


@bp.function_name("account_release")
@bp.route(route="accounts/{accountId}/hold", methods=["DELETE"], auth_level=func.AuthLevel.ADMIN)
def release(req: func.HttpRequest) -> func.HttpResponse:
    """Support ends the account's hold: pending deadlines move later by the time held (`not_held`: nothing to do)."""

    def run(deps: Dependencies, account_id: str, body: ReleaseRequest) -> func.HttpResponse:
        change = deps.release_account(account_id, released_by=body.released_by)
        return json_response(hold_answer(account_id, change).to_wire())

    return handle(req, ReleaseRequest, run, signed=False)
