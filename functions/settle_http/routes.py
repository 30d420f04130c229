from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for load balancers and the local host's smoke test; touches no storage."""
    return func.HttpResponse(json.dumps({"status": "ok"}), mimetype="application/json")
