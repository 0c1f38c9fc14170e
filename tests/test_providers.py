"""The `command` and `openai` providers against real processes and a real HTTP server, and pricing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from athena_server.config import Settings
from athena_server.engine.pricing import ModelPrice, Pricing
from athena_server.engine.providers.base import ProviderRequest
from athena_server.engine.providers.command import CommandProvider, Sandbox
from athena_server.engine.providers.openai import OpenAIProvider
from athena_server.engine.providers.registry import build_registry, default_registry
from athena_server.engine.providers.sandbox import (
    AllowedProgram,
    AllowList,
    CommandConfigError,
    Limits,
    agent_env,
    parse_passthrough,
)
from athena_server.errors import AthenaError, ErrorCode
from tests.fake_openai import FakeOpenAI, Scripted
from tests.support.async_waiting import finishes, wait_until_async
from tests.support.processes import alive, free_port
from tests.support.waiting import wait_until

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


RUN_VARS = ("ATHENA_RUN_ID", "ATHENA_SESSION_ID", "ATHENA_MODEL", "ATHENA_ATTEMPT")


def command(root: Path, *, kill_grace_seconds: float = 2.0, **sandbox: Any) -> CommandProvider:
    """A command provider allowed to run this interpreter, its agents' directories under `root`."""
    return CommandProvider(
        Sandbox(allow=AllowList.parse(PY), workdir_root=root / "agents", **sandbox),
        kill_grace_seconds=kill_grace_seconds,
    )


# ---------------------------------------------------------------------------------------------- processes


def proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) from /proc, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[2])


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
    # Members may linger only as zombies awaiting their adoptive parent's reaping; a SIGKILLed member is
    # gone once the kernel finished it off, which the caller does not wait for.
    wait_until(lambda: group_alive(pgid) == [], f"process group {pgid} to have no live members")


def read_pids(path: Path) -> list[int] | None:
    """The pids an agent wrote, once it has written the whole line."""
    text = path.read_text() if path.exists() else ""
    return [int(p) for p in text.split()] if text.endswith("\n") else None


async def wait_pids(path: Path) -> list[int]:
    return await wait_until_async(lambda: read_pids(path), "the agent to write its pids")


def read_line(path: Path) -> str | None:
    """The line an agent wrote to `path`, once it has written all of it."""
    text = path.read_text() if path.exists() else ""
    return text.strip() if text.endswith("\n") else None


async def wait_line(path: Path) -> str:
    return await wait_until_async(lambda: read_line(path), "the agent to write its line")


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
if sys.argv[2] == "note-term":  # survives SIGTERM, noting it in the pid file's sibling `<pidfile>.term`
    signal.signal(signal.SIGTERM, lambda *_: open(sys.argv[1] + ".term", "w").write("TERM\\n"))
