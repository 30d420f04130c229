"""Import `function_app.app` and index its functions the way the Python worker does."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import azure.functions as func

from devhost.ncrontab import CronSchedule, IntervalSchedule, parse_schedule
from devhost.routing import compile_route
from devhost.settings import resolve_references

HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"
_QUEUE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,54}[a-z0-9]$")  # 63 minus room for "-poison"

QueueBodyType = Literal["message", "str", "bytes"]


class AppLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    function: Callable[..., Any]
    binding_name: str
    takes_context: bool


@dataclass(frozen=True)
class HttpFunction(FunctionSpec):
    route: str
    methods: frozenset[str] | None
    auth_level: str


@dataclass(frozen=True)
class QueueFunction(FunctionSpec):
    queue_name: str
    connection_setting: str
    connection_string: str
    body_type: QueueBodyType


@dataclass(frozen=True)
class EventGridFunction(FunctionSpec):
    """Reached through the host's Event Grid webhook (devhost/eventgrid.py), by its name."""


@dataclass(frozen=True)
class TimerFunction(FunctionSpec):
    schedule_text: str
    schedule: CronSchedule | IntervalSchedule
    run_on_startup: bool


def import_app(app_dir: Path) -> func.FunctionApp:
    """Import `function_app` from `app_dir` and return its module-level `app`."""
    if not (app_dir / "function_app.py").is_file():
        raise AppLoadError(f"no function_app.py in {app_dir}")
    sys.path.insert(0, str(app_dir))
    module = importlib.import_module("function_app")
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        raise AppLoadError(f"{app_dir / 'function_app.py'} must define a module-level `app = func.FunctionApp()`")
    return app


def index_functions(app: func.FunctionApp, environ: Mapping[str, str] | None = None) -> list[FunctionSpec]:
    """Turn the app's indexed functions into specs; unsupported triggers or bindings are errors."""
    source = os.environ if environ is None else environ
    try:
        functions = app.get_functions()
    except ValueError as error:
        raise AppLoadError(f"function indexing failed: {error}") from error
    return [_spec(function, source) for function in functions]


def _spec(function: func.Function, environ: Mapping[str, str]) -> FunctionSpec:
    name = str(function.get_function_name())
    trigger = function.get_trigger()
    if trigger is None:
        raise AppLoadError(f"function '{name}' has no trigger")
    _check_bindings(name, function, trigger)
    user_function = function.get_user_function()
    common: dict[str, Any] = {
        "name": name,
        "function": user_function,
        "binding_name": str(trigger.name),
        "takes_context": "context" in inspect.signature(user_function).parameters,
    }
    try:
        if trigger.type == HTTP_TRIGGER:
            return _http_spec(trigger, common)
        if trigger.type == QUEUE_TRIGGER:
            return _queue_spec(trigger, common, environ)
        if trigger.type == TIMER_TRIGGER:
            return _timer_spec(trigger, common, environ)
        if trigger.type == EVENT_GRID_TRIGGER:
            return EventGridFunction(**common)
    except ValueError as error:
        raise AppLoadError(f"function '{name}': {error}") from error
    raise AppLoadError(
        f"function '{name}' uses trigger '{trigger.type}'; the local host supports only "
        f"{HTTP_TRIGGER}, {QUEUE_TRIGGER}, {TIMER_TRIGGER} and {EVENT_GRID_TRIGGER}"
    )


def _check_bindings(name: str, function: func.Function, trigger: Any) -> None:
    for binding in function.get_bindings():
        if binding is trigger:
            continue
        if trigger.type == HTTP_TRIGGER and binding.type == "http" and binding.name == "$return":
            continue
        raise AppLoadError(
            f"function '{name}' uses the '{binding.type}' binding '{binding.name}'; the local host supports "
            "only the trigger binding (and the HTTP $return output)"
        )


def _http_spec(trigger: Any, common: dict[str, Any]) -> HttpFunction:
    methods = getattr(trigger, "methods", None)
    auth_level = getattr(trigger, "auth_level", None)
    route = str(getattr(trigger, "route", None) or common["name"]).strip("/")
    compile_route(route)
    return HttpFunction(
        **common,
        route=route,
        methods=frozenset(_enum_text(method).upper() for method in methods) if methods else None,
        auth_level=_enum_text(auth_level).lower() if auth_level is not None else "function",
    )


def _queue_spec(trigger: Any, common: dict[str, Any], environ: Mapping[str, str]) -> QueueFunction:
    queue_name = resolve_references(str(trigger.queue_name), environ)
    if not _QUEUE_NAME.match(queue_name):
        raise ValueError(
            f"'{queue_name}' is not a valid queue name (3-56 lowercase letters, digits and single hyphens)"
        )
    setting = str(getattr(trigger, "connection", None) or "AzureWebJobsStorage")
    return QueueFunction(
        **common,
        queue_name=queue_name,
        connection_setting=setting,
        connection_string=_connection_string(setting, environ),
        body_type=_queue_body_type(common["function"], common["binding_name"]),
    )


def _timer_spec(trigger: Any, common: dict[str, Any], environ: Mapping[str, str]) -> TimerFunction:
    schedule_text = str(trigger.schedule)
    schedule = parse_schedule(schedule_text, environ)
    schedule.next_after(datetime.now(UTC))  # a schedule that never fires fails now, not at the first tick
    return TimerFunction(
        **common,
        schedule_text=schedule_text,
        schedule=schedule,
        run_on_startup=bool(getattr(trigger, "run_on_startup", False)),
    )


def _connection_string(setting: str, environ: Mapping[str, str]) -> str:
    for candidate in (setting, f"AzureWebJobs{setting}"):
        value = environ.get(candidate)
        if value:
            return value
    raise ValueError(f"connection setting '{setting}' is not set (nor 'AzureWebJobs{setting}')")


def _queue_body_type(user_function: Callable[..., Any], binding_name: str) -> QueueBodyType:
    try:
        annotation = typing.get_type_hints(user_function).get(binding_name)
    except (NameError, TypeError):
        return "message"
    if annotation is str:
        return "str"
    if annotation is bytes:
        return "bytes"
    return "message"


def _enum_text(value: object) -> str:
    return str(getattr(value, "value", value))
