"""``ccbt dashboard``: a live terminal view of a running ``ccbt daemon``.

It is a pure remote client: torrents and session totals come from the REST API about once a
second, the "recent events" pane from the events WebSocket (its Hello message carries the
daemon's recent history, so even ``--once`` shows what just happened). A daemon that goes away
mid-session shows as an error line and is retried; one that is not there at start is a clear
message and exit status 1.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ccbt_engine.cli.download_cmd import _size
from ccbt_engine.cli.remote_cmd import queue_label, queue_order
from ccbt_engine.config import ConfigError, load_settings
from ccbt_engine.remote.client import RemoteClient, RemoteClientError, RemoteUnreachable

EVENTS_SHOWN = 8
#: seconds before the event stream is re-opened after the daemon dropped it
RECONNECT_DELAY = 2.0

err_console = Console(stderr=True)


@dataclass
class DashboardState:
    """What one frame shows; filled by :meth:`refresh` and the event follower."""

    url: str
    session: dict[str, Any] = field(default_factory=dict)
    torrents: list[dict[str, Any]] = field(default_factory=list)
    events: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=EVENTS_SHOWN)
    )
    error: str | None = None

    async def refresh(self, client: RemoteClient) -> None:
        self.session = await client.session()
        self.torrents = await client.torrents()
        self.error = None

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "Hello":
            # the daemon's recent history; replacing (not appending) avoids duplicates on
            # reconnect
            self.events.clear()
            recent = event.get("recent")
            self.events.extend(e for e in (recent if isinstance(recent, list) else []) if e)
        else:
            self.events.append(event)


@click.command()
@click.option("--host", default=None, help="Daemon address (default: remote.host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Daemon port (remote.port)."
)
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
def dashboard(host: str | None, port: int | None, once: bool, interval: float) -> None:
    """Watch a running `ccbt daemon`: torrents, totals and recent events; Ctrl-C quits."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    client = RemoteClient.from_settings(
        settings, host=host, port=port, client_name="ccbt-dashboard"
    )
    try:
        asyncio.run(_once(client) if once else _live(client, interval))
    except RemoteUnreachable:
        err_console.print(
            f"[red]no ccbt daemon reachable at {client.url}[/red] — start one with "
            "`ccbt daemon`, or check remote.host / remote.port (or --host / --port)",
            highlight=False,
        )
        sys.exit(1)
    except RemoteClientError as exc:
        if exc.status == 401:
            message = (
                "the daemon refused our credentials: check remote.username and the password "
                "(`ccbt config set remote.password` or CCBT_REMOTE_PASSWORD)"
            )
        else:
            message = str(exc)
        err_console.print(f"[red]error:[/red] {message}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:  # Windows, where signal handlers are not available
        pass


async def _once(client: RemoteClient) -> None:
    async with client:
        state = DashboardState(client.url)
        await state.refresh(client)
        events = client.events()
        try:
            state.on_event(await anext(events))  # the Hello, with recent history
        finally:
            await events.aclose()
    Console().print(render(state))


async def _live(client: RemoteClient, interval: float) -> None:
    from rich.live import Live

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with client:
        state = DashboardState(client.url)
        await state.refresh(client)  # unreachable at start: the caller explains and exits
        follower = asyncio.create_task(_follow_events(client, state))
        try:
            with Live(render(state), refresh_per_second=4, transient=False) as live:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), interval)
                    if stop.is_set():
                        break
                    try:
                        await state.refresh(client)
                    except RemoteClientError as exc:
                        state.error = exc.message
                    live.update(render(state))
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower


async def _follow_events(client: RemoteClient, state: DashboardState) -> None:
    """Keep the event pane fed; re-open the stream when the daemon drops it."""
    while True:
        with contextlib.suppress(RemoteClientError, OSError):
            async for event in client.events():
                state.on_event(event)
        await asyncio.sleep(RECONNECT_DELAY)


