"""The `command` and `openai` providers against real processes and a real HTTP server, and pricing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from athena_server.config import Settings
from athena_server.engine.pricing import ModelPrice, Pricing
from athena_server.engine.providers.base import ProviderRequest
from athena_server.engine.providers.command import CommandProvider
from athena_server.engine.providers.openai import OpenAIProvider
from athena_server.engine.providers.registry import build_registry, default_registry
from athena_server.errors import AthenaError, ErrorCode
from tests.fake_openai import FakeOpenAI, Scripted

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def request(command: list[str] | tuple[str, ...] = (), **kw: Any) -> ProviderRequest:
    base: dict[str, Any] = {
        "run_id": "run_1",
        "session_id": "ses_1",
        "model": "agent-model",
        "prompt": "user: hello",
        "input": "hello",
        "command": tuple(command),
    }
    base.update(kw)
    return ProviderRequest(**base)


def script(code: str, *args: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code), *args]


# ---------------------------------------------------------------------------------------------- processes


def proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) from /proc, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    """A zombie (exited, waiting to be reaped by whoever adopted it) counts as dead."""
    state = proc_state(pid)
    return state is not None and state[0] != "Z"


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) members of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            state = proc_state(int(entry))
            if state is not None and state[1] == pgid and state[0] != "Z":
                members.append(int(entry))
    return members


def assert_group_gone(pgid: int) -> None:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    # Members may linger only as zombies awaiting their adoptive parent's reaping.
    assert group_alive(pgid) == [], f"process group {pgid} still has live members"


def read_pids(path: Path) -> list[int] | None:
    """The pids an agent wrote, once it has written the whole line."""
    text = path.read_text() if path.exists() else ""
    return [int(p) for p in text.split()] if text.endswith("\n") else None


async def wait_pids(path: Path, within: float = 10) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pids = read_pids(path)
        if pids:
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError("agent did not write its pids")


def kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# An agent that starts a grandchild `sleep`, reports both pids (and ignores SIGTERM when asked), then sleeps.
SLEEPER = """
import os, signal, subprocess, sys, time
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "30"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
time.sleep(30)
"""


# ---------------------------------------------------------------------------------------------- command


async def test_command_output_stderr_evidence_env_and_usage() -> None:
    agent = script(
        """
        import os, sys
        prompt = sys.stdin.read()
        sys.stderr.write("checked " + os.environ["ATHENA_RUN_ID"])
        print("saw " + prompt)
        print("env", os.environ["ATHENA_SESSION_ID"], os.environ["ATHENA_MODEL"], os.environ["ATHENA_ATTEMPT"])
        print()
        """
    )
    result = await CommandProvider().complete(request(agent, prompt="user: héllo", attempt=2))
    assert result.output == "saw user: héllo\nenv ses_1 agent-model 2"
    assert result.model == "agent-model"
    assert result.input_tokens == len("user: héllo")
    assert result.output_tokens == len(result.output)
    assert [(e.label, e.type, e.content) for e in result.evidence] == [("stderr", "text", "checked run_1")]


async def test_command_empty_stderr_is_still_evidence_and_bad_utf8_is_replaced() -> None:
    agent = script("import sys; sys.stdout.buffer.write(b'ok \\xff\\n')")
    result = await CommandProvider().complete(request(agent))
    assert result.output == "ok \ufffd"
    assert [(e.label, e.content) for e in result.evidence] == [("stderr", "")]


async def test_command_nonzero_exit_is_a_provider_error_with_stderr_tail() -> None:
    agent = script("import sys; sys.stderr.write('x' * 2000 + 'no luck'); sys.exit(3)")
    with pytest.raises(AthenaError) as info:
        await CommandProvider().complete(request(agent))
    err = info.value
    assert err.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert not err.retryable
    assert err.message.startswith("command exited with code 3: ")
    assert err.message.endswith("no luck")
    assert len(err.message) == len("command exited with code 3: ") + 500


async def test_command_killed_by_signal_is_a_provider_error() -> None:
    agent = script("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(AthenaError) as info:
        await CommandProvider().complete(request(agent))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert "SIGKILL" in info.value.message and not info.value.retryable


async def test_command_missing_or_unexecutable_program(tmp_path: Path) -> None:
    with pytest.raises(AthenaError) as info:
        await CommandProvider().complete(request(["/nonexistent/agent-xyz", "--flag"]))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert "/nonexistent/agent-xyz" in info.value.message and not info.value.retryable

    plain = tmp_path / "agent.sh"
    plain.write_text("#!/bin/sh\necho hi\n")
    plain.chmod(0o644)
    with pytest.raises(AthenaError) as info:
        await CommandProvider().complete(request([str(plain)]))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert str(plain) in info.value.message and not info.value.retryable


async def test_command_without_argv_is_a_config_error() -> None:
    with pytest.raises(AthenaError) as info:
        await CommandProvider().complete(request([]))
    assert info.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR
    assert "config.command" in info.value.message


async def test_command_on_process_gets_the_real_pid() -> None:
    seen: list[int] = []

    async def on_process(pid: int) -> None:
        # Called right after start, before the prompt is written (so this agent is still waiting for it):
        # the agent is alive and leads its own process group.
        assert alive(pid)
        assert os.getpgid(pid) == pid
        seen.append(pid)

    agent = script("import os, sys; sys.stdin.read(); print(os.getpid())")
    result = await CommandProvider().complete(request(agent, on_process=on_process))
    assert seen == [int(result.output)]


async def test_command_cancel_stops_the_whole_group_promptly(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    provider = CommandProvider.from_settings(Settings(command_kill_grace_seconds=2.0))
    task = asyncio.create_task(provider.complete(request(script(SLEEPER, str(pidfile), "plain"))))
    pids = await wait_pids(pidfile)
    try:
        leader, grandchild = pids
        assert os.getpgid(grandchild) == leader
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert_group_gone(leader)
        assert not alive(grandchild)
    finally:
        kill_quietly(pids)


async def test_command_sigterm_ignored_gets_sigkill_after_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    provider = CommandProvider.from_settings(Settings(command_kill_grace_seconds=0.3))
    task = asyncio.create_task(provider.complete(request(script(SLEEPER, str(pidfile), "ignore-term"))))
    pids = await wait_pids(pidfile)
    try:
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 1.5
        assert_group_gone(pids[0])
    finally:
        kill_quietly(pids)


async def test_command_repeated_cancel_still_cleans_up(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    provider = CommandProvider(kill_grace_seconds=0.3)
    task = asyncio.create_task(provider.complete(request(script(SLEEPER, str(pidfile), "ignore-term"))))
    pids = await wait_pids(pidfile)
    try:
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_group_gone(pids[0])
    finally:
        kill_quietly(pids)


async def test_command_background_children_are_killed_when_the_leader_exits(tmp_path: Path) -> None:
    # One child keeps our stdout open (so EOF never comes on its own), one is detached from the pipes.
    agent = script(
        """
        import os, subprocess, sys
        holder = subprocess.Popen(["sleep", "30"])
        detached = subprocess.Popen(["sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(os.getpid(), holder.pid, detached.pid)
        """
    )
    started = time.monotonic()
    result = await CommandProvider().complete(request(agent))
    pids = [int(p) for p in result.output.split()]
    try:
        assert time.monotonic() - started < 2.0
        await asyncio.sleep(0.1)
        assert_group_gone(pids[0])
        assert not any(alive(p) for p in pids)
    finally:
        kill_quietly(pids)


async def test_command_large_output_and_input_do_not_deadlock() -> None:
    # Writes 1 MB to each output before reading a 1 MB stdin: sequential I/O would block on a full pipe.
    agent = script(
        """
        import sys
        for _ in range(1024):
            sys.stdout.write("o" * 1023 + "\\n")
            sys.stderr.write("e" * 1024)
        sys.stdout.flush(); sys.stderr.flush()
        data = sys.stdin.read()
        sys.stdout.write(f"read {len(data)}\\n")
        """
    )
    prompt = "p" * (1024 * 1024)
    result = await asyncio.wait_for(CommandProvider().complete(request(agent, prompt=prompt)), timeout=30)
    lines = result.output.split("\n")
    assert len(lines) == 1025 and lines[-1] == f"read {len(prompt)}"
    assert len(result.evidence[0].content) == 1024 * 1024
    assert result.input_tokens == len(prompt)


async def test_command_agent_not_reading_stdin_is_fine() -> None:
    agent = script("print('done')")
    result = await CommandProvider().complete(request(agent, prompt="x" * (1024 * 1024)))
    assert result.output == "done"


def test_command_agent_dies_with_a_sigkilled_server(tmp_path: Path) -> None:
    """PDEATHSIG: a server killed with SIGKILL has no cancellation path; the kernel kills the agent."""
    pidfile = tmp_path / "pids"
    server = textwrap.dedent(
        f"""
        import asyncio, sys
        from athena_server.engine.providers.base import ProviderRequest
        from athena_server.engine.providers.command import CommandProvider
        argv = (sys.executable, "-c", {SLEEPER!r}, {str(pidfile)!r}, "plain")
        req = ProviderRequest(run_id="r", session_id="s", model="m", prompt="", input="", command=argv)
        asyncio.run(CommandProvider().complete(req))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "gen")])}
    proc = subprocess.Popen([PY, "-c", server], env=env, cwd=REPO)
    pids: list[int] = []
    try:
        pids = asyncio.run(wait_pids(pidfile))
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while alive(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(pids[0])
    finally:
        proc.kill()
        kill_quietly(pids)


# ---------------------------------------------------------------------------------------------- openai


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
async def openai(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(base_url=fake.base_url, api_key="sk-test", timeout_seconds=5)
    yield provider
    await provider.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_openai_request_shape_and_usage(fake: FakeOpenAI, openai: OpenAIProvider) -> None:
    history = (("system", "be brief"), ("user", "hi"), ("assistant", "hello"), ("tool", "ls: 3 files"))
    result = await openai.complete(request(model="gpt-test", input="again", history=history))
    assert len(fake.requests) == 1
    sent = fake.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "ls: 3 files"},
            {"role": "user", "content": "again"},
        ],
    }
    assert result.output == "reply: again"
    assert (result.input_tokens, result.output_tokens) == (11, 7)
    assert result.model == "gpt-test-2024"
    assert result.evidence == () and result.cost_usd is None


