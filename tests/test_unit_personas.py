"""The persona rules a user relies on, without a server: the answer's schema (every problem listed with its
path, since the list becomes the repair input), P1 fails the gate, findings outside the diff are flagged,
the input stays within the run's limit however large the diff, revisions shaped as options or shell
syntax are refused, and the mock's deterministic review (the repair variant included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from athena_server.engine.context import MAX_CONTEXT_CHARS, check_input
from athena_server.errors import AthenaError
from athena_server.personas import manifest, mock_review, prompt, rules, schema
from athena_server.personas.constants import REVIEW_INPUT_MAX_CHARS
from athena_server.personas.diff import Shown, shown_lines
from athena_server.personas.git import check_ref


def answer(**changes: Any) -> str:
    doc: dict[str, Any] = {
        "schemaVersion": 1,
        "mergeGate": "pass",
        "reportMarkdown": "# Review",
        "findings": [{"priority": "P2", "confidence": 0.7, "title": "T", "message": "M", "file": "a.py", "line": 3}],
    }
    doc.update(changes)
    return json.dumps(doc)


# ------------------------------------------------------------------------------------------------- schema


def test_a_valid_answer_parses() -> None:
    review = schema.parse(answer())
    assert review == schema.Review("pass", "# Review", (schema.Finding("P2", 0.7, "T", "M", None, "a.py", 3),))


def test_one_code_fence_is_forgiven() -> None:
    assert schema.parse(f"```json\n{answer()}\n```").merge_gate == "pass"


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("looks good", ["The answer is not a JSON object: Expecting value."]),
        ("[1]", ["The answer must be a JSON object."]),
        (
            json.dumps({"findings": []}),
            ["mergeGate must be one of pass, fail.", "reportMarkdown is required (a string)."],
        ),
        (
            answer(mergeGate="maybe", schemaVersion=2),
            ["schemaVersion must be 1.", "mergeGate must be one of pass, fail."],
        ),
        (answer(findings={}), ["findings is required (an array)."]),
        (
            answer(findings=[{"priority": "P0", "confidence": 2, "title": "", "message": 5, "line": 0}, "x"]),
            [
                "findings[0].priority must be one of P1, P2, P3.",
                "findings[0].confidence must be a number from 0 to 1.",
                "findings[0].title must not be empty.",
                "findings[0].message must be a string.",
                "findings[0].line must be a positive integer.",
                "findings[1] must be an object.",
            ],
        ),
        (
            answer(findings=[{"priority": "P3", "confidence": True, "title": "t", "message": "m", "line": True}]),
            ["findings[0].confidence must be a number from 0 to 1.", "findings[0].line must be a positive integer."],
        ),
        (
            answer(findings=[{"priority": "P3", "confidence": 10**400, "title": "t", "message": "m"}]),
            ["findings[0].confidence must be a number from 0 to 1."],
        ),
    ],
)
def test_invalid_answers_list_every_problem(text: str, problems: list[str]) -> None:
    with pytest.raises(schema.InvalidAnswer) as exc:
        schema.parse(text)
    assert exc.value.problems == problems


def test_too_many_findings_are_refused() -> None:
    finding = {"priority": "P3", "confidence": 0.1, "title": "t", "message": "m"}
    with pytest.raises(schema.InvalidAnswer) as exc:
        schema.parse(answer(findings=[finding] * 201))
    assert exc.value.problems == ["findings must hold at most 200 items."]


# ------------------------------------------------------------------------------------------------- rules

DIFF = """diff --git a/a.py b/a.py
--- a/a.py
+++ b/a.py
@@ -1,3 +1,4 @@
 one
+two
 three
 four
