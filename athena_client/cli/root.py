"""The `athena` command: the process commands (`api serve`, ...) and a command per RPC of the contract.

The contract's commands are built when first asked for, so `athena run ...` builds one command, not
sixty; `athena --help` lists them all from the command table. Shell completion is click's:
`eval "$(_ATHENA_COMPLETE=bash_source athena)"` (zsh_source, fish_source), which `--show-completion SHELL`
prints.
"""

from __future__ import annotations

import importlib.metadata

import click
from click.shell_completion import get_completion_class

from athena_client.cli.connection import connection_options
from athena_client.cli.contract_commands import build_top_level, top_level
from athena_client.cli.servers import SERVER_GROUPS

DISTRIBUTION = "athena-control-plane"
PROG = "athena"
COMPLETE_VAR = "_ATHENA_COMPLETE"

HELP = """Athena: a control plane for AI-agent runs.

Client commands call the REST API (--transport api), run the control plane in this process on the store
of the working directory (--transport local), or use the API when it answers and run locally otherwise
(--transport auto, the default). Their options are accepted here or after the command.
"""

EPILOG = """\b
Exit codes:
  0  done
  1  any other failure
  2  usage: bad flags, or input the server refused (CONFIG_ERROR and other 4xx)
  3  not found (404)
  4  refused by policy, auth, rate limit or a conflict (401, 403, 409, 429)
  5  the server, the run or the connection failed (5xx, timeouts, no answer)
  130 interrupted

\b
Shell completion (bash; zsh and fish alike):
  eval "$(athena --show-completion bash)\""""


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"{PROG} {version()}")
    ctx.exit()


def _show_completion(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if not value or ctx.resilient_parsing:
        return
    shell = get_completion_class(value)
    assert shell is not None  # the Choice allows only the shells click has
    click.echo(shell(ctx.command, {}, PROG, COMPLETE_VAR).source())
    ctx.exit()


class Athena(click.Group):
    """The root group: the process commands, and the contract's commands built when first asked for."""

    def __init__(self) -> None:
        super().__init__(
            PROG,
            help=HELP,
            epilog=EPILOG,
            no_args_is_help=True,
            params=[
                *connection_options(),
                click.Option(
                    ["--version"],
                    is_flag=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_print_version,
                    help="Print the version and exit.",
                ),
                click.Option(
                    ["--show-completion"],
                    type=click.Choice(("bash", "zsh", "fish")),
                    expose_value=False,
                    is_eager=True,
                    callback=_show_completion,
                    help="Print the shell completion script for SHELL and exit.",
                ),
            ],
        )
        for group in SERVER_GROUPS:
            self.add_command(group)

    def list_commands(self, ctx: click.Context) -> list[str]:
        contract = list(top_level())
        return [*contract, *(name for name in self.commands if name not in contract)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            built = build_top_level(cmd_name)
            if built is not None:
                self.add_command(built, cmd_name)
        return self.commands.get(cmd_name)


def root() -> Athena:
    return Athena()


def main() -> None:
    root().main(prog_name=PROG)