async def test_openai_without_key_missing_usage_and_null_content(fake: FakeOpenAI) -> None:
    provider = OpenAIProvider(base_url=fake.base_url + "/")
    try:
        fake.usage = None
        fake.null_content = True
        fake.model_suffix = ""
        result = await provider.complete(request(model="m1", input="x"))
    finally:
        await provider.aclose()
    assert "authorization" not in fake.requests[0].headers
    assert fake.requests[0].path == "/v1/chat/completions"
    assert (result.output, result.input_tokens, result.output_tokens, result.model) == ("", 0, 0, "m1")


@pytest.mark.parametrize(
    ("status", "body", "retryable", "detail"),
    [
        (429, {"error": {"message": "Rate limit reached", "type": "requests"}}, True, "Rate limit reached"),
        (500, {"error": {"message": "The server had an error"}}, True, "The server had an error"),
        (503, "upstream unavailable", True, "upstream unavailable"),
        (400, {"error": {"message": "Invalid model 'nope'", "type": "invalid_request_error"}}, False, "nope"),
        (401, {"error": {"message": "Incorrect API key provided"}}, False, "Incorrect API key"),
    ],
)
async def test_openai_http_errors(
    fake: FakeOpenAI, openai: OpenAIProvider, status: int, body: dict[str, Any] | str, retryable: bool, detail: str
) -> None:
    fake.script(Scripted(status, body))
    with pytest.raises(AthenaError) as info:
        await openai.complete(request())
    err = info.value
    assert err.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert err.retryable is retryable
    assert f"HTTP {status}" in err.message and detail in err.message
    # The script is used up: the next request succeeds on the same client.
    assert (await openai.complete(request(input="next"))).output == "reply: next"


