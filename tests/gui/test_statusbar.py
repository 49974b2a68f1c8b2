"""The status bar: connection icon and tooltip, DHT nodes, rates with totals, alt-speed button.

Wording and state are checked on synthetic ``NetworkStatus`` values; the last test runs a real
engine session on loopback (a fake NAT-PMP router on 127.0.0.1, a second session connecting in)
and watches the window's status bar follow it tick by tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from ccbt_engine import events as ev
from ccbt_engine.api import MappingStatus, NetworkStatus, Session
from ccbt_engine.config import Settings
from ccbt_gui.controller import EngineController
from ccbt_gui.main_window import MainWindow
from ccbt_gui.widgets.statusbar import NetworkStatusBar
from ccbt_gui.widgets.statusbar_text import (
    Connection,
    connection_state,
    connection_tooltip,
    dht_text,
    mapping_line,
    rates_text,
)
from tests.engine_settings import loopback_settings
from tests.portmap_fakes import EXTERNAL_NATPMP, FakeNatPmp, fake_options

MIB = 1024 * 1024


def _mapping(**kw: Any) -> MappingStatus:
    base: dict[str, Any] = dict(
        method="natpmp",
        transport="TCP",
        internal_port=6881,
        external_port=6881,
        state="mapped",
        error="",
        external_ip="203.0.113.7",
        lifetime=7200,
    )
    base.update(kw)
    return MappingStatus(**base)


def _net(**kw: Any) -> NetworkStatus:
    base: dict[str, Any] = dict(
        listen_port=6881,
        external_ip=None,
        dht_enabled=True,
        dht_nodes=0,
        incoming_seen=False,
        download_rate=0.0,
        upload_rate=0.0,
        downloaded=0,
        uploaded=0,
        alt_speed=False,
        mappings=(),
    )
    base.update(kw)
    return NetworkStatus(**base)


# -- wording (no Qt) --------------------------------------------------------------------------
def test_connection_state_follows_qbittorrent() -> None:
    assert connection_state(None) is Connection.DISCONNECTED
    assert connection_state(_net(listen_port=0)) is Connection.DISCONNECTED
    # a mapped port is not proof of reachability: only an incoming peer is
    assert connection_state(_net(mappings=(_mapping(),))) is Connection.FIREWALLED
    assert connection_state(_net(incoming_seen=True)) is Connection.CONNECTED


def test_settings_that_reach_no_peer_read_disconnected_with_the_reason() -> None:
    reason = "no peer transport is enabled: network.enable_tcp and network.enable_utp are off"
    ns = _net(incoming_seen=True, transport_problem=reason)
    assert connection_state(ns) is Connection.DISCONNECTED
    assert connection_tooltip(ns).splitlines() == [
        "Connection status: Disconnected",
        "No peer transport is enabled: network.enable_tcp and network.enable_utp are off.",
    ]


def test_tooltip_names_port_address_incoming_and_every_mapping() -> None:
    ns = _net(
        external_ip="203.0.113.7",
        mappings=(
            _mapping(),
            _mapping(method="upnp", transport="UDP", state="failed", error="no router answered"),
            _mapping(method="upnp", transport="TCP", state="pending", external_port=None),
        ),
    )
    lines = connection_tooltip(ns).splitlines()
    assert lines[:4] == [
        "Connection status: Firewalled",
        "Listening port: 6881",
        "External IP: 203.0.113.7",
        "Incoming connections seen: no",
    ]
    assert "  NAT-PMP TCP 6881: mapped → 203.0.113.7:6881, lease 2h 0m" in lines
    assert "  UPnP UDP 6881: failed (no router answered)" in lines
    assert "  UPnP TCP 6881: pending" in lines
    tip = connection_tooltip(_net(incoming_seen=True))
    assert "Connection status: Connected" in tip
    assert "External IP: not known yet" in tip and "Incoming connections seen: yes" in tip
    assert "Port mapping: off" in tip and "may be blocked" not in tip
    assert "engine is not running" in connection_tooltip(None)
    assert "Not listening" in connection_tooltip(_net(listen_port=0))


def test_mapping_line_permanent_lease_and_unknown_address() -> None:
    assert mapping_line(_mapping(lifetime=0, external_ip=None, external_port=None)) == (
        "NAT-PMP TCP 6881: mapped → ?:6881, permanent"
    )
    assert mapping_line(_mapping(state="failed", error="")) == "NAT-PMP TCP 6881: failed"


def test_dht_and_rates_text() -> None:
    assert dht_text(None) == "DHT: –"
    assert dht_text(_net(dht_enabled=False, dht_nodes=0)) == "DHT: off"
    assert dht_text(_net(dht_nodes=1)) == "DHT: 1 node"
    assert dht_text(_net(dht_nodes=312)) == "DHT: 312 nodes"
    assert rates_text(2 * MIB, 512, None, None) == "↓ 2.0 MiB/s   ↑ 512 B/s"
    assert rates_text(0, 0, 3 * 1024 * MIB, 0) == "↓ 0 B/s (3.0 GiB)   ↑ 0 B/s (0 B)"


# -- the widget --------------------------------------------------------------------------------
def _state(bar: NetworkStatusBar) -> Connection:
    """Read through a call, so the type checker does not narrow it between updates."""
    return bar.state


def test_widget_shows_a_tick_and_changes_icon_with_the_state(qtbot: Any) -> None:
    bar = NetworkStatusBar()
    qtbot.addWidget(bar)
    assert _state(bar) is Connection.DISCONNECTED
    first = bar.connection.pixmap().toImage()
    bar.set_rates(1.5 * MIB, 1024)
    bar.set_network(_net(dht_nodes=42, downloaded=5 * MIB, uploaded=MIB))
    assert _state(bar) is Connection.FIREWALLED
    assert bar.connection.pixmap().toImage() != first  # orange "!" instead of the red cross
    assert bar.dht.text() == "DHT: 42 nodes"
    assert bar.rates.text() == "↓ 1.5 MiB/s (5.0 MiB)   ↑ 1.0 KiB/s (1.0 MiB)"
    assert bar.connection.toolTip().startswith("Connection status: Firewalled")
    bar.set_network(_net(incoming_seen=True))
    assert _state(bar) is Connection.CONNECTED
    assert bar.connection.accessibleName() == "Connection status: Connected"
    bar.set_network(None)  # engine gone: totals gone too
    assert bar.rates.text() == "↓ 1.5 MiB/s   ↑ 1.0 KiB/s"


def test_alt_button_emits_on_click_only(qtbot: Any) -> None:
    bar = NetworkStatusBar()
    qtbot.addWidget(bar)
    seen: list[bool] = []
    bar.altSpeedToggled.connect(seen.append)
    bar.set_alt_speed(True)  # the engine said so: no echo
    assert bar.alt_button.isChecked() and seen == []
    assert "are on" in bar.alt_button.toolTip()
    qtbot.mouseClick(bar.alt_button, Qt.MouseButton.LeftButton)
    assert seen == [False] and not bar.alt_button.isChecked()
    assert "Click to switch to the alternative" in bar.alt_button.toolTip()


# -- in the main window, without an engine -----------------------------------------------------
def test_window_without_engine_is_disconnected_and_alt_button_switches(qtbot: Any) -> None:
    win = MainWindow(settings=Settings())
    qtbot.addWidget(win)
    assert win.net_status.parent() is not None and win.net_status.isVisibleTo(win.statusBar())
    win.on_global_rates(2 * MIB, 512.0)
    assert _state(win.net_status) is Connection.DISCONNECTED
    assert win.rates_label.text() == "↓ 2.0 MiB/s   ↑ 512 B/s"
    qtbot.mouseClick(win.net_status.alt_button, Qt.MouseButton.LeftButton)
    assert win.settings.limits.alt_enabled and win.tray.alt_action.isChecked()
    assert win.statusBar().currentMessage() == "Alternative speed limits on"
    # the engine's schedule switches back: the button follows (AltSpeedChanged)
    win.on_engine_event(ev.AltSpeedChanged(enabled=False, by="schedule"))
    assert not win.net_status.alt_button.isChecked() and not win.settings.limits.alt_enabled
    # the tray's switch reaches the button too
    win.tray.alt_action.trigger()
    assert win.net_status.alt_button.isChecked()


# -- on a real engine --------------------------------------------------------------------------
async def _until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.timeout(60)
def test_status_bar_follows_a_real_session(
    qtbot: Any, run_async: Any, small_torrent: tuple[Path, Path], tmp_path: Path
) -> None:
    data, torrent = small_torrent

    async def body() -> None:
        nat = await FakeNatPmp().start()
        settings = loopback_settings(
            network={"enable_natpmp": True}, ui={"snapshot_interval_ms": 100}
        )
        session = Session(settings, listen_port=0, portmap_options=fake_options(nat))
        await session.start()
        controller = EngineController(settings)
        controller.attach(session)
        window = MainWindow(controller)
        qtbot.addWidget(window)
        window.show()
        bar = window.net_status
        try:
            # listening, the fake router maps both transports, nobody has connected in yet
            await _until(lambda: "mapped →" in bar.connection.toolTip(), "mapping in tooltip")
            await _until(lambda: "UDP" in bar.connection.toolTip(), "both transports")
            tip = bar.connection.toolTip()
            assert _state(bar) is Connection.FIREWALLED
            assert f"Listening port: {session.listen_port}" in tip
            assert f"External IP: {EXTERNAL_NATPMP}" in tip
            assert "Incoming connections seen: no" in tip
            assert bar.dht.text() == "DHT: off"  # GUI tests keep the DHT off

            # a peer connects in (a second session fetching our torrent): connected
            await session.add_torrent(torrent, data.parent)
            async with Session(loopback_settings(), listen_port=0) as other:
                # wanting nothing yet keeps the connection up for the ticks to sample it
                handle = await other.add_torrent(torrent, tmp_path / "dl", file_priorities=[0] * 3)
                handle.connect_peer("127.0.0.1", session.listen_port)
                await _until(lambda: _state(bar) is Connection.CONNECTED, "connected")
                assert "Incoming connections seen: yes" in bar.connection.toolTip()
                handle.set_file_priorities([4] * 3)
                await handle.wait_finished(timeout=30)
            sent = 75_000  # the small torrent's payload, uploaded once
            await _until(lambda: session.network_status().uploaded >= sent, "upload total")
            # the session's upload total reaches the bar on a later tick
            await _until(lambda: bar.rates.text().endswith("(73.2 KiB)"), "the upload total")

            # the button switches the engine; the engine's own switch moves the button
            qtbot.mouseClick(bar.alt_button, Qt.MouseButton.LeftButton)
            assert session.alt_speed
            session.set_alt_speed(False)
            await _until(lambda: not bar.alt_button.isChecked(), "button follows the engine")
            assert not window.tray.alt_action.isChecked()
            window.grab().save(str(tmp_path / "window.png"))
        finally:
            await controller.stop()
            nat.close()
        # after the engine stopped the next tick (by hand here) reads "disconnected"
        window.refresh_network()
        assert _state(window.net_status) is Connection.DISCONNECTED

    run_async(body(), timeout=50)
