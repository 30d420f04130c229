"""A tiny app for the devhost end-to-end tests: one blueprint per trigger kind."""

from __future__ import annotations

import asyncio
import json
import os
import time

import azure.functions as func
from azure.functions.queue import QueueMessage

http_bp = func.Blueprint()
queue_bp = func.Blueprint()
timer_bp = func.Blueprint()


@http_bp.route(route="echo/{name}", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    payload = {
        "name": req.route_params["name"],
        "method": req.method,
        "body": req.get_body().decode(),
        "function": context.function_name,
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json", headers={"X-Sample": "yes"})


@http_bp.route(route="ping", auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> str:
    return "pong"


@http_bp.route(route="square/{n:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def square(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    n = int(req.route_params["n"])
    return func.HttpResponse(str(n * n), status_code=201)


@http_bp.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@http_bp.route(route="slow", auth_level=func.AuthLevel.ANONYMOUS)
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(float(req.params.get("seconds", "1")))
    return func.HttpResponse("done")


@queue_bp.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
def work(msg: QueueMessage) -> None:
    body = msg.get_body().decode()
    with open(os.environ["SAMPLE_QUEUE_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{body}\t{msg.dequeue_count}\n")
    if body == "fail":
        raise ValueError("asked to fail")


@timer_bp.timer_trigger(arg_name="timer", schedule="%SAMPLE_SCHEDULE%")
def tick(timer: func.TimerRequest) -> None:
    record = {"past_due": timer.past_due, "next": timer.schedule_status["Next"]}
    with open(os.environ["SAMPLE_TIMER_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


app = func.FunctionApp()
app.register_functions(http_bp)
app.register_functions(queue_bp)
app.register_functions(timer_bp)
