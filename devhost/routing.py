"""HTTP trigger route templates (`{name}`, `{name:int}`, `{name?}`, `{*rest}`) matched like the Functions host."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_PARAMETER = re.compile(r"\{([^{}]+)\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"(?:\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?)",
    "float": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
}
# Lower ranks win: literals before constrained parameters before plain, optional and catch-all ones.
_LITERAL, _CONSTRAINED, _PLAIN, _OPTIONAL, _CATCH_ALL = range(5)


class RouteTemplateError(ValueError):
    pass


@dataclass(frozen=True)
class _Parameter:
    name: str
    pattern: str
    optional: bool
    catch_all: bool
    rank: int


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.fullmatch("/" + path.strip("/"))
        if found is None:
            return None
        return {name: value for name, value in zip(self.names, found.groups(), strict=True) if value is not None}


def compile_route(template: str) -> RouteTemplate:
    segments = [segment for segment in template.strip("/").split("/") if segment] if template.strip("/") else []
    pattern = ""
    names: list[str] = []
    precedence: list[int] = []
    for index, segment in enumerate(segments):
        parameters = [_parameter(text, template) for text in _PARAMETER.findall(segment)]
        if any(parameter.catch_all for parameter in parameters) and index != len(segments) - 1:
            raise RouteTemplateError(f"route '{template}': a catch-all parameter must be the last segment")
        names.extend(parameter.name for parameter in parameters)
        precedence.append(max((parameter.rank for parameter in parameters), default=_LITERAL))
        segment_pattern = _segment_pattern(segment, parameters, template)
        if pattern.endswith(")?") and not segment_pattern.endswith(")?"):
            raise RouteTemplateError(f"route '{template}': only the last segments may be optional")
        pattern += segment_pattern
    if len(set(names)) != len(names):
        raise RouteTemplateError(f"route '{template}' repeats a parameter name")
    return RouteTemplate(template, re.compile(pattern or "/", re.IGNORECASE), tuple(names), tuple(precedence))


def _parameter(text: str, template: str) -> _Parameter:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    optional = body.endswith("?")
    body = body.rstrip("?").split("=", 1)[0]
    name, _, constraint = body.partition(":")
    if not name.isidentifier():
        raise RouteTemplateError(f"route '{template}': '{{{text}}}' is not a valid parameter")
    if constraint and constraint not in _CONSTRAINTS:
        raise RouteTemplateError(
            f"route '{template}': constraint '{constraint}' is not supported (use one of {sorted(_CONSTRAINTS)})"
        )
    pattern = ".*" if catch_all else _CONSTRAINTS.get(constraint, "[^/]+")
    rank = _CATCH_ALL if catch_all else _OPTIONAL if optional else _CONSTRAINED if constraint else _PLAIN
    return _Parameter(name, pattern, optional or catch_all, catch_all, rank)


def _segment_pattern(segment: str, parameters: list[_Parameter], template: str) -> str:
    pieces = _PARAMETER.split(segment)
    literals, parameter_texts = pieces[0::2], pieces[1::2]
    if len(parameter_texts) != len(parameters):
        raise RouteTemplateError(f"route '{template}': malformed segment '{segment}'")
    if "{" in "".join(literals) or "}" in "".join(literals):
        raise RouteTemplateError(f"route '{template}': unbalanced braces in segment '{segment}'")
    body = re.escape(literals[0])
    for parameter, literal in zip(parameters, literals[1:], strict=True):
        body += f"({parameter.pattern})" + re.escape(literal)
    if len(parameters) == 1 and parameters[0].optional and segment == "{" + parameter_texts[0] + "}":
        return f"(?:/{body})?"
    if any(parameter.optional and not parameter.catch_all for parameter in parameters):
        raise RouteTemplateError(f"route '{template}': an optional parameter must be a whole segment")
    return "/" + body


@dataclass(frozen=True)
class Route(Generic[T]):
    template: RouteTemplate
    methods: frozenset[str] | None
    target: T


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    route: Route[T]
    params: dict[str, str]


class Router(Generic[T]):
    def __init__(self) -> None:
        self._routes: list[Route[T]] = []

    def add(self, template: str, methods: frozenset[str] | None, target: T) -> None:
        self._routes.append(Route(compile_route(template), methods, target))
        self._routes.sort(key=lambda route: route.template.precedence)

    def resolve(self, path: str, method: str) -> tuple[RouteMatch[T] | None, frozenset[str]]:
        """The route for `path` and `method`, else None and the methods the path would allow."""
        allowed: set[str] = set()
        for route in self._routes:
            params = route.template.match(path)
            if params is None:
                continue
            if route.methods is None or method in route.methods:
                return RouteMatch(route, params), frozenset()
            allowed |= route.methods
        return None, frozenset(allowed)
