"""Personas end to end (seed 002 #27): a code review of a real git range through REST and gRPC, the review
being an ordinary run (run record, `run.*` events, the review JSON as its output), the persona result event,
stdout modes, the repair attempt and the server's own rules (P1 fails the gate, findings outside the diff
are flagged), user-defined personas from the workspace, and every preflight refusal: not a repository, a
dirty worktree, revisions that do not resolve, a path outside the allowed roots (also through a symlink),
revisions shaped as options or shell commands, an unknown persona."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import personas_pb2, personas_pb2_grpc
from athena_client.contract import message_to_json
from athena_server.personas.constants import REVIEW_INPUT_MAX_CHARS
from athena_server.personas.mock_review import OUTSIDE_FILE
from athena_server.personas.prompt import MARKER, REPAIR_MARKER
from tests.support.events import events_of
from tests.support.processes import Served, serving
from tests.support.rpc_calls import grpc_outcome
from tests.support.runs import wait_active
from tests.support.shapes import assert_iso, error_of, new_session, ok_data
from tests.support.waiting import wait_until

RESULT_KEYS = {
    "schemaVersion",
    "status",
    "personaName",
    "runId",
    "sessionId",
    "repoPath",
    "headRef",
    "baseRef",
    "startedAt",
    "finishedAt",
    "mergeGate",
    "findings",
    "reportMarkdown",
    "baseRefResolvedFrom",
    "baseCommit",
    "headCommit",
    "changedFiles",
    "diffTruncated",
    "repairAttempted",
}
CUSTOM_RUBRIC = "Check only that every file ends with a newline."


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def make_repo(path: Path) -> Path:
    """main: a.txt; feature (checked out): a.txt changed, src/n.py added."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    (path / "a.txt").write_text("one\ntwo\nthree\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    git(path, "checkout", "-qb", "feature")
    (path / "a.txt").write_text("one\nTWO\nthree\n")
    (path / "src").mkdir()
    (path / "src" / "n.py").write_text("print('new')\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "change")
    return path


def add_big_branch(path: Path) -> None:
    """`big`: main plus a file larger than the review's diff budget; `feature` stays checked out."""
    git(path, "checkout", "-qb", "big", "main")
    (path / "big.txt").write_text("".join(f"line {i} of a long file\n" for i in range(3000)))
    git(path, "add", ".")
    git(path, "commit", "-qm", "big")
    git(path, "checkout", "-q", "feature")


@dataclass
class Setup:
    served: Served
    workspace: Path
    outside: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("personas")
    ws, outside, extra = base / "ws", base / "outside", base / "extra"
    add_big_branch(make_repo(ws / "repo"))
    make_repo(outside / "repo")
    make_repo(extra / "repo")
    dirty = make_repo(ws / "dirty")
    (dirty / "a.txt").write_text("uncommitted\n")
    (ws / "plain").mkdir()
    git(ws, "clone", "-q", str(ws / "repo"), "clone")  # no local main; origin/HEAD is origin/feature
    trunk = ws / "trunk"
    trunk.mkdir()
    git(trunk, "init", "-q", "-b", "trunk")
    git(trunk, "-c", "user.email=t@example.com", "-c", "user.name=T", "commit", "-q", "--allow-empty", "-m", "x")
    (ws / "link").symlink_to(outside / "repo")
    own = ws / "personas" / "tidy"
    own.mkdir(parents=True)
    (own / "persona.json").write_text(json.dumps({"schemaVersion": 1, "name": "tidy", "requireCleanWorktree": False}))
    (own / "rubric.md").write_text(CUSTOM_RUBRIC)
    with serving(ws, env={"ATHENA_PERSONA_REPO_ROOTS": str(extra)}) as served:
        yield Setup(served, ws, outside)


@pytest.fixture
def client(setup: Setup) -> httpx.Client:
    """REST to the module's server (whose workspace holds the repositories)."""
    return setup.served.rest


@pytest.fixture
def stub(setup: Setup) -> personas_pb2_grpc.PersonaServiceStub:
    return personas_pb2_grpc.PersonaServiceStub(setup.served.channel)


def review(client: httpx.Client, **body: Any) -> dict[str, Any]:
    request = {"name": "code-review", "repoPath": "repo", "headRef": "feature", **body}
    data: dict[str, Any] = ok_data(client.post("/api/v1/personas/run", json=request))
    assert set(data) == {"result", "stdout"}
    return data


def events_of_review(client: httpx.Client, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a review's run (every page of its session's log)."""
    return events_of(client, result["sessionId"], run_id=result["runId"])


def mock_finding(name: str) -> dict[str, Any]:
    return {
        "priority": "P3",
        "confidence": 0.5,
        "title": f"Reviewed {name}",
        "message": f"The mock provider looked at {name} and found nothing specific.",
        "file": name,
        "outsideDiff": False,
    }


# --------------------------------------------------------------------------------------------- the review


def test_seed_review_shape_over_rest(setup: Setup, client: httpx.Client) -> None:
    data = review(client, baseRef="main", stdout="summary")
    result = data["result"]
    assert set(result) == RESULT_KEYS
    assert (result["schemaVersion"], result["status"], result["personaName"]) == (1, "ok", "code-review")
    assert result["runId"].startswith("persona-code-review-")
    assert result["sessionId"].startswith("session-code-review-")
    assert (result["repoPath"], result["headRef"], result["baseRef"]) == ("repo", "feature", "main")
    assert result["baseRefResolvedFrom"] == "flag"
    repo = setup.workspace / "repo"
    assert (result["baseCommit"], result["headCommit"]) == (
        git(repo, "rev-parse", "main"),
        git(repo, "rev-parse", "feature"),
    )
    assert_iso(result["startedAt"])
    assert_iso(result["finishedAt"])
    assert result["changedFiles"] == ["a.txt", "src/n.py"]
    assert (result["diffTruncated"], result["repairAttempted"], result["mergeGate"]) == (False, False, "pass")
    assert result["findings"] == [mock_finding("a.txt"), mock_finding("src/n.py")]
    assert result["reportMarkdown"] == "# Mock review\n\n- Reviewed a.txt\n- Reviewed src/n.py"
    assert data["stdout"] == (
        "code-review: ok (mergeGate: pass)\n"
        "findings: 2 (P1: 0, P2: 0, P3: 2; outside the diff: 0)\n"
        "range: main..feature in repo\n"
        f"runId: {result['runId']}\n"
        f"sessionId: {result['sessionId']}\n"
    )


def test_the_review_is_a_run_with_its_events(client: httpx.Client) -> None:
    session = new_session()
    result = review(client, sessionId=session)["result"]
    assert result["sessionId"] == session
    run = ok_data(client.get(f"/api/v1/runs/{result['runId']}"))
    assert (run["status"], run["sessionId"], run["provider"]) == ("succeeded", session, "mock")
    assert run["metadata"] == {
        "personaName": "code-review",
        "personaAttempt": "review",
        "personaRunId": result["runId"],
    }
    assert run["input"].startswith(MARKER)
    assert "+TWO" in run["input"] and "- src/n.py" in run["input"]
    # The run's output is the model's review JSON, readable again through the run.
    stored = json.loads(run["output"])
    assert (stored["mergeGate"], len(stored["findings"])) == ("pass", 2)
    events = events_of_review(client, result)
    assert [e["type"] for e in events] == ["run.created", "run.started", "run.completed", "persona.run.completed"]
    assert events[-1]["payload"] == result
    assert events[-1]["sessionId"] == session


def test_grpc_gives_the_same_review(client: httpx.Client, stub: personas_pb2_grpc.PersonaServiceStub) -> None:
    response = stub.RunPersona(
        personas_pb2.RunPersonaRequest(name="code-review", repo_path="repo", head_ref="feature", stdout="json")
    )
    over_grpc = message_to_json(response.result)
    over_rest = review(client, stdout="json")["result"]
    varying = {"runId", "sessionId", "startedAt", "finishedAt"}
    assert {k: v for k, v in over_grpc.items() if k not in varying} == {
        k: v for k, v in over_rest.items() if k not in varying
    }
    # `stdout: json` is the result as the API prints it.
    assert json.loads(response.stdout) == over_grpc


def test_stdout_modes(client: httpx.Client) -> None:
    md = review(client, stdout="md")
    assert md["stdout"] == md["result"]["reportMarkdown"] + "\n"
    assert review(client, stdout="markdown")["stdout"] == md["stdout"]
    assert review(client, stdout="none")["stdout"] == ""
    assert review(client)["stdout"].startswith("code-review: ok (mergeGate: pass)\n")


def test_base_defaults_to_main(client: httpx.Client) -> None:
    result = review(client)["result"]
    assert (result["baseRef"], result["baseRefResolvedFrom"]) == ("main", "main")


def test_base_falls_back_to_origin_head(client: httpx.Client) -> None:
    result = review(client, repoPath="clone", headRef="origin/big")["result"]
    assert (result["baseRef"], result["baseRefResolvedFrom"]) == ("origin/HEAD", "origin-head")
    assert result["changedFiles"] == ["a.txt", "big.txt", "src/n.py"]


def test_an_idempotency_key_replays_the_review(client: httpx.Client) -> None:
    body = {"name": "code-review", "repoPath": "repo", "headRef": "feature"}
    headers = {"Idempotency-Key": f"k-{new_session()}"}
    first = ok_data(client.post("/api/v1/personas/run", json=body, headers=headers))
    again = ok_data(client.post("/api/v1/personas/run", json=body, headers=headers))
    assert again == first


def test_a_large_diff_is_cut_with_a_note(client: httpx.Client) -> None:
    result = review(client, headRef="big")["result"]
    assert (result["status"], result["changedFiles"], result["diffTruncated"]) == ("ok", ["big.txt"], True)
    run_input = ok_data(client.get(f"/api/v1/runs/{result['runId']}"))["input"]
    assert "(The diff was cut after" in run_input
    assert "+line 10 of a long file" in run_input and "+line 2999 of a long file" not in run_input
    assert len(run_input) <= REVIEW_INPUT_MAX_CHARS


def test_a_cancelled_review_run_fails_the_review(client: httpx.Client) -> None:
    session = new_session()
    outcome: dict[str, Any] = {}

    def call() -> None:
        outcome["data"] = review(client, sessionId=session, metadata={"mock.delayMs": "60000"})

    worker = threading.Thread(target=call)
    worker.start()
    wait_active(client, session)
    cancelled = ok_data(client.post(f"/api/v1/runs/{session}/cancel", json={"reason": "operator cancel"}))
    assert cancelled["status"] == "cancelled"
    wait_until(lambda: not worker.is_alive(), "the cancelled review to be answered")
    result = outcome["data"]["result"]
    assert (result["status"], result["error"]) == (
        "failed",
        "Run failed (RUN_CANCELLED): Run cancelled: operator cancel",
    )
    assert ok_data(client.get(f"/api/v1/runs/{result['runId']}"))["status"] == "cancelled"
    types = [e["type"] for e in events_of_review(client, result)]
    assert types == ["run.created", "run.started", "run.cancel.requested", "run.cancelled", "persona.run.failed"]


# ------------------------------------------------------------------------------- answers and server rules


def test_an_invalid_answer_gets_one_repair_run(client: httpx.Client) -> None:
    result = review(client, metadata={"mock.review": "invalid-once"})["result"]
    assert (result["status"], result["mergeGate"], result["repairAttempted"]) == ("ok", "pass", True)
    assert result["repairRunId"] == f"{result['runId']}-repair"
    assert result["parseError"] == "The answer is not a JSON object: Expecting value."
    first = ok_data(client.get(f"/api/v1/runs/{result['runId']}"))
    repair = ok_data(client.get(f"/api/v1/runs/{result['repairRunId']}"))
    assert first["output"] == "I reviewed the change and it looks fine to me."
    assert repair["input"].startswith(REPAIR_MARKER)
    assert "The answer is not a JSON object: Expecting value." in repair["input"]
    assert (repair["metadata"]["personaAttempt"], repair["sessionId"]) == ("repair", result["sessionId"])
    assert json.loads(repair["output"])["mergeGate"] == "pass"


def test_an_answer_invalid_twice_fails_the_review(client: httpx.Client) -> None:
    data = review(client, metadata={"mock.review": "invalid"})
    result = data["result"]
    assert result["status"] == "failed"
    assert result["error"] == (
        "The answer did not match the persona's schema after one repair attempt: "
        "The answer is not a JSON object: Expecting value."
    )
    assert "mergeGate" not in result and "reportMarkdown" not in result and result["findings"] == []
    assert data["stdout"].startswith("code-review: failed\n")
    types = [e["type"] for e in events_of_review(client, result)]
    assert types == ["run.created", "run.started", "run.completed", "persona.run.failed"]


def test_a_p1_finding_fails_the_gate_whatever_the_model_says(client: httpx.Client) -> None:
    result = review(client, metadata={"mock.review": "p1"})["result"]
    assert (result["status"], result["mergeGate"]) == ("ok", "fail")
    assert [f["priority"] for f in result["findings"]] == ["P3", "P3", "P1"]
    assert json.loads(ok_data(client.get(f"/api/v1/runs/{result['runId']}"))["output"])["mergeGate"] == "pass"
    assert "mergeGate set to 'fail': a P1 finding requires it (the model said 'pass')." in result["reportMarkdown"]


def test_findings_outside_the_diff_are_flagged(client: httpx.Client) -> None:
    result = review(client, metadata={"mock.review": "outside"})["result"]
    flagged = [f for f in result["findings"] if f["outsideDiff"]]
    assert [f["file"] for f in flagged] == [OUTSIDE_FILE]
    assert "1 finding(s) point outside the diff and are not trusted: Elsewhere." in result["reportMarkdown"]


# ---------------------------------------------------------------------------- personas and allowed roots


def test_a_workspace_persona_is_used(client: httpx.Client) -> None:
    # `tidy` does not require a clean worktree, so the dirty repository is fine for it.
    result = review(client, name="tidy", repoPath="dirty")["result"]
    assert (result["status"], result["personaName"]) == ("ok", "tidy")
    assert result["runId"].startswith("persona-tidy-")
    assert CUSTOM_RUBRIC in ok_data(client.get(f"/api/v1/runs/{result['runId']}"))["input"]


def test_a_repository_under_an_extra_root_is_allowed(setup: Setup, client: httpx.Client) -> None:
    extra_repo = setup.outside.parent / "extra" / "repo"
    assert review(client, repoPath=str(extra_repo))["result"]["status"] == "ok"


# ------------------------------------------------------------------------------------------- refusals


REFUSALS = [
    ("not a repository", {"repoPath": "plain"}, "personas.run.repoPath must be a git work tree."),
    ("dirty worktree", {"repoPath": "dirty"}, "personas.run.repoPath has uncommitted changes to tracked files"),
    ("missing directory", {"repoPath": "nowhere"}, "personas.run.repoPath must be an existing directory."),
    ("outside the roots", {"repoPath": "OUTSIDE"}, "personas.run.repoPath must lie under the workspace"),
    ("symlink outside", {"repoPath": "link"}, "personas.run.repoPath must lie under the workspace"),
    ("dotdot outside", {"repoPath": "../outside/repo"}, "personas.run.repoPath must lie under the workspace"),
    ("head unknown", {"headRef": "nope"}, "personas.run.headRef does not resolve to a commit."),
    (
        "no base to fall back to",
        {"repoPath": "trunk", "headRef": "trunk"},
        "personas.run.baseRef was not given and neither main nor origin/HEAD resolves to a commit.",
    ),
    ("base unknown", {"baseRef": "nope"}, "personas.run.baseRef does not resolve to a commit."),
    ("head option", {"headRef": "--output=/tmp/athena-x"}, "personas.run.headRef must not start with '-'."),
    ("base option", {"baseRef": "-p"}, "personas.run.baseRef must not start with '-'."),
    ("head shell", {"headRef": "feature;rm -rf /"}, "personas.run.headRef must be a single git revision"),
    ("head subshell", {"headRef": "$(touch pwned)"}, "personas.run.headRef must be a single git revision"),
    ("range", {"headRef": "main..feature"}, "personas.run.headRef must be a single git revision"),
    ("head missing", {"headRef": ""}, "personas.run.headRef must be a non-empty string."),
    ("unknown persona", {"name": "nobody"}, "personas.run.name must name a packaged persona (code-review)"),
    ("traversal name", {"name": "../repo"}, "personas.run.name must be 24 or fewer lowercase letters"),
    ("bad stdout", {"stdout": "xml"}, "personas.run.stdout must be summary|json|md|none."),
    ("bad session", {"sessionId": "a b"}, "Invalid sessionId 'a b'."),
]


@pytest.mark.parametrize(("case", "change", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_over_both_transports(
    setup: Setup,
    client: httpx.Client,
    stub: personas_pb2_grpc.PersonaServiceStub,
    case: str,
    change: dict[str, str],
    message: str,
) -> None:
    session = new_session()
    body = {"name": "code-review", "repoPath": "repo", "headRef": "feature", "sessionId": session, **change}
    if body["repoPath"] == "OUTSIDE":
        body["repoPath"] = str(setup.outside / "repo")
    err = error_of(client.post("/api/v1/personas/run", json=body), 400, "CONFIG_ERROR")
    assert err["message"].startswith(message), err["message"]
    request = personas_pb2.RunPersonaRequest(
        name=body["name"],
        repo_path=body["repoPath"],
        head_ref=body["headRef"],
        base_ref=body.get("baseRef", ""),
        stdout=body.get("stdout", ""),
        session_id=body.get("sessionId", ""),
    )
    with pytest.raises(grpc.RpcError) as exc:
        stub.RunPersona(request)
    outcome = grpc_outcome(exc.value)
    assert (outcome.code, outcome.message) == ("CONFIG_ERROR", err["message"])
    # Refused before any run: nothing was created, and nothing the refs held was executed.
    if body["sessionId"] == session:  # (a refused session id names no log to look in)
        assert events_of(client, session) == []
    assert not Path("/tmp/athena-x").exists()
    assert not (setup.workspace / "pwned").exists()
