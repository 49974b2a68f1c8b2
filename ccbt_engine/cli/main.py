"""The ``ccbt`` command: a click group whose subcommands live one per module.

Subcommands are imported only when used, so ``ccbt config get`` does not pay for importing the
torrent creator or the network stack.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from ccbt_engine import __version__

#: command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "config": "ccbt_engine.cli.config_cmd:config",
    "info": "ccbt_engine.cli.info_cmd:info",
    "create": "ccbt_engine.cli.create_cmd:create",
    "download": "ccbt_engine.cli.download_cmd:download",
    "seed": "ccbt_engine.cli.download_cmd:seed",
    "magnet": "ccbt_engine.cli.magnet_cmd:magnet",
    "daemon": "ccbt_engine.cli.daemon_cmd:daemon",
    "dashboard": "ccbt_engine.cli.dashboard_cmd:dashboard",
    "remote": "ccbt_engine.cli.remote_cmd:remote",
}


class LazyGroup(click.Group):
    """A group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ccbt")
@click.option("--debug", is_flag=True, help="Log everything, including protocol traffic.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """ccBitTorrent command line."""
    from ccbt_engine.observability.logs import configure_cli_logging

    # observability.log_* settings; the flags only raise what the terminal shows
    configure_cli_logging(logging.DEBUG if debug else logging.INFO if verbose else None)
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["verbose"] = verbose


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="ccbt")
