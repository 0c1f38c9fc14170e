"""Workspace memory end to end: `GET /api/v1/memory/search` and `POST /api/v1/memory/get` on real servers
whose workspace is a temporary directory, over REST and gRPC (the SDK on both transports), and runs that
recall memory into their context.

The files get an old mtime (`OLD`), so the index's "racily clean" rule (files modified within 2 s of being
read are read again) does not blur what "unchanged files are not read again" asserts.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import athena_client
from athena.v1 import memory_pb2
from athena_client import AthenaError, Client
from tests.support.processes import Served, running_api, serving
from tests.support.shapes import error_of, new_session, ok_data

QUIET = {"ATHENA_SCHEDULE_TICK_SECONDS": "0", "ATHENA_LOG_LEVEL": "WARNING"}
OLD = 1_600_000_000  # 2020-09-13: long before any refresh

CORPUS = {
    "MEMORY.md": "athena context\n",
    "memory/notes.md": "line 1\nline 2\n",
    "memory/window.md": "one\ntwo\nthree\nfour\nfive\n",
    "memory/crlf.md": "first\r\nsecond\r\n",
    # Ranking: both terms beat one term; the weak file also holds unrelated words.
    "memory/rank/strong.md": "kubernetes cluster upgrade runbook\n",
    "memory/rank/weak.md": "the cluster of servers in the basement is noisy and warm\n",
    # Ties: the same text in two chunks of one file (a chunk is at most 20 lines) and in another file.
    "memory/tie/b.md": "zebra\n",
    "memory/tie/a.md": "zebra\n" + "\n" * 19 + "zebra\n",
    "memory/deep/er/nested.md": "quokka sighting\n",
    "memory/ignored.txt": "quokka in a text file\n",
    "README.md": "quokka outside memory\n",
}


def write_files(root: Path, files: dict[str, str], mtime: int = OLD) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        os.utime(path, (mtime, mtime))


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory beside the workspace holding a secret the links below point at."""
    base = tmp_path_factory.mktemp("outside")
    write_files(base, {"secret.md": "platypus secret\n", "dir/inner.md": "platypus inner\n"})
    return base


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, outside: Path) -> Iterator[Served]:
    workspace = tmp_path_factory.mktemp("memory-ws")
    write_files(workspace, CORPUS)
    (workspace / "memory" / "out.md").symlink_to(outside / "secret.md")
    (workspace / "memory" / "readme.md").symlink_to(workspace / "README.md")
    (workspace / "memory" / "alias.md").symlink_to(workspace / "memory" / "notes.md")
    (workspace / "memory" / "linked").symlink_to(outside / "dir")
    (workspace / "memory" / "folder.md").mkdir()
    with serving(workspace, env=QUIET) as served:
        yield served


@pytest.fixture
def client(server: Served) -> httpx.Client:
    """REST to the module's server (whose workspace holds the corpus)."""
    return server.rest


@pytest.fixture(scope="module")
def clients(server: Served) -> Iterator[dict[str, Client]]:
    p = server.process
    with athena_client.connect(f"grpc://{p.grpc_target}") as g, athena_client.connect(p.rest_url) as r:
        yield {"grpc": g, "rest": r}


def search(c: Client, query: str, **kw: Any) -> list[tuple[str, float, int, int, str]]:
    hits = c.memory_service.search_memory(query=query, **kw).results
    return [(h.source_path, h.score, h.line_start, h.line_end, h.snippet) for h in hits]


def both(clients: dict[str, Client], call: Callable[[Client], Any]) -> Any:
    """The answer of `call` over gRPC, after checking REST answers the same."""
    answers = [call(c) for c in clients.values()]
    assert answers[0] == answers[1]
    return answers[0]


def both_fail(clients: dict[str, Client], call: Callable[[Client], Any]) -> tuple[str, int | None, str]:
    errors = []
    for c in clients.values():
        with pytest.raises(AthenaError) as caught:
            call(c)
        errors.append((caught.value.code, caught.value.http_status, caught.value.message))
    assert errors[0] == errors[1]
    return errors[0]


# -------------------------------------------------------------------------------------------- seed shapes


def test_search_answers_the_seed_shape(client: httpx.Client) -> None:
    params = {"query": "athena context", "maxResults": "6", "minScore": "0.5"}
    data = ok_data(client.get("/api/v1/memory/search", params=params))
    assert data == [
        {
            "id": "MEMORY.md:1",
            "sourcePath": "MEMORY.md",
            "snippet": "athena context",
            "score": 1,
            "lineStart": 1,
            "lineEnd": 1,
            "citation": "MEMORY.md#L1",
        }
    ]


def test_get_answers_the_seed_shape(client: httpx.Client) -> None:
    data = ok_data(client.post("/api/v1/memory/get", json={"path": "memory/notes.md", "from": 1, "lines": 20}))
    assert data == {"path": "memory/notes.md", "text": "line 1\nline 2", "lineStart": 1, "lineEnd": 2}


