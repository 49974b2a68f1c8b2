"""``ccbt remote …``: one-shot commands against a running ``ccbt daemon`` (or a GUI serving
``remote.enabled``), for shells and cron jobs; ``ccbt dashboard`` is the live view.

Every command is one REST call through :class:`~ccbt_engine.remote.client.RemoteClient`, so it
needs nothing of the engine but the address (``remote.host``/``remote.port``, or ``--host`` /
``--port``) and the credentials (``remote.username`` and the password from the keyring or
``CCBT_REMOTE_PASSWORD``). A torrent is named by its info hash or any unique prefix of it (as
``ccbt remote list`` shows). Exit status: 0 done, 1 daemon unreachable or refused, 2 bad usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ccbt_engine.cli.download_cmd import _size
from ccbt_engine.config import ConfigError, load_settings
from ccbt_engine.pathsafe import expand_home
from ccbt_engine.remote.client import RemoteClient, RemoteClientError, RemoteUnreachable

T = TypeVar("T")
err_console = Console(stderr=True)


@click.group()
@click.option("--host", default=None, help="Daemon address (default: remote.host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Daemon port (remote.port)."
)
@click.pass_context
def remote(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Control a running `ccbt daemon`: list, add, pause, resume, remove, queue, move, limits."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(f"error: {exc}", 2)
    ctx.obj = RemoteClient.from_settings(settings, host=host, port=port, client_name="ccbt-cli")


def _fail(message: str, status: int = 1) -> NoReturn:
    err_console.print(f"[red]{message}[/red]", highlight=False)
    sys.exit(status)


def _call(client: RemoteClient, action: Callable[[RemoteClient], Awaitable[T]]) -> T:
    """Run one action in a fresh loop; turn remote failures into a message and exit 1."""

    async def run() -> T:
        async with client:
            return await action(client)

    try:
        return asyncio.run(run())
    except RemoteUnreachable:
        _fail(
            f"no ccbt daemon reachable at {client.url} — start one with `ccbt daemon`, or "
            "check remote.host / remote.port (or --host / --port)"
        )
    except RemoteClientError as exc:
        if exc.status == 401:
            _fail(
                "the daemon refused our credentials: check remote.username and the password "
                "(`ccbt config set remote.password` or CCBT_REMOTE_PASSWORD)"
            )
        _fail(f"error: {exc.message}")


async def _resolve(client: RemoteClient, ref: str) -> str:
    """The full info hash for ``ref`` (a hash or a unique prefix of at least 4 characters)."""
    ref = ref.lower()
    hashes = [str(t["info_hash"]) for t in await client.torrents()]
    if ref in hashes:
        return ref
    matches = [h for h in hashes if h.startswith(ref)] if len(ref) >= 4 else []
    if len(matches) == 1:
        return matches[0]
    problem = "matches several torrents" if matches else "matches no torrent"
    raise RemoteClientError(0, f"{ref!r} {problem} (give more of the info hash)")


def _client(ctx: click.Context) -> RemoteClient:
    client = ctx.find_object(RemoteClient)
    assert client is not None
    return client


@remote.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Session totals: torrents, peers, rates, limits."""
    s = _call(_client(ctx), lambda c: c.session())
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    limits = s.get("limits") or {}
    click.echo(
        f"ccbt {s.get('version')}  peers on port {s.get('listen_port')}\n"
        f"torrents {s.get('torrents')} ({s.get('downloading')} downloading, "
        f"{s.get('seeding')} seeding), peers {s.get('num_peers')}\n"
        f"down {_size(s.get('download_rate') or 0)}/s  up {_size(s.get('upload_rate') or 0)}/s  "
        f"limits down {_limit(limits.get('download'))} up {_limit(limits.get('upload'))}"
        + ("  (alt speed)" if s.get("alt_speed") else "")
    )


