from __future__ import annotations

import pytest

from devhost.routing import Router, RouteTemplateError, compile_route


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("echo/{name}", "echo/bob", {"name": "bob"}),
        ("echo/{name}", "ECHO/bob/", {"name": "bob"}),
        ("items/{id:int}", "items/42", {"id": "42"}),
        ("items/{id:int}", "items/x", None),
        ("files/{name}.{ext}", "files/a.b.txt", {"name": "a.b", "ext": "txt"}),
        ("list/{page?}", "list", {}),
        ("list/{page?}", "list/2", {"page": "2"}),
        ("static/{*rest}", "static/css/site.css", {"rest": "css/site.css"}),
        ("accounts/{id}/settlement", "accounts/a1/settlement", {"id": "a1"}),
        ("accounts/{id}/settlement", "accounts/a1", None),
    ],
)
def test_templates_match_paths_and_extract_route_params(
    template: str, path: str, params: dict[str, str] | None
) -> None:
    assert compile_route(template).match(path) == params


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("a/{b?}/c", "only the last segments may be optional"),
        ("a/{x:length(3)}", r"constraint 'length\(3\)' is not supported"),
        ("a/{*rest}/b", "catch-all parameter must be the last segment"),
        ("a/{x}/{x}", "repeats a parameter name"),
        ("a/{x", "unbalanced braces"),
    ],
)
def test_invalid_templates_are_rejected(template: str, problem: str) -> None:
    with pytest.raises(RouteTemplateError, match=problem):
        compile_route(template)


def test_literal_segments_win_over_parameters_whatever_the_registration_order() -> None:
    router: Router[str] = Router()
    router.add("items/{id}", None, "by id")
    router.add("items/new", None, "new")

    match, _ = router.resolve("items/new", "GET")

    assert match is not None
    assert match.route.target == "new"


def test_a_path_matching_only_other_methods_reports_the_allowed_ones() -> None:
    router: Router[str] = Router()
    router.add("items", frozenset({"GET", "HEAD"}), "list")

    match, allowed = router.resolve("items", "POST")

    assert match is None
    assert allowed == frozenset({"GET", "HEAD"})
