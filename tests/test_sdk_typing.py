"""The SDK's types are real: mypy accepts the example program and rejects a program that passes a wrong
argument type or reads a field the response does not have, naming exactly those mistakes.

mypy runs in-process with the project's configuration and its default cache (`.mypy_cache`, which the
`mypy` step before the tests warms): about half a second warm, five cold (measured on 2 cores).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def mypy(monkeypatch: pytest.MonkeyPatch, *files: Path) -> tuple[int, list[str]]:
    """mypy's exit status and its `error`/`note` lines, paths made relative to their file's directory."""
    monkeypatch.chdir(ROOT)  # mypy_path ("gen") is relative to the working directory
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *map(str, files)])
    lines = [re.sub(r"^.*?([^/]+\.py):", r"\1:", line) for line in out.splitlines() if ": " in line]
    return status, [line for line in lines if re.search(r": (error|note): ", line)] or [err.strip()]


def test_the_example_type_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    status, lines = mypy(monkeypatch, ROOT / "examples" / "sdk_quickstart.py")
    assert (status, lines) == (0, [""]), lines


def test_wrong_types_are_reported_exactly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    program = tmp_path / "misuse.py"
    program.write_text(
        textwrap.dedent(
            """\
            import athena_client

            async def main() -> None:
                with athena_client.connect("grpc://127.0.0.1:50051") as client:
                    response = client.run_service.get_run(run_id=5)
                    print(response.run.no_such_field)
                    reveal_type(response)
                    reveal_type(next(client.event_service.iter_list_events(limit=2)))
                    client.work_service.enqueue_work(session_id="s", payload="p", mode="followup")
                async with athena_client.connect_async("http://127.0.0.1:8787") as aclient:
                    reveal_type(await aclient.run_service.create_run(session_id="s", input="hi"))
                    created: int = await aclient.run_service.create_run(session_id="s", input="hi")
            """
        )
    )
    status, lines = mypy(monkeypatch, program)
    assert status == 1
    assert lines == [
        'misuse.py:5: error: Argument "run_id" to "get_run" of "RunServiceClient" has incompatible type "int"; '
        'expected "str | None"  [arg-type]',
        'misuse.py:6: error: "Run" has no attribute "no_such_field"  [attr-defined]',
        'misuse.py:7: note: Revealed type is "athena.v1.runs_pb2.GetRunResponse"',
        'misuse.py:8: note: Revealed type is "athena.v1.events_pb2.Event"',
        'misuse.py:11: note: Revealed type is "athena.v1.runs_pb2.CreateRunResponse"',
        'misuse.py:12: error: Incompatible types in assignment (expression has type "CreateRunResponse", '
        'variable has type "int")  [assignment]',
    ]
