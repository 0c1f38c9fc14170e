"""How a `command` agent is started: through a launcher interpreter, never a `preexec_fn`.

Python code between fork and exec is unsafe in a multi-threaded server (the store's threads may hold the
allocator's locks at fork time; crashes were seen), so whatever must happen in the child before the agent
runs happens in a fresh single-threaded interpreter that then execs the allowed program.
"""

from __future__ import annotations

import os
import sys
import textwrap

from athena_server.engine.providers.sandbox import AllowedProgram, Limits

# The launcher asks the kernel for SIGKILL on the server's death (PR_SET_PDEATHSIG, kept across exec),
# gives up if the server already died, applies the resource limits (kept across exec; soft = hard so the
# agent cannot raise them), then execs the allowed program by its real path. A limit it cannot apply stops
# it: the agent never runs unlimited.
# Python's start-up sets LC_CTYPE under the C locale (PEP 538), so the launcher puts back the value the
# server chose (empty: unset): the agent gets exactly the environment the server built.
# argv: server pid, LC_CTYPE, RLIMIT_CPU seconds, RLIMIT_AS bytes, RLIMIT_NOFILE (0 = unlimited), path, argv...
LAUNCHER = textwrap.dedent(
    """
    import ctypes, os, resource, sys
    try:
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != int(sys.argv[1]):
        os._exit(137)
    try:
        for name, value in zip(("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE"), map(int, sys.argv[3:6])):
            if value > 0:
                which = getattr(resource, name)
                hard = resource.getrlimit(which)[1]
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(which, (value, value))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"cannot apply the resource limits: {e}")
        os._exit(126)
    env = {k: v for k, v in os.environ.items() if k != "LC_CTYPE"}
    if sys.argv[2]:
        env["LC_CTYPE"] = sys.argv[2]
    try:
        os.execve(sys.argv[6], sys.argv[7:], env)
    except OSError as e:
        sys.stderr.write(f"cannot start {sys.argv[6]!r}: {e}")
        os._exit(127)
    """
)


def launch_argv(program: AllowedProgram, args: list[str], limits: Limits, env: dict[str, str]) -> list[str]:
    """The argv that runs `program` with `args` through the launcher, under `limits`. The launcher is this
    server's own interpreter, so it can always be executed; a program that cannot be makes it exit 127."""
    return [
        sys.executable,
        "-S",
        "-I",
        "-c",
        LAUNCHER,
        str(os.getpid()),
        env.get("LC_CTYPE", ""),
        *limits.launcher_args(),
        program.path,
        program.argv0,
        *args,
    ]