async def test_openai_connection_refused_is_retryable() -> None:
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_seconds=5)
    try:
        with pytest.raises(AthenaError) as info:
            await provider.complete(request())
    finally:
        await provider.aclose()
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR and info.value.retryable


async def test_openai_timeout_is_retryable() -> None:
    # A server that accepts but never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        provider = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", timeout_seconds=0.3)
        try:
            with pytest.raises(AthenaError) as info:
                await provider.complete(request())
        finally:
            await provider.aclose()
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR and info.value.retryable
    assert "timed out" in info.value.message


async def test_openai_cancellation_is_prompt_and_the_client_stays_usable(
    fake: FakeOpenAI, openai: OpenAIProvider
) -> None:
    fake.delay_seconds = 3
    task = asyncio.create_task(openai.complete(request()))
    for _ in range(500):
        if fake.requests:
            break
        await asyncio.sleep(0.01)
    assert fake.requests, "the request did not reach the server"
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    fake.delay_seconds = 0
    assert (await openai.complete(request(input="after"))).output == "reply: after"


@pytest.mark.parametrize("body", [{"id": "x", "object": "chat.completion"}, {"choices": []}, "not json"])
async def test_openai_malformed_response_is_not_retryable(
    fake: FakeOpenAI, openai: OpenAIProvider, body: dict[str, Any] | str
) -> None:
    fake.script(Scripted(200, body))
    with pytest.raises(AthenaError) as info:
        await openai.complete(request())
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR and not info.value.retryable
    assert "malformed" in info.value.message