diff --git a/gone.py b/gone.py
deleted file mode 100644
--- a/gone.py
+++ /dev/null
@@ -5,2 +0,0 @@
-x
-y
"""


def test_shown_lines_cover_hunks_of_each_file() -> None:
    assert shown_lines(DIFF) == {"a.py": {1, 2, 3, 4}, "gone.py": {5, 6}}


@pytest.mark.parametrize(
    ("file", "line", "outside"),
    [
        ("a.py", 2, False),
        ("a.py", None, False),
        ("gone.py", 6, False),
        ("a.py", 9, True),
        ("other.py", None, True),
        ("other.py", 1, True),
        (None, None, False),
        (None, 3, True),
    ],
)
def test_findings_outside_the_diff_are_flagged(file: str | None, line: int | None, outside: bool) -> None:
    shown = Shown(frozenset({"a.py", "gone.py"}), shown_lines(DIFF))
    finding = schema.Finding("P3", 0.5, "t", "m", None, file, line)
    judged = rules.judge(schema.Review("pass", "", (finding,)), shown)
    assert judged.findings == ((finding, outside),)


def test_a_p1_finding_fails_the_gate() -> None:
    p1 = schema.Finding("P1", 0.9, "Bug", "m")
    judged = rules.judge(schema.Review("pass", "", (p1,)), Shown(frozenset()))
    assert (judged.merge_gate, judged.gate_note) == (
        "fail",
        "mergeGate set to 'fail': a P1 finding requires it (the model said 'pass').",
    )
    p2 = schema.Finding("P2", 0.9, "Meh", "m")
    assert rules.judge(schema.Review("pass", "", (p2,)), Shown(frozenset())).merge_gate == "pass"
    assert rules.judge(schema.Review("fail", "", (p2,)), Shown(frozenset())).merge_gate == "fail"


# ------------------------------------------------------------------------------------------------- input


def test_a_huge_diff_is_cut_to_fit_and_the_repair_still_fits() -> None:
    diff = "+" + "x" * 100 + "\n"
    text, shown = prompt.review_input("code-review", "R" * 4000, "main", "f", ["a.py"] * 300, True, diff * 400, True)
    assert len(text) <= REVIEW_INPUT_MAX_CHARS
    assert shown == (diff * 400).rstrip("\n")[: len(shown)] and len(shown) < len(diff * 400)
    assert "(The diff was cut after" in text and "(more files changed than are listed here)" in text
    repair = prompt.repair_input(text, "y" * 50_000, ["a problem " * 100] * 50)
    check_input(repair)  # within the run's input limit
    assert len(repair) < MAX_CONTEXT_CHARS


def test_the_mock_reads_the_input_it_was_given() -> None:
    text, _ = prompt.review_input("code-review", "rubric", "main", "f", ["a.py", "b/c.py"], False, "d", False)
    assert prompt.read_input(text) == prompt.ReviewInput(("a.py", "b/c.py"), repair=False)
    review = schema.parse(mock_review.answer(text, {}) or "")
    assert [(f.priority, f.file) for f in review.findings] == [("P3", "a.py"), ("P3", "b/c.py")]
    assert mock_review.answer("hello", {}) is None
    invalid_once = {mock_review.OPTION: mock_review.INVALID_ONCE}
    assert mock_review.answer(text, invalid_once) == mock_review.NOT_JSON
    repair = prompt.repair_input(text, mock_review.NOT_JSON, ["The answer is not a JSON object."])
    assert schema.parse(mock_review.answer(repair, invalid_once) or "").merge_gate == "pass"


# ---------------------------------------------------------------------------------------- refs and names


@pytest.mark.parametrize("ref", ["main", "origin/main", "HEAD~2", "v1.0^{commit}", "abc123", "feature/x-y_z"])
def test_revisions_git_understands_pass(ref: str) -> None:
    assert check_ref(f" {ref} ", "headRef", "personas.run") == ref


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-p", "a;rm -rf /", "$(id)", "`id`", "a b", "a..b", "a\nb", ""])
def test_revisions_shaped_as_options_or_shell_are_refused(ref: str) -> None:
    with pytest.raises(AthenaError) as exc:
        check_ref(ref, "headRef", "personas.run")
    assert exc.value.code_name == "CONFIG_ERROR"
    assert exc.value.message.startswith("personas.run.headRef must")


def test_the_packaged_persona_and_a_workspace_override(tmp_path: Path) -> None:
    packaged = manifest.load("code-review", tmp_path)
    assert (packaged.source, packaged.require_clean_worktree) == ("builtin", True)
    own = tmp_path / "personas" / "code-review"
    own.mkdir(parents=True)
    (own / "persona.json").write_text('{"requireCleanWorktree": false}')
    (own / "rubric.md").write_text("Be brief.")
    mine = manifest.load("code-review", tmp_path)
    assert (mine.source, mine.rubric, mine.require_clean_worktree) == ("workspace", "Be brief.", False)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"persona.json": "{", "rubric.md": "r"}, "Persona 'p' (workspace) persona.json is not valid JSON"),
        ({"persona.json": '{"name": "q"}', "rubric.md": "r"}, "Persona 'p' (workspace) persona.json name must be 'p'"),
        ({"persona.json": "{}"}, "Persona 'p' (workspace) rubric.md could not be read"),
        ({"persona.json": "{}", "rubric.md": " "}, "Persona 'p' (workspace) rubric.md must hold 1 to 4000"),
    ],
)
def test_broken_workspace_personas_are_config_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    own = tmp_path / "personas" / "p"
    own.mkdir(parents=True)
    for name, text in files.items():
        (own / name).write_text(text)
    with pytest.raises(AthenaError) as exc:
        manifest.load("p", tmp_path)
    assert exc.value.message.startswith(message), exc.value.message


def test_a_rubric_symlinked_out_of_its_directory_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the model")
    own = tmp_path / "personas" / "p"
    own.mkdir(parents=True)
    (own / "persona.json").write_text("{}")
    (own / "rubric.md").symlink_to(secret)
    with pytest.raises(AthenaError) as exc:
        manifest.load("p", tmp_path)
    assert exc.value.message == "Persona 'p' (workspace) rubric.md is a symlink leading out of the persona's directory."


@pytest.mark.parametrize("name", ["../x", "Code", "a/b", "x" * 25, ".hidden", ""])
def test_persona_names_are_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(AthenaError) as exc:
        manifest.load(name, tmp_path)
    assert exc.value.message.startswith("personas.run.name must")