def test_multi_line_hits_cite_a_range(client: httpx.Client) -> None:
    hits = ok_data(client.get("/api/v1/memory/search", params={"query": "line"}))
    (hit,) = [h for h in hits if h["sourcePath"] == "memory/notes.md"]
    assert (hit["id"], hit["lineStart"], hit["lineEnd"], hit["citation"]) == (
        "memory/notes.md:1",
        1,
        2,
        "memory/notes.md#L1-L2",
    )


# -------------------------------------------------------------------------------------------- ranking


def test_ranked_by_relevance_with_real_scores(clients: dict[str, Client]) -> None:
    hits = both(clients, lambda c: search(c, "kubernetes cluster"))
    assert [(h[0], h[2]) for h in hits] == [("memory/rank/strong.md", 1), ("memory/rank/weak.md", 1)]
    strong, weak = hits[0][1], hits[1][1]
    assert strong == 1.0
    assert 0 < weak < 1


def test_min_score_filters_and_max_results_cuts(clients: dict[str, Client]) -> None:
    weak = both(clients, lambda c: search(c, "kubernetes cluster"))[1][1]
    above = both(clients, lambda c: search(c, "kubernetes cluster", min_score=(weak + 1) / 2))
    assert [h[0] for h in above] == ["memory/rank/strong.md"]
    at = both(clients, lambda c: search(c, "kubernetes cluster", min_score=weak))
    assert [h[0] for h in at] == ["memory/rank/strong.md", "memory/rank/weak.md"]
    assert both(clients, lambda c: search(c, "kubernetes cluster", min_score=1.0))[0][0] == "memory/rank/strong.md"
    one = both(clients, lambda c: search(c, "kubernetes cluster", max_results=1))
    assert [h[0] for h in one] == ["memory/rank/strong.md"]


def test_ties_are_ordered_by_path_then_line(clients: dict[str, Client]) -> None:
    hits = both(clients, lambda c: search(c, "zebra"))
    assert [(h[0], h[1], h[2], h[3], h[4]) for h in hits] == [
        ("memory/tie/a.md", 1.0, 1, 1, "zebra"),
        ("memory/tie/a.md", 1.0, 21, 21, "zebra"),
        ("memory/tie/b.md", 1.0, 1, 1, "zebra"),
    ]


def test_only_memory_files_are_searched(clients: dict[str, Client]) -> None:
    """Nested memory files count; `.txt` files, files outside `memory/` and links out of the memory files
    (to a file or a directory outside the workspace, or to README.md inside it) do not."""
    assert [h[0] for h in both(clients, lambda c: search(c, "quokka"))] == ["memory/deep/er/nested.md"]
    assert both(clients, lambda c: search(c, "platypus")) == []


def test_a_link_to_a_memory_file_is_searched_under_its_own_path(clients: dict[str, Client]) -> None:
    assert {h[0] for h in both(clients, lambda c: search(c, "line"))} == {"memory/notes.md", "memory/alias.md"}


@pytest.mark.parametrize("query", ['"', 'x" OR y', "NEAR(a b)", "a*", "col:x", "-x", "(", "AND", "^x", "'; DROP"])
def test_fts_syntax_in_a_query_is_just_text(clients: dict[str, Client], query: str) -> None:
    both(clients, lambda c: search(c, query))


def test_a_query_of_punctuation_finds_nothing(clients: dict[str, Client]) -> None:
    assert both(clients, lambda c: search(c, "?!")) == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"query": ""}, "memory.search.query must be a non-empty string."),
        ({"query": "   "}, "memory.search.query must be a non-empty string."),
        ({"query": "x", "max_results": 0}, "memory.search.maxResults must be between 1 and 100."),
        ({"query": "x", "max_results": -1}, "memory.search.maxResults must be between 1 and 100."),
        ({"query": "x", "max_results": 101}, "memory.search.maxResults must be between 1 and 100."),
        ({"query": "x", "min_score": -0.1}, "memory.search.minScore must be a number between 0 and 1."),
        ({"query": "x", "min_score": 1.5}, "memory.search.minScore must be a number between 0 and 1."),
    ],
)
def test_bad_search_input_is_config_error(clients: dict[str, Client], kw: dict[str, Any], message: str) -> None:
    assert both_fail(clients, lambda c: c.memory_service.search_memory(**kw)) == ("CONFIG_ERROR", 400, message)


def test_bad_query_parameters_are_config_error(client: httpx.Client) -> None:
    for params in ({"query": "x", "maxResults": "abc"}, {"query": "x", "minScore": "nan"}, {"query": "q" * 1025}):
        error_of(client.get("/api/v1/memory/search", params=params), 400, "CONFIG_ERROR")