child = subprocess.Popen(["sleep", "600"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
while True:
    time.sleep(600)
"""


# ---------------------------------------------------------------------------------------------- command


async def test_command_output_stderr_evidence_env_and_usage(tmp_path: Path) -> None:
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
    result = await command(tmp_path).complete(request(agent, prompt="user: héllo", attempt=2))
    assert result.output == "saw user: héllo\nenv ses_1 agent-model 2"
    assert result.model == "agent-model"
    assert result.input_tokens == len("user: héllo")
    assert result.output_tokens == len(result.output)
    assert [(e.label, e.type, e.content) for e in result.evidence] == [("stderr", "text", "checked run_1")]


async def test_command_empty_stderr_is_still_evidence_and_bad_utf8_is_replaced(tmp_path: Path) -> None:
    agent = script("import sys; sys.stdout.buffer.write(b'ok \\xff\\n')")
    result = await command(tmp_path).complete(request(agent))
    assert result.output == "ok \ufffd"
    assert [(e.label, e.content) for e in result.evidence] == [("stderr", "")]


async def test_command_nonzero_exit_is_a_provider_error_with_stderr_tail(tmp_path: Path) -> None:
    agent = script("import sys; sys.stderr.write('x' * 2000 + 'no luck'); sys.exit(3)")
    with pytest.raises(AthenaError) as info:
        await command(tmp_path).complete(request(agent))
    err = info.value
    assert err.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert not err.retryable
    assert err.message.startswith("command exited with code 3: ")
    assert err.message.endswith("no luck")
    assert len(err.message) == len("command exited with code 3: ") + 500


async def test_command_killed_by_signal_is_a_provider_error(tmp_path: Path) -> None:
    agent = script("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(AthenaError) as info:
        await command(tmp_path).complete(request(agent))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert "SIGKILL" in info.value.message and not info.value.retryable


async def test_command_without_argv_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(AthenaError) as info:
        await command(tmp_path).complete(request([]))
    assert info.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR
    assert "config.command" in info.value.message


async def test_command_on_process_gets_the_real_pid(tmp_path: Path) -> None:
    seen: list[int] = []

    async def on_process(pid: int) -> None:
        # Called right after start, before the prompt is written (so this agent is still waiting for it):
        # the agent is alive and leads its own process group.
        assert alive(pid)
        assert os.getpgid(pid) == pid
        seen.append(pid)

    agent = script("import os, sys; sys.stdin.read(); print(os.getpid())")
    result = await command(tmp_path).complete(request(agent, on_process=on_process))
    assert seen == [int(result.output)]


async def test_command_cancel_stops_the_whole_group_promptly(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    provider = CommandProvider.from_settings(
        Settings(command_allow=PY, command_workdir=tmp_path / "agents", command_kill_grace_seconds=600.0)
    )
    task = asyncio.create_task(provider.complete(request(script(SLEEPER, str(pidfile), "plain"))))
    pids = await wait_pids(pidfile)
    try:
        leader, grandchild = pids
        assert os.getpgid(grandchild) == leader
        task.cancel()
        # Promptly: the group ends on SIGTERM; the 600 s grace before a SIGKILL never comes into play.
        await finishes(task, "the cancelled call to end")
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_group_gone(leader)
        assert not alive(grandchild)
    finally:
        kill_quietly(pids)


async def test_command_sigterm_ignored_gets_sigkill_after_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    provider = CommandProvider.from_settings(
        Settings(command_allow=PY, command_workdir=tmp_path / "agents", command_kill_grace_seconds=0.3)
    )
    task = asyncio.create_task(provider.complete(request(script(SLEEPER, str(pidfile), "note-term"))))
    pids = await wait_pids(pidfile)
    try:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # SIGTERM came first (the agent noted it and lived on), then SIGKILL ended the group.
        assert (tmp_path / "pids.term").read_text() == "TERM\n"
        assert_group_gone(pids[0])
    finally:
        kill_quietly(pids)


async def test_command_repeated_cancel_still_cleans_up(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    provider = command(tmp_path, kill_grace_seconds=0.3)
    task = asyncio.create_task(provider.complete(request(script(SLEEPER, str(pidfile), "ignore-term"))))
    pids = await wait_pids(pidfile)
    try:
        task.cancel()
        await asyncio.sleep(0.05)  # on purpose: the second cancel lands while the first is being handled
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
        holder = subprocess.Popen(["sleep", "600"])
        detached = subprocess.Popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(os.getpid(), holder.pid, detached.pid)
        """
    )
    # The call ends when the leader exits: it does not wait for the children's 600 s (the EOF they hold off).
    task = asyncio.ensure_future(command(tmp_path).complete(request(agent)))
    await finishes(task, "the call to end once the leader exited")
    pids = [int(p) for p in task.result().output.split()]
    try:
        await wait_until_async(lambda: not any(alive(p) for p in pids), "the children to be killed")
        assert_group_gone(pids[0])
    finally:
        kill_quietly(pids)


async def test_command_large_output_and_input_do_not_deadlock(tmp_path: Path) -> None:
    # Writes 1 MiB to each output before reading a 1 MiB stdin: sequential I/O would block on a full pipe.
    agent = script(
        """
        import sys
        for i in range(1024):
            sys.stdout.write("o" * 1023 + "\\n")
            sys.stderr.write(str(i % 10) * 1024)
        sys.stdout.flush(); sys.stderr.flush()
        data = sys.stdin.read()
        sys.stdout.write(f"read {len(data)}\\n")
        """
    )
    prompt = "p" * (1024 * 1024)
    provider = command(tmp_path, output_max_bytes=2_000_000, stderr_tail_bytes=3000)
    result = await asyncio.wait_for(provider.complete(request(agent, prompt=prompt)), timeout=30)
    lines = result.output.split("\n")
    assert len(lines) == 1025 and lines[-1] == f"read {len(prompt)}"
    # Only the end of stderr is kept: its last 3,000 bytes (the end of iteration 1021, all of 1022 and 1023).
    assert result.evidence[0].content == "1" * 952 + "2" * 1024 + "3" * 1024
    assert result.input_tokens == len(prompt)


async def test_command_agent_not_reading_stdin_is_fine(tmp_path: Path) -> None:
    agent = script("print('done')")
    result = await command(tmp_path).complete(request(agent, prompt="x" * (1024 * 1024)))
    assert result.output == "done"


def test_command_agent_dies_with_a_sigkilled_server(tmp_path: Path) -> None:
    """PDEATHSIG: a server killed with SIGKILL has no cancellation path; the kernel kills the agent."""
    pidfile = tmp_path / "pids"
    server = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from athena_server.engine.providers.base import ProviderRequest
        from athena_server.engine.providers.command import CommandProvider, Sandbox
        from athena_server.engine.providers.sandbox import AllowList
        sandbox = Sandbox(allow=AllowList.parse(sys.executable), workdir_root=Path({str(tmp_path / "agents")!r}))
        argv = (sys.executable, "-c", {SLEEPER!r}, {str(pidfile)!r}, "plain")
        req = ProviderRequest(run_id="r", session_id="s", model="m", prompt="", input="", command=argv)
        asyncio.run(CommandProvider(sandbox).complete(req))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "gen")])}
    proc = subprocess.Popen([PY, "-c", server], env=env, cwd=REPO)
    pids: list[int] = []
    try:
        pids = asyncio.run(wait_pids(pidfile))
        proc.kill()
        proc.wait(timeout=10)
        wait_until(lambda: not alive(pids[0]), "the orphaned agent to be killed")
    finally:
        proc.kill()
        kill_quietly(pids)


