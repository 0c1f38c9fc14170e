"""The memory package without a server: path rules, chunk and snippet bounds, the FTS5 query built from
free text, the index following files (and what it reads), and memory blocks in a run's context."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from athena_server.engine.context import MAX_CONTEXT_CHARS, compile_context
from athena_server.errors import AthenaError
from athena_server.memory import ranking
from athena_server.memory.chunks import CHUNK_LINES, Chunk, chunk_lines, snippet
from athena_server.memory.index import MemoryIndex
from athena_server.memory.paths import Workspace, normalise, open_lines, split_lines

OLD = 1_600_000_000


def write(root: Path, rel: str, text: str, mtime: int = OLD) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


# -------------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MEMORY.md", "MEMORY.md"),
        ("memory/a.md", "memory/a.md"),
        ("./memory//x/./a.md", "memory/x/a.md"),
        ("MEMORY.md/", "MEMORY.md"),
    ],
)
def test_paths_are_normalised(raw: str, expected: str) -> None:
    assert normalise(raw, "memory.get") == expected


@pytest.mark.parametrize(
    "raw",
    [
        *("", " ", "../x.md", "memory/../MEMORY.md", "/abs.md", "~/x.md", "%2e%2e/x.md", "memory\\a.md", "a\x00.md"),
        *("memory/a\tb.md", "memory.md", "Memory.md", "memory/a.MD", "memory/.md", "memory", "docs/a.md"),
    ],
)
def test_paths_outside_the_rules_are_config_errors(raw: str) -> None:
    with pytest.raises(AthenaError) as caught:
        normalise(raw, "memory.get")
    assert caught.value.code_name == "CONFIG_ERROR"
    assert caught.value.message.startswith("memory.get.path ")


def test_file_lines_and_indexed_lines_count_alike(tmp_path: Path) -> None:
    data = b"a\r\nb\rc\n\nlast"
    (tmp_path / "f.md").write_bytes(data)
    assert list(open_lines(str(tmp_path / "f.md"), "f.md")) == split_lines(data) == ["a", "b\rc", "", "last"]
    assert split_lines(b"") == [] and split_lines(b"x\n") == ["x"]


def test_the_walk_skips_symlinked_directories_and_links_out(tmp_path: Path) -> None:
    ws, out = tmp_path / "ws", tmp_path / "out"
    write(ws, "MEMORY.md", "m")
    write(ws, "memory/a.md", "a")
    write(out, "secret.md", "s")
    write(out, "d/in.md", "d")
    (ws / "memory" / "link-out.md").symlink_to(out / "secret.md")
    (ws / "memory" / "link-in.md").symlink_to(ws / "memory" / "a.md")
    (ws / "memory" / "dir").symlink_to(out / "d")
    assert [s.path for s in Workspace(ws).walk()] == ["MEMORY.md", "memory/a.md", "memory/link-in.md"]


def test_a_symlinked_memory_directory_is_not_entered(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(tmp_path, "elsewhere/a.md", "a")
    ws.mkdir()
    (ws / "memory").symlink_to(tmp_path / "elsewhere")
    assert list(Workspace(ws).walk()) == []
    with pytest.raises(AthenaError) as caught:
        Workspace(ws).locate("memory/a.md")
    assert caught.value.code_name == "CONFIG_ERROR"


# -------------------------------------------------------------------------------------------- chunks


def test_chunks_have_exact_bounds_without_blank_edges() -> None:
    lines = ["", "a", "b", ""] + [f"l{i}" for i in range(CHUNK_LINES)] + ["", ""]
    chunks = chunk_lines(lines)
    assert (chunks[0].line_start, chunks[0].text.split("\n")[:3]) == (2, ["a", "b", ""])
    assert chunks[-1].line_end == len(lines) - 2
    for c in chunks:
        assert c.text == "\n".join(lines[c.line_start - 1 : c.line_end])
    assert chunk_lines(["", "  "]) == []


def test_snippets_of_long_chunks_show_the_lines_they_cite() -> None:
    lines = [f"filler line number {i} " + "x" * 40 for i in range(1, 20)]
    lines[14] = "the needle is here"
    chunk = Chunk(1, len(lines), "\n".join(lines))
    shown = snippet(chunk, ["needle"], 300)
    assert len(shown.text) <= 300
    assert shown.text == "\n".join(lines[shown.line_start - 1 : shown.line_end])
    assert shown.line_start <= 15 <= shown.line_end


def test_a_snippet_of_one_long_line_is_cut_around_the_match() -> None:
    line = "a" * 2000 + " needle " + "b" * 2000
    shown = snippet(Chunk(7, 7, line), ["needle"], 700)
    assert (shown.line_start, shown.line_end, len(shown.text)) == (7, 7, 700)
    assert "needle" in shown.text and shown.text in line


# -------------------------------------------------------------------------------------------- ranking


def test_queries_become_quoted_terms() -> None:
    assert ranking.terms('Deploy "NEAR(x y)" col:z -w a* deploy') == ["deploy", "near", "x", "y", "col", "z", "w", "a"]
    assert ranking.match_expression(["a", "b"]) == '"a" OR "b"'
    assert len(ranking.terms(" ".join(f"w{i}" for i in range(100)))) == ranking.MAX_TERMS


def test_scores_are_relative_to_the_best_and_in_range() -> None:
    assert ranking.score(4.0, 4.0) == 1.0
    assert ranking.score(1.0, 4.0) == 0.25
    assert ranking.score(1e-12, 4.0) == 1e-6


# -------------------------------------------------------------------------------------------- the index


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    write(ws, "MEMORY.md", "deploy on fridays\n")
    write(ws, "memory/a.md", "deployment checklist\n\nrollback plan\n")
    write(ws, "memory/b.md", "lunch menu\n")
    return ws


def open_index(ws: Path) -> MemoryIndex:
    return MemoryIndex(ws / ".athena" / "memory-index.db", Workspace(ws), 1024 * 1024)


def test_refresh_reads_only_what_changed(workspace: Path) -> None:
    index = open_index(workspace)
    first = index.refresh()
    assert (first.files, first.read, first.reindexed, first.removed) == (3, 3, 3, 0)
    again = index.refresh()
    assert (again.read, again.reindexed, again.removed) == (0, 0, 0)
    write(workspace, "memory/b.md", "dinner menu\n", mtime=OLD + 5)
    os.remove(workspace / "memory" / "a.md")
    changed = index.refresh()
    assert (changed.files, changed.read, changed.reindexed, changed.removed) == (2, 1, 1, 1)
    assert [h.path for h in index.search("dinner", 5, 0, 700)] == ["memory/b.md"]
    assert index.search("lunch", 5, 0, 700) == []
    index.close()


def test_a_touched_file_with_the_same_content_is_read_but_not_reindexed(workspace: Path) -> None:
    index = open_index(workspace)
    index.refresh()
    os.utime(workspace / "MEMORY.md", (OLD + 9, OLD + 9))
    stats = index.refresh()
    assert (stats.read, stats.reindexed) == (1, 0)
    index.close()


def test_recently_modified_files_are_read_again(workspace: Path) -> None:
    """Within a timestamp tick an edit may keep mtime and size: such files are not trusted yet."""
    write(workspace, "memory/fresh.md", "new\n", mtime=int(time.time()))
    index = open_index(workspace)
    index.refresh()
    assert index.refresh().read == 1
    index.close()


def test_stemmed_ranking_and_reopening_keeps_the_index(workspace: Path) -> None:
    index = open_index(workspace)
    index.refresh()
    # Porter stems: "deploying" and "deploy" are one word, "deployments" and "deployment" another.
    assert [h.path for h in index.search("deploying", 5, 0, 700)] == ["MEMORY.md"]
    assert [h.path for h in index.search("deployments", 5, 0, 700)] == ["memory/a.md"]
    index.close()
    reopened = open_index(workspace)
    assert reopened.refresh().read == 0
    reopened.close()


def test_another_workspace_empties_the_index(workspace: Path, tmp_path: Path) -> None:
    db = workspace / ".athena" / "memory-index.db"
    MemoryIndex(db, Workspace(workspace), 1 << 20).refresh()
    other = tmp_path / "other"
    write(other, "MEMORY.md", "other\n")
    index = MemoryIndex(db, Workspace(other), 1 << 20)
    assert index.search("deploy", 5, 0, 700) == []
    assert index.refresh().read == 1
    index.close()


def test_files_over_the_size_limit_are_not_indexed(workspace: Path) -> None:
    write(workspace, "memory/big.md", "huge " * 1000)
    index = MemoryIndex(workspace / "idx.db", Workspace(workspace), 1000)
    assert index.refresh().files == 3
    index.close()


# -------------------------------------------------------------------------------------------- context


def test_memory_blocks_go_between_history_and_input() -> None:
    compiled = compile_context([("user", "hi"), ("assistant", "hello")], "q", [("MEMORY.md#L1", "fact")])
    assert compiled.prompt == "user: hi\n\nassistant: hello\n\nsystem: [Memory: MEMORY.md#L1]\nfact\n\nuser: q"
    assert compiled.memory_citations == ("MEMORY.md#L1",)
    assert compile_context([], "q").memory_citations == ()


def test_memory_blocks_that_do_not_fit_are_left_out() -> None:
    big = "x" * (MAX_CONTEXT_CHARS - 50)
    compiled = compile_context([("user", "old turn")], "q", [("a.md#L1", big), ("b.md#L1", "small")])
    assert compiled.memory_citations == ("a.md#L1",)
    assert compiled.history_entries == 0
    assert len(compiled.prompt) <= MAX_CONTEXT_CHARS
    too_big = "x" * MAX_CONTEXT_CHARS
    assert compile_context([], "q", [("a.md#L1", too_big), ("b.md#L1", "small")]).memory_citations == ("b.md#L1",)


def test_two_processes_sharing_the_index_see_each_others_refreshes(workspace: Path) -> None:
    first, second = open_index(workspace), open_index(workspace)
    first.refresh()
    assert second.refresh().read == 0  # the first one's work, seen through the shared manifest
    write(workspace, "memory/b.md", "supper menu\n", mtime=OLD + 7)
    assert first.refresh().reindexed == 1
    assert second.refresh().read == 0
    assert [h.path for h in second.search("supper", 5, 0, 700)] == ["memory/b.md"]
    first.close()
    second.close()