# -------------------------------------------------------------------------------------------- get


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"path": "memory/window.md"}, ("one\ntwo\nthree\nfour\nfive", 1, 5)),
        ({"path": "memory/window.md", "from_line": 2, "lines": 2}, ("two\nthree", 2, 3)),
        ({"path": "memory/window.md", "from_line": 4, "lines": 10}, ("four\nfive", 4, 5)),
        ({"path": "memory/window.md", "from_line": 5}, ("five", 5, 5)),
        ({"path": "memory/window.md", "from_line": 9, "lines": 3}, ("", 9, 8)),
        ({"path": "memory/crlf.md"}, ("first\nsecond", 1, 2)),
        ({"path": "./memory//window.md", "lines": 1}, ("one", 1, 1)),
        ({"path": "memory/alias.md"}, ("line 1\nline 2", 1, 2)),
    ],
)
def test_get_returns_the_window_it_says(
    clients: dict[str, Client], kw: dict[str, Any], expected: tuple[str, int, int]
) -> None:
    got = both(clients, lambda c: c.memory_service.get_memory(**kw))
    assert (got.text, got.line_start, got.line_end) == expected
    assert got.path == kw["path"].replace("./", "").replace("//", "/")


def test_get_window_matches_a_search_citation(clients: dict[str, Client]) -> None:
    """What search cites is what get returns for those lines."""
    for path, _, start, end, snippet in both(clients, lambda c: search(c, "zebra kubernetes line")):
        window: dict[str, Any] = {"path": path, "from_line": start, "lines": end - start + 1}

        def get(c: Client, w: dict[str, Any] = window) -> memory_pb2.GetMemoryResponse:
            return c.memory_service.get_memory(**w)

        got = both(clients, get)
        assert got.text == snippet


@pytest.mark.parametrize(
    "path",
    [
        "../MEMORY.md",
        "memory/../../etc/passwd.md",
        "memory/../MEMORY.md",
        "/etc/passwd",
        "/tmp/x.md",
        "~/memory/x.md",
        "%2e%2e/MEMORY.md",
        "memory/%2e%2e/%2e%2e/x.md",
        "memory%2fnotes.md",
        "memory\\..\\MEMORY.md",
        "memory\\notes.md",
        "memory/notes.md\x00.txt",
        "memory/a\nb.md",
        "notes.md",
        "README.md",
        "memory/notes.txt",
        "memory/.md",
        "memory",
        "",
        "  ",
    ],
)
def test_paths_outside_the_memory_files_are_config_error(clients: dict[str, Client], path: str) -> None:
    code, status, _ = both_fail(clients, lambda c: c.memory_service.get_memory(path=path))
    assert (code, status) == ("CONFIG_ERROR", 400)


@pytest.mark.parametrize("path", ["memory/out.md", "memory/readme.md", "memory/linked/inner.md", "memory/folder.md"])
def test_links_out_of_the_memory_files_and_non_files_are_config_error(clients: dict[str, Client], path: str) -> None:
    code, status, message = both_fail(clients, lambda c: c.memory_service.get_memory(path=path))
    assert (code, status) == ("CONFIG_ERROR", 400)
    assert "platypus" not in message


def test_a_missing_file_is_not_found(clients: dict[str, Client]) -> None:
    for path in ("memory/nope.md", "memory/no/such/dir.md", "memory/notes.md/x.md"):

        def get(c: Client, p: str = path) -> memory_pb2.GetMemoryResponse:
            return c.memory_service.get_memory(path=p)

        missing = both_fail(clients, get)
        assert missing == ("NOT_FOUND", 404, f"memory file not found: {path}")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"from_line": 0}, "memory.get.from must be a positive integer."),
        ({"from_line": -3}, "memory.get.from must be a positive integer."),
        ({"lines": 0}, "memory.get.lines must be a positive integer."),
    ],
)
def test_bad_windows_are_config_error(clients: dict[str, Client], kw: dict[str, Any], message: str) -> None:
    call = lambda c: c.memory_service.get_memory(path="memory/notes.md", **kw)  # noqa: E731
    assert both_fail(clients, call) == ("CONFIG_ERROR", 400, message)


def test_get_body_errors_over_rest(client: httpx.Client) -> None:
    error_of(client.post("/api/v1/memory/get", json={"path": "memory/notes.md", "from": "x"}), 400, "CONFIG_ERROR")
    error_of(client.post("/api/v1/memory/get", json={"path": "m" * 1025}), 400, "CONFIG_ERROR")
    error_of(client.post("/api/v1/memory/get", json={"path": "memory/nope.md"}), 404, "NOT_FOUND")


# ------------------------------------------------------------------------------ the index follows the files


