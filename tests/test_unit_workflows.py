"""The workflow graph logic: cycle detection, what a failure blocks, readiness, and input rendering; and how a
run's steps show in its answer (progress counts, what a waiting step waits for)."""

from __future__ import annotations

from athena.v1 import workflows_pb2
from athena_client.vocab import WorkflowRunStatus
from athena_server.control.workflow_graph import Definition, Dependency, Step, cycle_nodes, render_input
from athena_server.control.workflow_messages import progress_message, run_message
from athena_server.storage.workflows import RunRow, StepRow


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


def step_row(step_id: str, status: WorkflowRunStatus, position: int) -> StepRow:
    return StepRow(step_id, position, status, 1, None, None, None, None, None, 1_000)


def test_a_run_answer_counts_steps_by_status_and_names_what_pending_steps_wait_for() -> None:
    statuses = [
        WorkflowRunStatus.OK,
        WorkflowRunStatus.FAILED,
        WorkflowRunStatus.RUNNING,
        WorkflowRunStatus.PENDING,
        WorkflowRunStatus.PENDING,
    ]
    steps = [step_row(step_id, status, i) for i, (step_id, status) in enumerate(zip("ABCDE", statuses, strict=True))]
    progress = progress_message(steps)
    assert (progress.total_steps, progress.completed_steps, progress.failed_steps) == (5, 1, 1)
    assert (progress.running_steps, progress.pending_steps, progress.percent_complete) == (1, 2, 20.0)
    assert progress_message([]).percent_complete == 0.0

    run = RunRow("r1", "w1", WorkflowRunStatus.RUNNING, None, "p1", 1_000, 1_000, 1_000, None)
    message = run_message(run, steps, diamond())
    assert message.status == workflows_pb2.WORKFLOW_RUN_STATUS_RUNNING
    # D waits for B and C (A succeeded); E depends on nothing; only pending steps name blockers.
    assert [list(s.blocking_step_ids) for s in message.steps] == [[], [], [], ["B", "C"], []]
    assert message.progress == progress
    assert not message.HasField("finished_at")