# ---------------------------------------------------------------------------------------------- command sandbox


def executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(mode)
    return path


def test_allow_list_resolves_names_and_symlinks_to_real_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = executable(tmp_path / "bin" / "agent")
    real_agent = os.path.realpath(agent)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    allow = AllowList.parse(f" agent , {PY},")
    assert allow
    assert allow.resolve("agent") == AllowedProgram(path=real_agent, argv0=str(agent))
    assert allow.resolve(str(agent)) == AllowedProgram(path=real_agent, argv0=str(agent))
    # A symlink to an allowed file is that program; it runs under the name the operator allowed.
    link = tmp_path / "elsewhere" / "link"
    link.parent.mkdir()
    link.symlink_to(agent)
    assert allow.resolve(str(link)) == AllowedProgram(path=real_agent, argv0=str(agent))
    # The interpreter keeps its own spelling as argv[0] (a virtual environment finds itself by it).
    assert allow.resolve(PY) == AllowedProgram(path=os.path.realpath(PY), argv0=PY)
    # Other programs, relative paths (they would depend on the server's directory) and unknown names.
    for refused in ("sh", "/bin/sh", "./agent", "bin/agent", "no-such-agent-xyz", str(tmp_path / "bin")):
        assert allow.resolve(refused) is None, refused
    assert not AllowList.parse("") and not AllowList.parse(" , ")


