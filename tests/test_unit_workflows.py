"""The workflow graph logic: cycle detection, what a failure blocks, readiness, and input rendering."""

from __future__ import annotations

from athena_server.control.workflow_graph import Definition, Dependency, Step, cycle_nodes, render_input


def diamond() -> Definition:
    steps = tuple(Step(s, "d", "p") for s in "ABCDE")
    deps = tuple(Dependency(a, b) for a, b in [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")])
    return Definition(steps, deps)


def test_cycle_nodes_are_those_left_with_incoming_edges_sorted() -> None:
    assert cycle_nodes(["a", "b", "c"], {("a", "b"), ("b", "c")}) == []
    assert cycle_nodes(["a", "b", "c", "d"], {("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")}) == ["b", "c", "d"]
    assert cycle_nodes(["x", "y"], {("x", "y"), ("y", "x")}) == ["x", "y"]


def test_descendants_and_blocking() -> None:
    d = diamond()
    assert d.descendants(["C"]) == {"D"}
    assert d.descendants(["A"]) == {"B", "C", "D"}
    assert d.descendants(["E"]) == set()
    assert d.blocking("D", ok={"A", "B"}) == ["C"]
    assert d.blocking("D", ok={"A", "B", "C"}) == []
    assert d.blocking("A", ok=set()) == []


def test_definition_round_trips_through_its_json() -> None:
    d = Definition(
        (
            Step("a", "d1", "p1", outputs=("x",), max_attempts=2, timeout_ms=500, metadata={"k": "v"}),
            Step("b", "d2", "p2"),
        ),
        (Dependency("a", "b"),),
    )
    assert Definition.from_json(d.to_json()) == d


def test_render_input_fills_placeholders_and_appends_the_rest() -> None:
    assert render_input("Use {{ summary }} and {{summary}}", {"summary": "S"}) == "Use S and S"
    assert render_input("Plain", {"notes": "N"}) == "Plain\n\n[notes]\nN"
    assert render_input("Plain", {}) == "Plain"
