"""The pastdue function app: one blueprint per trigger folder, nothing else."""

from __future__ import annotations

import azure.functions as func

from functions.email_delivery_reports import bp as email_delivery_reports
from functions.payment_failed_queue import bp as payment_failed_queue
from functions.retention_timer import bp as retention_timer
from functions.retention_worker import bp as retention_worker
from functions.settle_http import bp as settle_http

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (settle_http, payment_failed_queue, retention_timer, retention_worker, email_delivery_reports):
    app.register_functions(blueprint)
