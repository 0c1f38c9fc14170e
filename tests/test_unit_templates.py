"""Unit tests for the catalog's pure logic: run-template placeholders and rendering, parameter cleaning, and
the harness-profile egress host rule."""

from __future__ import annotations

import pytest

from athena_server.control.harness_profiles import is_egress_host
from athena_server.control.run_templates import clean_params, missing, placeholders, render
from athena_server.errors import AthenaError


def _config_error(exc: pytest.ExceptionInfo[AthenaError]) -> str:
    assert exc.value.code_name == "CONFIG_ERROR"
    return exc.value.message


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("no placeholders", []),
        ("{{a}}", ["a"]),
        ("{{ a }} and {{a}} and {{   a\t}}", ["a"]),
        ("{{ zeta }} {{ Alpha }} {{ _beta1 }}", ["Alpha", "_beta1", "zeta"]),
        ("{{ 1a }} {{ a-b }} {{}} {{ a b }} { a } {{{ c }}}", ["c"]),
        ("{{ repo }}/{{ branch }}", ["branch", "repo"]),
    ],
)
def test_placeholders_are_distinct_sorted_and_follow_the_name_rule(template: str, names: list[str]) -> None:
    assert placeholders(template) == names


def test_render_substitutes_every_occurrence() -> None:
    out = render("Review {{ repo }} on {{branch}}; then {{ repo }} again.", {"repo": "athena", "branch": "main"}, "x")
    assert out == "Review athena on main; then athena again."


def test_render_ignores_extra_params_and_leaves_non_placeholders_alone() -> None:
    assert render("{{ a }} {{ 1b }} {b}", {"a": "A", "unused": "u"}, "x") == "A {{ 1b }} {b}"


def test_render_is_one_pass() -> None:
    # A value that looks like a placeholder is not expanded again.
    assert render("{{ a }}", {"a": "{{ b }}", "b": "nope"}, "x") == "{{ b }}"


def test_render_without_placeholders_returns_the_text() -> None:
    assert render("plain text", {}, "x") == "plain text"


def test_render_names_missing_placeholders_sorted_with_the_context() -> None:
    with pytest.raises(AthenaError) as exc:
        render("{{ zeta }} {{ alpha }} {{ mid }}", {"mid": "m"}, "runTemplates.run.params")
    assert _config_error(exc) == "runTemplates.run.params is missing values for placeholders: alpha, zeta."


def test_missing_lists_uncovered_placeholders() -> None:
    assert missing("{{ b }} {{ a }} {{ c }}", {"c": "x"}) == ["a", "b"]
    assert missing("{{ a }}", {"a": "x"}) == []


def test_clean_params_trims_keys_and_values() -> None:
    assert clean_params({" a ": " one ", "b": "two"}, "ctx") == {"a": "one", "b": "two"}
    assert clean_params({}, "ctx") == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"a": " "}, "runTemplates.create.defaultParams.a must be a non-empty string."),
        ({"a": ""}, "runTemplates.create.defaultParams.a must be a non-empty string."),
        ({" ": "x"}, "runTemplates.create.defaultParams keys must be non-empty strings."),
    ],
)
def test_clean_params_rejects_empty_keys_and_values(params: dict[str, str], message: str) -> None:
    with pytest.raises(AthenaError) as exc:
        clean_params(params, "runTemplates.create.defaultParams")
    assert _config_error(exc) == message


@pytest.mark.parametrize(
    "host",
    ["example.com", "api.example.com", "*.example.com", "localhost", "10.0.0.1", "255.255.255.255", "a-b.c0.io"],
)
def test_egress_hosts_accepted(host: str) -> None:
    assert is_egress_host(host)


@pytest.mark.parametrize(
    "host",
    ["", "*", "*.", "bad_host.com", "-a.com", "a-.com", "a..com", ".com", "http://a.com", "a.com:80", "*.*.com", "a b"],
)
def test_egress_hosts_rejected(host: str) -> None:
    assert not is_egress_host(host)
