"""The `athena` command (`athena_client.cli:main`, or `python -m athena_client.cli`).

- `root.py`: the command itself; `servers.py`: the process commands (`api serve`, `auth new-token`).
- `commands.py`: the table of client commands, one row per RPC; `contract_commands.py` builds them,
  `fields.py` maps request fields to flags, `composites.py` holds the hand-written ones.
- `connection.py`: transports `api` / `local` / `auto` and credentials; `output.py`: tables and JSON;
  `exits.py`: exit codes and error reports.

Importing it loads neither the server nor the gateway: the local transport and the serve commands load
the server when they run.
"""

from athena_client.cli.root import main

__all__ = ["main"]