def test_allow_list_entry_that_is_not_an_executable_file_is_named(tmp_path: Path) -> None:
    plain = executable(tmp_path / "plain.sh", mode=0o644)
    missing = tmp_path / "missing"
    hint = "list absolute paths or program names found on PATH."
    cases = [
        ("no-such-agent-xyz", f"ATHENA_COMMAND_ALLOW entry 'no-such-agent-xyz' was not found on PATH: {hint}"),
        ("bin/agent", f"ATHENA_COMMAND_ALLOW entry 'bin/agent' is a relative path: {hint}"),
        *(
            (str(path), f"ATHENA_COMMAND_ALLOW entry '{path}' is not an executable file ({os.path.realpath(path)}).")
            for path in (plain, missing, tmp_path)
        ),
    ]
    for entry, message in cases:
        with pytest.raises(CommandConfigError) as info:
            AllowList.parse(f"{PY},{entry}")
        assert str(info.value) == message
        with pytest.raises(CommandConfigError):
            build_registry(Settings(command_allow=f"{PY},{entry}"))


def test_passthrough_names_and_limits_are_checked() -> None:
    assert parse_passthrough(" HTTPS_PROXY, SSL_CERT_FILE ,HTTPS_PROXY,") == ("HTTPS_PROXY", "SSL_CERT_FILE")
    assert parse_passthrough("") == ()
    for name, message in (
        ("ATHENA_DATABASE_URL", "is a server setting; those are never passed to agents."),
        ("athena_openai_api_key", "is a server setting; those are never passed to agents."),
        ("A-B", "is not an environment variable name."),
    ):
        with pytest.raises(CommandConfigError) as info:
            parse_passthrough(f"HOME,{name}")
        assert str(info.value) == f"ATHENA_COMMAND_ENV_PASSTHROUGH entry {name!r} {message}"
    with pytest.raises(CommandConfigError) as limits:
        Limits(cpu_seconds=1, memory_mb=-1)
    assert str(limits.value) == "ATHENA_COMMAND_MEMORY_MB must be 0 (no limit) or positive."
    assert Limits(cpu_seconds=5, memory_mb=2, open_files=0).launcher_args() == ["5", str(2 * 1024 * 1024), "0"]
    with pytest.raises(CommandConfigError) as bound:
        build_registry(Settings(command_allow=PY, command_output_max_bytes=-1))
    assert str(bound.value) == "ATHENA_COMMAND_OUTPUT_MAX_BYTES must be 0 or positive."


def test_agent_env_is_the_minimal_set(tmp_path: Path) -> None:
    server = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/root",
        "ATHENA_DATABASE_URL": "postgresql://u:sekrit@db/athena",
        "OPENAI_API_KEY": "sekrit",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    run = {"ATHENA_RUN_ID": "r1", "ATHENA_ATTEMPT": "1"}
    assert agent_env(tmp_path, run, ("HTTPS_PROXY", "NOT_SET"), server) == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HTTPS_PROXY": "http://proxy:3128",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "ATHENA_RUN_ID": "r1",
        "ATHENA_ATTEMPT": "1",
    }
    assert agent_env(tmp_path, {}, (), {}) == {"PATH": os.defpath, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}


async def test_command_not_on_the_allow_list_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    provider = command(tmp_path)
    for argv in (["/bin/sh", "-c", f"id > {marker}"], ["sh", "-c", f"id > {marker}"], ["./python", "-V"]):
        with pytest.raises(AthenaError) as info:
            await provider.complete(request(argv))
        assert info.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR and not info.value.retryable
        assert info.value.message == (
            "The harness profile's config.command[0] is not a program on the server's allow-list "
            f"(ATHENA_COMMAND_ALLOW), so nothing was run. Received: {argv[0]}."
        )
    assert not marker.exists()
    assert not (tmp_path / "agents").exists(), "no working directory was even created"


# Prints what the agent got: its environment as exec'd (/proc, before Python itself adds anything), its
# working directory and that directory's mode, and its resource limits.
INSPECTOR = """
import json, os, resource, stat
with open("/proc/self/environ", "rb") as f:
    env = dict(e.decode().split("=", 1) for e in f.read().split(b"\\0") if e)
open("scratch.txt", "w").write("the agent may write here")
limits = {n: resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE")}
mode = stat.S_IMODE(os.stat(".").st_mode)
print(json.dumps({"env": env, "cwd": os.getcwd(), "mode": mode, "limits": limits, "files": os.listdir(".")}))
"""


