"""The client side of the stack stands alone: importing the SDK (and the CLI module) loads neither the
server nor the gateway, so a service that only calls Athena does not pull in SQLAlchemy, FastAPI or the
servicers."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT

PROBE = """
import sys
import athena_client, athena_client.client, athena_client.cli
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("athena_server", "athena_gateway"))
heavy = sorted(m for m in ("sqlalchemy", "fastapi", "starlette", "uvicorn", "alembic") if m in sys.modules)
print(loaded, heavy)
"""


def test_importing_the_sdk_and_the_cli_loads_neither_server_nor_gateway() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []", out.stdout + out.stderr