# -- rendering -----------------------------------------------------------------------------
def render(state: DashboardState) -> RenderableType:
    """One frame: a header line with session totals, the torrent table (in queue order, with
    the 1-based position in "#"), the event pane."""
    names = {t.get("info_hash"): t.get("name", "?") for t in state.torrents}
    parts: list[RenderableType] = [_header(state), _torrent_table(state.torrents)]
    if state.error:
        parts.insert(1, Text(f"daemon unreachable: {state.error} (retrying)", style="red"))
    parts.append(_events_panel(state.events, names))
    return Group(*parts)


def _header(state: DashboardState) -> Text:
    s = state.session
    limits = s.get("limits") or {}
    text = Text()
    text.append(f"ccbt {s.get('version', '?')}", style="bold")
    text.append(f"  {state.url}\n", style="dim")
    text.append(
        f"{s.get('torrents', 0)} torrents ({s.get('downloading', 0)} downloading, "
        f"{s.get('seeding', 0)} seeding)  peers {s.get('num_peers', 0)}  "
        f"↓ {_rate(s.get('download_rate'))} ↑ {_rate(s.get('upload_rate'))}  "
        f"total ↓ {_size(s.get('downloaded') or 0)} ↑ {_size(s.get('uploaded') or 0)}  "
        f"limits ↓ {_limit(limits.get('download'))} ↑ {_limit(limits.get('upload'))}"
    )
    if s.get("alt_speed"):
        text.append("  alt speed", style="yellow")
    return text


def _torrent_table(torrents: list[dict[str, Any]]) -> Table:
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)  # queue position, as in qBittorrent
    table.add_column("Name", ratio=3, no_wrap=True, overflow="ellipsis")
    table.add_column("Progress", ratio=2, no_wrap=True)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("↓", justify="right", no_wrap=True)
    table.add_column("↑", justify="right", no_wrap=True)
    table.add_column("Peers", justify="right", no_wrap=True)
    table.add_column("ETA", justify="right", no_wrap=True)
    if not torrents:
        table.add_row("", Text("no torrents", style="dim"), "", "", "", "", "", "", "")
    for t in sorted(torrents, key=queue_order):
        progress = float(t.get("progress") or 0.0)
        state = str(t.get("state", "?"))
        table.add_row(
            queue_label(t.get("queue_position")),
            str(t.get("name", "?")),
            ProgressBar(total=1.0, completed=progress),
            f"{progress * 100:.1f} %",
            Text(state, style=_STATE_STYLE.get(state, "")),
            _rate(t.get("download_rate")),
            _rate(t.get("upload_rate")),
            f"{t.get('num_peers', 0)} ({t.get('num_seeds', 0)})",
            _eta(t.get("eta"), state),
        )
    return table


_STATE_STYLE = {
    "seeding": "green",
    "downloading": "cyan",
    "error": "red",
    "paused": "dim",
    "queued": "yellow",
    "moving": "magenta",
}


def _events_panel(events: collections.deque[dict[str, Any]], names: dict[Any, Any]) -> Panel:
    lines = Text()
    for event in events:
        stamp = event.get("timestamp")
        when = time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "--:--:--"
        who = names.get(event.get("info_hash")) or (event.get("info_hash") or "session")[:12]
        details = ", ".join(
            f"{k}={v}"
            for k, v in event.items()
            if k not in ("type", "info_hash", "timestamp", "name") and v not in (None, "")
        )
        if lines:
            lines.append("\n")
        lines.append(f"{when} ", style="dim")
        lines.append(str(event.get("type", "?")), style="bold")
        lines.append(f" {who}" + (f"  {details}" if details else ""))
    if not lines:
        lines = Text("no events yet", style="dim")
    return Panel(lines, title="recent events", title_align="left")


def _rate(value: Any) -> str:
    return f"{_size(float(value or 0))}/s"


def _limit(value: Any) -> str:
    return "∞" if not value else f"{_size(float(value))}/s"


def _eta(value: Any, state: str) -> str:
    if state == "seeding" or value == 0:
        return "done" if state == "seeding" else "-"
    if value is None:
        return "∞"
    seconds = int(value)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