async def test_command_agent_env_workdir_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATHENA_DATABASE_URL", "postgresql://u:sekrit@db/athena")
    monkeypatch.setenv("ATHENA_OPENAI_API_KEY", "sekrit")
    monkeypatch.setenv("GITHUB_TOKEN", "sekrit")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    limits = Limits(cpu_seconds=30, memory_mb=1024, open_files=100)
    provider = command(tmp_path, limits=limits, env_passthrough=("HTTPS_PROXY",))
    result = await provider.complete(request(script(INSPECTOR), run_id="run-a1", attempt=2))
    seen = json.loads(result.output)
    workdir = (tmp_path / "agents" / "run-a1.2").resolve()
    assert seen["cwd"] == str(workdir) and seen["mode"] == 0o700 and seen["files"] == ["scratch.txt"]
    assert seen["env"] == {
        "PATH": os.environ["PATH"],
        **{name: os.environ[name] for name in ("LANG", "LC_ALL", "TZ") if name in os.environ},
        "HOME": str(tmp_path / "agents" / "run-a1.2"),
        "TMPDIR": str(tmp_path / "agents" / "run-a1.2"),
        "ATHENA_RUN_ID": "run-a1",
        "ATHENA_SESSION_ID": "ses_1",
        "ATHENA_MODEL": "agent-model",
        "ATHENA_ATTEMPT": "2",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    gib = 1024 * 1024 * 1024
    assert seen["limits"] == {"RLIMIT_CPU": [30, 30], "RLIMIT_AS": [gib, gib], "RLIMIT_NOFILE": [100, 100]}
    assert not workdir.exists()
    assert os.listdir(tmp_path / "agents") == []


async def test_command_agent_env_keeps_the_locale_the_server_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher is Python, which sets LC_CTYPE at start-up under the C locale (PEP 538); the agent
    must still get exactly the environment the server built."""
    for name in ("LANG", "LC_ALL", "LC_CTYPE"):
        monkeypatch.delenv(name, raising=False)
    printer = """
    with open("/proc/self/environ", "rb") as f:
        print(sorted(e.split(b"=", 1)[0].decode() for e in f.read().split(b"\\0") if e))
    """
    result = await command(tmp_path).complete(request(script(printer)))
    assert result.output == str(sorted(["PATH", "HOME", "TMPDIR", *RUN_VARS, *(["TZ"] if "TZ" in os.environ else [])]))
    monkeypatch.setenv("LC_CTYPE", "C")
    shown = script("print(open('/proc/self/environ', 'rb').read().split(b'LC_CTYPE=')[1].split(b'\\0')[0].decode())")
    result = await command(tmp_path, env_passthrough=("LC_CTYPE",)).complete(request(shown))
    assert result.output == "C"


async def test_command_unlimited_when_limits_are_zero(tmp_path: Path) -> None:
    agent = script("import resource; print(resource.getrlimit(resource.RLIMIT_CPU)[0] == resource.RLIM_INFINITY)")
    result = await command(tmp_path, limits=Limits()).complete(request(agent))
    assert result.output == "True"


async def test_command_workdir_is_removed_after_failure_and_cancel(tmp_path: Path) -> None:
    # The agent leaves a tree it made hard to delete (read-only and unsearchable directories), then fails.
    mess = """
    import os, sys
    os.makedirs("a/b/c")
    open("a/b/c/f", "w").write("x")
    os.chmod("a/b/c", 0o500)
    os.chmod("a/b", 0o000)
    os.chmod(".", 0o500)
    sys.exit(4)
    """
    provider = command(tmp_path, kill_grace_seconds=0.3)
    with pytest.raises(AthenaError) as info:
        await provider.complete(request(script(mess), run_id="run-f"))
    assert info.value.message == "command exited with code 4: "
    assert os.listdir(tmp_path / "agents") == []

    where = tmp_path / "where"
    sleeper = "import os, sys, time; open(sys.argv[1], 'w').write(os.getcwd() + '\\n'); time.sleep(60)"
    task = asyncio.create_task(provider.complete(request(script(sleeper, str(where)), run_id="run-c")))
    assert await wait_line(where) == str((tmp_path / "agents" / "run-c.1").resolve())
    assert os.listdir(tmp_path / "agents") == ["run-c.1"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert os.listdir(tmp_path / "agents") == []


async def test_command_memory_limit_fails_the_attempt(tmp_path: Path) -> None:
    hog = "big = bytearray(1024 * 1024 * 1024); print('allocated', len(big))"
    with pytest.raises(AthenaError) as info:
        await command(tmp_path, limits=Limits(memory_mb=256)).complete(request(script(hog)))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR and not info.value.retryable
    assert info.value.message.startswith("command exited with code 1: Traceback")
    assert info.value.message.endswith("MemoryError\n")


async def test_command_cpu_limit_kills_a_spinning_agent(tmp_path: Path) -> None:
    # soft = hard: at the limit the kernel sends SIGKILL (the agent cannot catch it or raise the limit).
    spin = "while True: pass"
    with pytest.raises(AthenaError) as info:
        await command(tmp_path, limits=Limits(cpu_seconds=1)).complete(request(script(spin)))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR
    assert info.value.message == "command was killed by SIGKILL (exit code -9): "


async def test_command_output_bound_stops_the_agent(tmp_path: Path) -> None:
    exact = await command(tmp_path, output_max_bytes=100_000).complete(
        request(script("import sys; sys.stdout.write('x' * 100_000)"))
    )
    assert exact.output == "x" * 100_000

    pidfile = tmp_path / "pids"
    flood = f"""
    import os, sys
    open({str(pidfile)!r}, "w").write(f"{{os.getpid()}}\\n")
    while True:
        sys.stdout.write("y" * 65536)
    """
    with pytest.raises(AthenaError) as info:
        await command(tmp_path, output_max_bytes=100_000).complete(request(script(flood)))
    assert info.value.code == ErrorCode.ERROR_CODE_PROVIDER_ERROR and not info.value.retryable
    assert info.value.message == (
        "command output exceeded 100000 bytes (ATHENA_COMMAND_OUTPUT_MAX_BYTES); the agent was stopped."
    )
    pids = read_pids(pidfile)
    assert pids is not None
    assert_group_gone(pids[0])
    assert os.listdir(tmp_path / "agents") == []


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
    fake.delay_seconds = 600  # the answer never comes within the test: only the cancel can end the call
    task = asyncio.create_task(openai.complete(request()))
    await wait_until_async(lambda: fake.requests, "the request to reach the server")
    task.cancel()
    await finishes(task, "the cancelled request to end")
    with pytest.raises(asyncio.CancelledError):
        await task
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


async def test_registry_builds_all_providers_and_closes_them(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        openai_base_url=fake.base_url, openai_api_key="k", command_kill_grace_seconds=0.5, command_allow=PY
    )
    registry = build_registry(settings)
    assert registry.names() == ["command", "mock", "openai"]
    command = registry.get("command")
    assert isinstance(command, CommandProvider) and command.kill_grace_seconds == 0.5
    assert registry.find("command") is command and registry.find("nope") is None
    openai = registry.get("openai")
    assert isinstance(openai, OpenAIProvider)
    assert (await openai.complete(request(input="via registry"))).output == "reply: via registry"
    client = openai._client
    assert client is not None
    await registry.aclose()
    assert client.is_closed and openai._client is None
    await registry.aclose()  # idempotent
    # Without an allow-list the command provider does not exist.
    monkeypatch.delenv("ATHENA_COMMAND_ALLOW", raising=False)
    assert default_registry().names() == ["mock", "openai"]
    assert build_registry(Settings(command_allow=" , ")).names() == ["mock", "openai"]


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