@remote.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every torrent, in queue order: position, hash, name, progress, state, rates, peers."""
    torrents = _call(_client(ctx), lambda c: c.torrents())
    if as_json:
        click.echo(json.dumps(torrents, indent=2))
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("#", "Hash", "Name", "%", "State", "Down", "Up", "Peers"):
        table.add_column(
            name,
            no_wrap=name != "Name",
            justify="left" if name in ("Hash", "Name", "State") else "right",
        )
    for t in sorted(torrents, key=queue_order):
        table.add_row(
            queue_label(t.get("queue_position")),
            str(t.get("info_hash", ""))[:12],
            str(t.get("name", "?")),
            f"{float(t.get('progress') or 0) * 100:.1f}",
            str(t.get("state", "?")),
            f"{_size(t.get('download_rate') or 0)}/s",
            f"{_size(t.get('upload_rate') or 0)}/s",
            str(t.get("num_peers", 0)),
        )
    Console().print(table)


@remote.command("add")
@click.argument("source")
@click.option("-o", "--save-path", default=None, help="Download folder on the daemon's machine.")
@click.option("--paused", is_flag=True, help="Add without starting.")
@click.pass_context
def add_cmd(ctx: click.Context, source: str, save_path: str | None, paused: bool) -> None:
    """Add a .torrent file (read here, sent to the daemon) or a magnet link."""
    if source.lower().startswith("magnet:"):
        added = _call(_client(ctx), lambda c: c.add_magnet(source, save_path, paused=paused))
    else:
        try:
            data = expand_home(source).read_bytes()
        except OSError as exc:
            _fail(f"error: cannot read {source}: {exc.strerror or exc}", 2)
        except ValueError as exc:
            _fail(f"error: cannot read {source}: {exc}", 2)
        added = _call(_client(ctx), lambda c: c.add_torrent(data, save_path, paused=paused))
    click.echo(f"added {added.get('name')} ({added.get('info_hash')})")


def _each(action: str) -> Callable[[click.Context, tuple[str, ...]], None]:
    def run(ctx: click.Context, torrents: tuple[str, ...]) -> None:
        async def go(c: RemoteClient) -> list[str]:
            done = []
            for ref in torrents:
                ih = await _resolve(c, ref)
                status = await getattr(c, action)(ih)
                done.append(f"{status.get('name')}: {status.get('state')}")
            return done

        for line in _call(_client(ctx), go):
            click.echo(line)

    return run


for _name, _help in (
    ("pause", "Pause torrents (info hash or unique prefix)."),
    ("resume", "Resume torrents."),
    ("recheck", "Verify torrents' data again."),
):
    remote.command(_name, help=_help)(
        click.argument("torrents", nargs=-1, required=True)(click.pass_context(_each(_name)))
    )


_DIRECTIONS = ("up", "down", "top", "bottom")


@remote.command("queue")
@click.argument("direction", type=click.Choice(_DIRECTIONS))
@click.argument("torrents", nargs=-1, required=True)
@click.pass_context
def queue_cmd(ctx: click.Context, direction: str, torrents: tuple[str, ...]) -> None:
    """Move torrents up/down one place or to the top/bottom of the queue.

    Several torrents keep their order among themselves, as in qBittorrent: `queue top A B`
    puts both first, the one that was higher in the queue above the other.
    """

    async def go(c: RemoteClient) -> list[str]:
        listed = {str(t["info_hash"]): t for t in await c.torrents()}
        hashes = list(dict.fromkeys([await _resolve(c, ref) for ref in torrents]))
        # moving towards the top: the highest first; towards the bottom: the lowest first, so
        # neighbours never swap places with each other
        hashes.sort(key=lambda ih: queue_order(listed[ih]), reverse=direction in ("down", "top"))
        moved = {ih: bool((await c.queue_move(ih, direction)).get("moved")) for ih in hashes}
        now = {str(t["info_hash"]): t for t in await c.torrents()}  # places after all moves
        return [
            f"{now[ih].get('name')}: #{queue_label(now[ih].get('queue_position'))}"
            + ("" if moved[ih] else " (already there)")
            for ih in sorted(moved, key=lambda ih: queue_order(now[ih]))
            if ih in now
        ]

    for line in _call(_client(ctx), go):
        click.echo(line)


@remote.command("move")
@click.argument("torrent")
@click.argument("path")
@click.option("--wait", is_flag=True, help="Wait until the files are moved (or not).")
@click.pass_context
def move_cmd(ctx: click.Context, torrent: str, path: str, wait: bool) -> None:
    """Set location: move a torrent's files to PATH, an absolute folder on the daemon's machine.

    The move is all or nothing; on failure the files stay where they were. Without --wait the
    command returns at once and the outcome shows as a StorageMoved / StorageMoveFailed event
    (`ccbt dashboard`).
    """

    async def go(c: RemoteClient) -> dict[str, Any]:
        return await c.move_storage(await _resolve(c, torrent), path, wait=wait)

    reply = _call(_client(ctx), go)
    if wait:
        click.echo(f"{reply.get('name')}: now in {reply.get('save_path')}")
    else:
        click.echo(f"moving {reply.get('moving')} to {reply.get('path')}")


@remote.command("remove")
@click.argument("torrents", nargs=-1, required=True)
@click.option("--delete-files", is_flag=True, help="Also delete the downloaded data.")
@click.pass_context
def remove_cmd(ctx: click.Context, torrents: tuple[str, ...], delete_files: bool) -> None:
    """Remove torrents from the daemon."""

    async def go(c: RemoteClient) -> list[str]:
        hashes = [await _resolve(c, ref) for ref in torrents]
        for ih in hashes:
            await c.remove(ih, delete_files=delete_files)
        return hashes

    for ih in _call(_client(ctx), go):
        click.echo(f"removed {ih}" + (" and its data" if delete_files else ""))


@remote.command("limits")
@click.option("--down", type=click.IntRange(0), default=None, help="KiB/s, 0 = unlimited.")
@click.option("--up", type=click.IntRange(0), default=None, help="KiB/s, 0 = unlimited.")
@click.option("--alt/--no-alt", default=None, help="Switch the alternative limits on/off.")
@click.pass_context
def limits_cmd(ctx: click.Context, down: int | None, up: int | None, alt: bool | None) -> None:
    """Show or set the global rate limits (without options: show them)."""
    kib = 1024

    async def go(c: RemoteClient) -> dict[str, Any]:
        if down is None and up is None and alt is None:
            return await c.session()
        return await c.set_limits(
            None if down is None else down * kib, None if up is None else up * kib, alt
        )

    s = _call(_client(ctx), go)
    limits = s.get("limits") or {}
    click.echo(
        f"down {_limit(limits.get('download'))}  up {_limit(limits.get('upload'))}"
        + ("  (alt speed on)" if s.get("alt_speed") else "")
    )


@remote.command("peers")
@click.argument("torrent")
@click.pass_context
def peers_cmd(ctx: click.Context, torrent: str) -> None:
    """A torrent's connected peers."""

    async def go(c: RemoteClient) -> list[dict[str, Any]]:
        return await c.peers(await _resolve(c, torrent))

    for p in _call(_client(ctx), go):
        click.echo(
            f"{p.get('address')}  {p.get('client')}  {p.get('flags')}  "
            f"{float(p.get('progress') or 0) * 100:.0f}%  "
            f"down {_size(p.get('download_rate') or 0)}/s up {_size(p.get('upload_rate') or 0)}/s"
        )


def queue_order(t: dict[str, Any]) -> tuple[int, int, str]:
    """Sort key: queue order, torrents without a place (magnets fetching metadata) last."""
    position = t.get("queue_position")
    if isinstance(position, int) and position >= 0:
        return (0, position, str(t.get("name", "")))
    return (1, 0, str(t.get("name", "")))


def queue_label(position: Any) -> str:
    """1-based queue position as qBittorrent's "#" column shows it; "*" without a place."""
    return str(position + 1) if isinstance(position, int) and position >= 0 else "*"


def _limit(value: Any) -> str:
    return "unlimited" if not value else f"{_size(float(value))}/s"
