"""``ccbt config``: show, read and change settings from the command line.

Machine-readable output (``show --format toml|json``, ``get``) goes to stdout unadorned so it can
be piped; notes and errors go to stderr. Every :class:`ConfigError` becomes exit code 2 with its
message and no traceback, because a typo in a setting is a usage error, not a crash.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import tomlkit

from ccbt_engine.config import (
    SECRET_KEYS,
    SECTION_NAMES,
    ConfigError,
    Settings,
    delete_secret,
    env_var_name,
    get_secret,
    get_value,
    load_settings_with_sources,
    local_config_path,
    reset_value_in_file,
    set_secret,
    set_value_in_file,
    to_plain,
    user_config_path,
)
from ccbt_engine.config.model import split_key

__all__ = ["config", "format_value", "parse_override_args"]

P = ParamSpec("P")
R = TypeVar("R")

EXIT_CONFIG_ERROR = 2

_override_option = click.option(
    "-O",
    "--override",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a setting for this command only (highest precedence); repeatable.",
)


def parse_override_args(items: Iterable[str]) -> dict[str, str]:
    """``["network.listen_port=7000"]`` -> ``{"network.listen_port": "7000"}`` for load_settings."""
    result: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        result[key.strip()] = value
    return result


def format_value(value: Any) -> str:
    """A setting as a user would type it back into ``ccbt config set``."""
    plain = to_plain(value)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, list):
        return json.dumps(plain)
    return str(plain)


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_CONFIG_ERROR)


def _config_errors_exit(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc))

    return wrapper


def _load(overrides: Iterable[str] = ()) -> tuple[Settings, dict[str, str]]:
    return load_settings_with_sources(overrides=parse_override_args(overrides))


def _target(local: bool) -> Path:
    return local_config_path() if local else user_config_path()


@click.group("config")
def config() -> None:
    """Show and change settings.

    \b
    Precedence (lowest to highest): defaults < user config.toml < ./ccbt.toml (--local)
    < CCBT_<SECTION>_<KEY> environment variables < -O/--override flags.
    """


@config.command("show")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["toml", "json", "table"]),
    default="toml",
    show_default=True,
    help="toml/json print every effective value; table also shows where each came from.",
)
@_override_option
@_config_errors_exit
def show(fmt: str, overrides: tuple[str, ...]) -> None:
    """Print the effective settings (all layers applied)."""
    settings, sources = _load(overrides)
    if fmt == "json":
        click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))
    elif fmt == "toml":
        doc = {
            section: {name: to_plain(value) for name, value in getattr(settings, section)}
            for section in SECTION_NAMES
        }
        click.echo(tomlkit.dumps(doc), nl=False)
    else:
        _print_table(settings, sources)


def _print_table(settings: Settings, sources: Mapping[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Effective settings", show_lines=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_column("from", style="dim")
    for section in SECTION_NAMES:
        for name, value in getattr(settings, section):
            key = f"{section}.{name}"
            table.add_row(key, format_value(value), sources.get(key, "default"))
    Console(soft_wrap=True).print(table)


@config.command("get")
@click.argument("key")
@click.option("--reveal", is_flag=True, help="Print a secret's value instead of <set>.")
@_override_option
@_config_errors_exit
def get(key: str, reveal: bool, overrides: tuple[str, ...]) -> None:
    """Print the effective value of KEY (section.key), e.g. network.listen_port."""
    if key in SECRET_KEYS:
        secret = get_secret(key)
        if secret is None:
            click.echo("<not set>")
        else:
            click.echo(secret if reveal else "<set>")
        return
    split_key(key)  # unknown key: say so before loading anything
    settings, _ = _load(overrides)
    click.echo(format_value(get_value(settings, key)))


@config.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--local", is_flag=True, help="Write ./ccbt.toml instead of the user config.")
@_config_errors_exit
def set_(key: str, value: str | None, local: bool) -> None:
    """Set KEY to VALUE in the user config file (or ./ccbt.toml with --local).

    Secrets (remote.password, network.proxy_password) go to the OS keyring; leave VALUE out to be
    prompted without echo. Lists take JSON (["0.0.0.0","::"]) or commas (mon,tue).
    """
    if key in SECRET_KEYS:
        if local:
            raise ConfigError(f"{key} is kept in the OS keyring; --local does not apply to it")
        if value is None:
            value = click.prompt(key, hide_input=True, confirmation_prompt=True)
        set_secret(key, value)
        click.echo(f"{key} stored in the OS keyring")
        return
    if value is None:
        raise ConfigError(f"missing VALUE: usage: ccbt config set {key} VALUE")
    path = _target(local)
    set_value_in_file(path, key, value)
    click.echo(f"{key} = {format_value(_value_in(path, key))} written to {path}")
    _notes_after_set(key, local)


@config.command("reset")
@click.argument("key")
@click.option("--local", is_flag=True, help="Reset in ./ccbt.toml instead of the user config.")
@_config_errors_exit
def reset(key: str, local: bool) -> None:
    """Remove KEY from the config file so it falls back to the lower layers (or the default)."""
    if key in SECRET_KEYS:
        removed = delete_secret(key)
        click.echo(f"{key} {'removed from' if removed else 'was not in'} the OS keyring")
        return
    path = _target(local)
    reset_value_in_file(path, key)
    settings, _ = _load()
    click.echo(f"{key} reset in {path}; effective value: {format_value(get_value(settings, key))}")


@config.command("path")
def path_cmd() -> None:
    """Print where the user and local config files are (and whether they exist)."""
    for label, file in (("user", user_config_path()), ("local", local_config_path())):
        state = "exists" if file.exists() else "not created yet"
        click.echo(f"{label}: {file} ({state})")


def _value_in(path: Path, key: str) -> Any:
    """The value ``key`` now has in ``path`` alone (what was just written)."""
    from ccbt_engine.config.loader import build_settings, read_file_layer

    return get_value(build_settings(read_file_layer(path, "config file")), key)


def _notes_after_set(key: str, local: bool) -> None:
    """Tell the user when a higher layer still wins, so `set` never silently does nothing, and
    when the settings as a whole now allow no peer connection (each key alone is valid)."""
    try:
        settings, sources = _load()
    except ConfigError as exc:
        click.echo(f"warning: the settings do not load as a whole: {exc}", err=True)
        return
    reason = settings.network.no_transport_reason()
    if reason is not None:
        click.echo(f"warning: {reason}", err=True)
    source = sources.get(key, "")
    shadowed_by_env = source.startswith("environment")
    shadowed_by_local = not local and source.startswith("local config file")
    if shadowed_by_env or shadowed_by_local:
        hint = f"unset {env_var_name(key)}" if shadowed_by_env else "use --local"
        click.echo(
            f"note: {source} overrides this; effective value is "
            f"{format_value(get_value(settings, key))} ({hint} to change it)",
            err=True,
        )