def manifest(workspace: Path) -> dict[str, int]:
    """path -> read_seq of the index's manifest (which read of the index last read that file)."""
    with sqlite3.connect(f"file:{workspace / '.athena' / 'memory-index.db'}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT path, read_seq FROM files").fetchall())


def test_the_index_follows_edits_new_and_deleted_files_without_rereading_the_rest(tmp_path: Path) -> None:
    write_files(tmp_path, {"MEMORY.md": "alpha\n", "memory/one.md": "bravo\n", "memory/two.md": "charlie\n"})
    with (
        running_api(tmp_path, env=QUIET) as p,
        athena_client.connect(f"grpc://{p.grpc_target}") as g,
        athena_client.connect(p.rest_url) as r,
    ):
        clients = {"grpc": g, "rest": r}

        def paths(query: str) -> list[str]:
            return [h[0] for h in both(clients, lambda c: search(c, query))]

        assert paths("bravo") == ["memory/one.md"]
        first = manifest(tmp_path)
        assert sorted(first) == ["MEMORY.md", "memory/one.md", "memory/two.md"]
        assert paths("alpha charlie") == ["MEMORY.md", "memory/two.md"]
        assert manifest(tmp_path) == first  # nothing changed, nothing read

        write_files(tmp_path, {"memory/one.md": "delta delta\n"}, mtime=OLD + 60)
        assert paths("delta") == ["memory/one.md"]
        assert paths("bravo") == []
        edited = manifest(tmp_path)
        assert edited["memory/one.md"] > first["memory/one.md"]
        assert {k: v for k, v in edited.items() if k != "memory/one.md"} == {
            "MEMORY.md": first["MEMORY.md"],
            "memory/two.md": first["memory/two.md"],
        }

        write_files(tmp_path, {"memory/sub/three.md": "echo\n"})
        (tmp_path / "memory" / "two.md").unlink()
        assert paths("echo") == ["memory/sub/three.md"]
        assert paths("charlie") == []
        after = manifest(tmp_path)
        assert sorted(after) == ["MEMORY.md", "memory/one.md", "memory/sub/three.md"]
        assert (after["MEMORY.md"], after["memory/one.md"]) == (edited["MEMORY.md"], edited["memory/one.md"])


# -------------------------------------------------------------------------------------------- settings and runs


def test_disabled_memory_finds_nothing_and_refuses_reads(tmp_path: Path) -> None:
    write_files(tmp_path, {"MEMORY.md": "athena context\n"})
    with serving(tmp_path, env={**QUIET, "ATHENA_MEMORY_ENABLED": "false"}) as served:
        assert ok_data(served.rest.get("/api/v1/memory/search", params={"query": "athena"})) == []
        err = error_of(served.rest.post("/api/v1/memory/get", json={"path": "MEMORY.md"}), 400, "CONFIG_ERROR")
        assert err["message"] == "memory is disabled"


def test_runs_recall_memory_into_their_context_when_enabled(tmp_path: Path) -> None:
    """With ATHENA_MEMORY_IN_CONTEXT the best hits for the input come before it as a `system` turn of
    `[Memory: <citation>]` blocks, and the assistant entry records what was cited. The workspace is named
    by ATHENA_WORKSPACE (the server's working directory is elsewhere)."""
    workspace = tmp_path / "ws"
    write_files(workspace, {"MEMORY.md": "The deploy password rotates every Friday.\n", "memory/x.md": "unrelated\n"})
    env = {**QUIET, "ATHENA_MEMORY_IN_CONTEXT": "true", "ATHENA_WORKSPACE": str(workspace)}
    with serving(tmp_path / "cwd", env=env) as served:
        rest = served.rest
        session = new_session()
        body = {"sessionId": session, "input": "When does the deploy password rotate?"}
        run = ok_data(rest.post("/api/v1/runs", json=body))
        assert run["output"] == (
            "Echo: system: [Memory: MEMORY.md#L1]\nThe deploy password rotates every Friday."
            "\n\nuser: When does the deploy password rotate?"
        )
        entries = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript"))["items"]
        assistant = entries[-1]
        assert assistant["role"] == "assistant"
        assert json.loads(assistant["metadata"]["memoryCitations"]) == ["MEMORY.md#L1"]
        # An input memory knows nothing about: no memory turn, no citations.
        other = ok_data(rest.post("/api/v1/runs", json={"sessionId": new_session(), "input": "hello"}))
        assert other["output"] == "Echo: user: hello"


def test_runs_leave_memory_out_by_default(client: httpx.Client) -> None:
    session = new_session()
    run = ok_data(client.post("/api/v1/runs", json={"sessionId": session, "input": "athena context"}))
    assert run["output"] == "Echo: user: athena context"
    entries = ok_data(client.get(f"/api/v1/sessions/{session}/transcript"))["items"]
    assert "memoryCitations" not in entries[-1]["metadata"]