async def test_openai_bad_base_url_is_a_config_error() -> None:
    provider = OpenAIProvider(base_url="ftp://example.invalid/v1")
    try:
        with pytest.raises(AthenaError) as info:
            await provider.complete(request())
    finally:
        await provider.aclose()
    assert info.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR


async def test_registry_builds_all_providers_and_closes_them(fake: FakeOpenAI) -> None:
    settings = Settings(openai_base_url=fake.base_url, openai_api_key="k", command_kill_grace_seconds=0.5)
    registry = build_registry(settings)
    assert registry.names() == ["command", "mock", "openai"]
    command = registry.get("command")
    assert isinstance(command, CommandProvider) and command.kill_grace_seconds == 0.5
    openai = registry.get("openai")
    assert isinstance(openai, OpenAIProvider)
    assert (await openai.complete(request(input="via registry"))).output == "reply: via registry"
    client = openai._client
    assert client is not None
    await registry.aclose()
    assert client.is_closed and openai._client is None
    await registry.aclose()  # idempotent
    assert default_registry().names() == ["command", "mock", "openai"]


# ---------------------------------------------------------------------------------------------- pricing


def test_pricing_cost_arithmetic_and_unknown_cost() -> None:
    pricing = Pricing(
        {
            "openai/gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.6),
            "openai/free": ModelPrice(),
            "command/agent": ModelPrice.model_validate({"inputPerMillion": 3}),
        }
    )
    cost = pricing.cost_usd("openai", "gpt-4o-mini", 1_000_000, 500_000)
    assert cost == pytest.approx(0.15 + 0.3)
    assert pricing.cost_usd("openai", "gpt-4o-mini", 1000, 0) == pytest.approx(0.00015)
    assert pricing.cost_usd("openai", "free", 10, 10) == 0.0
    assert pricing.cost_usd("command", "agent", 2_000_000, 99) == pytest.approx(6.0)
    assert pricing.cost_usd("openai", "gpt-unpriced", 10, 10) is None
    assert pricing.cost_usd("mock", "gpt-4o-mini", 10, 10) is None
    assert pricing.models("openai") == ["free", "gpt-4o-mini"]
    assert pricing.models("mock") == []


def test_pricing_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ATHENA_MODEL_PRICES",
        '{"openai/gpt-4o-mini":{"inputPerMillion":0.15,"outputPerMillion":0.6},'
        '"openai/snake":{"input_per_million":1,"output_per_million":2}}',
    )
    settings = Settings()
    assert settings.model_prices["openai/gpt-4o-mini"] == ModelPrice(input_per_million=0.15, output_per_million=0.6)
    pricing = Pricing.from_settings(settings)
    assert pricing.cost_usd("openai", "snake", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert pricing.models("openai") == ["gpt-4o-mini", "snake"]


def test_pricing_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATHENA_MODEL_PRICES", raising=False)
    assert Pricing.from_settings(Settings()).cost_usd("openai", "gpt-4o-mini", 1, 1) is None
    monkeypatch.setenv("ATHENA_MODEL_PRICES", '{"openai/x":{"inputPerMillion":-1}}')
    with pytest.raises(ValueError):
        Settings()
