"""A libtorrent reference peer driven by JSON lines, run as its own process.

Why a subprocess: the reference client must never share our event loop or GIL (benchmarks would
measure libtorrent's Python bindings fighting ccbt for the interpreter), and a separate PID is the
only thing we can always clean up, measure (CPU, RSS) and kill.

Protocol (one JSON object per line):

stdin, commands (an optional ``"id"`` is echoed back in the reply):
  {"cmd": "connect", "host": "127.0.0.1", "port": 6881}
  {"cmd": "status"}
  {"cmd": "apply_settings", "settings": {"upload_rate_limit": 1000000}}
  {"cmd": "pause"} / {"cmd": "resume"} / {"cmd": "force_recheck"}
  {"cmd": "quit"}
stdout, events (each has ``"type"``):
  ready     once listening and the torrent is added: ``port``, ``info_hash_v1``, ``info_hash_v2``
  status    every ``--status-interval`` seconds and in reply to ``status``
  finished  once, the first time the torrent has every wanted piece (a seeder: right after checking)
  seed_incomplete  with --seed, the check found pieces missing (``total_done`` < ``total_wanted``)
  alert     alerts of interest (errors, hash failures, connects/disconnects with reasons)
  reply     acknowledgement of a command; ``ok`` false with ``error`` when it failed
  error     fatal start-up problem; the process then exits with status 2

End of stdin (the parent died or closed the pipe) means quit: a reference peer never outlives the
harness that started it.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

import libtorrent as lt

_ENC_POLICY = {
    "forced": lt.enc_policy.pe_forced,
    "enabled": lt.enc_policy.pe_enabled,
    "disabled": lt.enc_policy.pe_disabled,
}
_ENC_LEVEL = {
    "rc4": lt.enc_level.pe_rc4,
    "plaintext": lt.enc_level.pe_plaintext,
    "both": lt.enc_level.pe_both,
}

# Alerts whose text the harness (and a person reading a failed test's log) wants to see.
_INTERESTING = {
    "add_torrent",
    "listen_failed",
    "listen_succeeded",
    "peer_connect",
    "incoming_connection",
    "peer_disconnected",
    "peer_error",
    "peer_ban",
    "peer_blocked",
    "hash_failed",
    "torrent_error",
    "file_error",
    "torrent_finished",
    "torrent_checked",
    "state_changed",
    "tracker_error",
    "tracker_warning",
    "tracker_reply",
    "tracker_announce",
    "fastresume_rejected",
    "performance",
    "metadata_failed",
    "udp_error",
    "torrent_removed",
}

_out_lock = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON event line; flushed at once because the parent waits on it."""
    obj.setdefault("t", round(time.monotonic(), 3))
    line = json.dumps(obj, default=str)
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            os._exit(0)


def build_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Session settings for a quiet, loopback-only peer that talks to other 127.0.0.1 peers."""
    settings: dict[str, Any] = {}
    if args.fast:
        # libtorrent's own preset for a high-throughput seed, then bigger buffers still: loopback
        # benchmarks must measure ccbt, not a reference peer starved of send buffer.
        settings.update(lt.high_performance_seed())
        settings.update(
            {
                "send_buffer_watermark": 64 * 1024 * 1024,
                "send_buffer_low_watermark": 8 * 1024 * 1024,
                "send_buffer_watermark_factor": 200,
                "max_queued_disk_bytes": 64 * 1024 * 1024,
                "max_peer_recv_buffer_size": 16 * 1024 * 1024,
                "max_out_request_queue": 5000,
                "max_allowed_in_request_queue": 5000,
            }
        )
    settings.update(
        {
            "listen_interfaces": f"{args.host}:{args.port}",
            "outgoing_interfaces": "",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            # Quitting waits for the event=stopped announce; never let that stall a test.
            "stop_tracker_timeout": 1,
            # Every peer in these tests is 127.0.0.1: without this libtorrent drops all but one.
            "allow_multiple_connections_per_ip": True,
            "out_enc_policy": _ENC_POLICY[args.enc],
            "in_enc_policy": _ENC_POLICY[args.enc],
            "allowed_enc_level": _ENC_LEVEL[args.enc_level],
            "prefer_rc4": args.enc_level == "rc4",
            "enable_outgoing_tcp": not args.utp_only,
            "enable_incoming_tcp": not args.utp_only,
            "enable_outgoing_utp": not args.tcp_only,
            "enable_incoming_utp": not args.tcp_only,
            "user_agent": "lt_peer (ccBitTorrent interop harness)",
            "alert_mask": int(
                lt.alert_category.error
                | lt.alert_category.peer
                | lt.alert_category.status
                | lt.alert_category.storage
                | lt.alert_category.tracker
                | lt.alert_category.connect
                | lt.alert_category.performance_warning
            ),
        }
    )
    if args.settings:
        settings.update(json.loads(args.settings))
    return settings


def status_dict(handle: Any) -> dict[str, Any]:
    st = handle.status()
    return {
        "type": "status",
        "state": str(st.state).rsplit(".", 1)[-1],
        "progress": st.progress,
        "num_peers": st.num_peers,
        "num_seeds": st.num_seeds,
        "num_connections": st.num_connections,
        "download_rate": st.download_payload_rate,
        "upload_rate": st.upload_payload_rate,
        "total_download": st.total_payload_download,
        "total_upload": st.total_payload_upload,
        "all_time_download": st.all_time_download,
        "all_time_upload": st.all_time_upload,
        "total_done": st.total_done,
        "total_wanted": st.total_wanted,
        "num_pieces": st.num_pieces,
        "is_finished": st.is_finished,
        "is_seeding": st.is_seeding,
        "paused": bool(st.flags & lt.torrent_flags.paused),
        "errc": st.errc.message() if st.errc.value() else "",
    }


def alert_dict(a: Any) -> dict[str, Any]:
    name = a.what()
    out: dict[str, Any] = {"type": "alert", "alert": name, "message": a.message()}
    ip = getattr(a, "ip", None)
    if ip is not None:
        out["peer"] = f"{ip[0]}:{ip[1]}" if isinstance(ip, tuple) else str(ip)
    if name == "peer_disconnected":
        out["reason"] = int(a.reason)
        out["error"] = a.error.message()
        out["op"] = str(a.op)
        out["socket_type"] = str(a.socket_type)
    elif name == "hash_failed":
        out["piece"] = a.piece_index
    elif name in {"peer_error", "torrent_error", "file_error", "listen_failed", "tracker_error"}:
        err = getattr(a, "error", None)
        if err is not None:
            out["error"] = err.message()
    elif name == "listen_succeeded":
        out["port"] = a.port
        out["socket_type"] = str(a.socket_type)
    elif name == "state_changed":
        out["state"] = str(a.state).rsplit(".", 1)[-1]
    return out


def read_stdin(commands: queue.Queue[dict[str, Any] | None]) -> None:
    """Feed stdin lines to the main loop; ``None`` marks end of input (parent gone)."""
    for raw in sys.stdin:
        raw = raw.strip()
        if not raw:
            continue
        try:
            cmd = json.loads(raw)
        except json.JSONDecodeError as exc:
            emit({"type": "reply", "ok": False, "error": f"bad json: {exc}"})
            continue
        if isinstance(cmd, dict):
            commands.put(cmd)
        else:
            emit({"type": "reply", "ok": False, "error": "command must be an object"})
    commands.put(None)


def handle_command(ses: Any, handle: Any, cmd: dict[str, Any]) -> bool:
    """Apply one command; returns False when the peer should quit."""
    name = cmd.get("cmd")
    reply: dict[str, Any] = {"type": "reply", "cmd": name, "ok": True}
    if "id" in cmd:
        reply["id"] = cmd["id"]
    try:
        if name == "quit":
            emit(reply)
            return False
        if name == "connect":
            handle.connect_peer((str(cmd["host"]), int(cmd["port"])))
        elif name == "status":
            reply.update(status_dict(handle))
            reply["type"] = "reply"
        elif name == "apply_settings":
            ses.apply_settings(dict(cmd["settings"]))
        elif name == "pause":
            handle.unset_flags(lt.torrent_flags.auto_managed)
            handle.pause()
        elif name == "resume":
            handle.resume()
        elif name == "force_recheck":
            handle.force_recheck()
        else:
            reply.update(ok=False, error=f"unknown command {name!r}")
    except Exception as exc:  # a bad command must not kill the reference peer
        reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    emit(reply)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--torrent", required=True)
    p.add_argument("--save-path", required=True)
    p.add_argument("--seed", action="store_true", help="data is complete in --save-path")
    p.add_argument("--seed-mode", action="store_true", help="trust the data, skip the hash check")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: let the OS pick")
    p.add_argument("--enc", choices=sorted(_ENC_POLICY), default="enabled")
    p.add_argument("--enc-level", choices=sorted(_ENC_LEVEL), default="both")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--utp-only", action="store_true")
    g.add_argument("--tcp-only", action="store_true")
    p.add_argument("--fast", action="store_true", help="high-throughput settings for benchmarks")
    p.add_argument("--settings", default="", help="JSON object of extra settings_pack values")
    p.add_argument("--status-interval", type=float, default=0.25)
    p.add_argument("--no-status", action="store_true", help="only status replies, no periodic")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM from the harness: leave through the normal, bounded shutdown path.
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    try:
        # Settings go in at construction: applying them later would first bind 0.0.0.0:6881.
        params = lt.session_params()
        params.settings = build_settings(args)  # type: ignore[assignment]  # binding converts dicts
        ses = lt.session(params)
        # libtorrent exempts local peers (all of 127.0.0.0/8) from rate limits; put every
        # address in the global peer class so upload/download limits apply in tests
        everyone = lt.ip_filter()
        everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        everyone.add_rule(
            "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 << lt.session.global_peer_class_id
        )
        ses.set_peer_class_filter(everyone)
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
        atp.save_path = args.save_path
        # Not auto-managed: the queue must never pause a test's only torrent.
        atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if args.seed_mode:
            atp.flags |= lt.torrent_flags.seed_mode
        handle = ses.add_torrent(atp)
    except Exception as exc:
        emit({"type": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 2

    # Wait for the listen socket so "ready" carries the real port.
    deadline = time.monotonic() + 10.0
    port = 0
    while time.monotonic() < deadline and not port:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if a.what() in _INTERESTING:
                emit(alert_dict(a))
            if a.what() == "listen_failed":
                emit({"type": "error", "error": a.message()})
                return 2
        port = ses.listen_port()
    if not port:
        emit({"type": "error", "error": "libtorrent did not start listening within 10 s"})
        return 2
    ih = handle.info_hashes()
    emit(
        {
            "type": "ready",
            "port": port,
            "pid": os.getpid(),
            "version": lt.__version__,
            "info_hash_v1": str(ih.v1) if ih.has_v1() else "",
            "info_hash_v2": str(ih.v2) if ih.has_v2() else "",
        }
    )

    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=read_stdin, args=(commands,), daemon=True).start()
    finished_sent = False
    next_status = 0.0
    running = True
    while running and not stop_requested.is_set():
        ses.wait_for_alert(50)
        for a in ses.pop_alerts():
            if a.what() in _INTERESTING:
                emit(alert_dict(a))
            if args.seed and a.what() == "torrent_checked":
                st = status_dict(handle)
                if not st["is_finished"]:
                    # Say so at once: a seeder with wrong data would otherwise just sit there.
                    emit(
                        {
                            "type": "seed_incomplete",
                            "total_done": st["total_done"],
                            "total_wanted": st["total_wanted"],
                        }
                    )
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd is None or not handle_command(ses, handle, cmd):
                running = False
                break
        now = time.monotonic()
        if running and (now >= next_status or not finished_sent):
            st = status_dict(handle)
            if not finished_sent and st["is_finished"] and st["state"] != "checking_files":
                finished_sent = True
                emit({**st, "type": "finished"})
            if now >= next_status:
                next_status = now + args.status_interval
                if not args.no_status:
                    emit(st)
    shutdown(ses, handle)
    return 0


def shutdown(ses: Any, handle: Any) -> None:
    """Remove the torrent (sends event=stopped), then leave within about a second.

    A session's destructor can block for seconds on half-closed uTP connections (e.g. the
    self-connection a tracker that echoes the announcer causes), so after a bounded wait for the
    removal we exit without running it: the harness wants a prompt, predictable stop.
    """
    ses.remove_torrent(handle)
    deadline = time.monotonic() + 1.0
    removed = False
    while not removed and time.monotonic() < deadline:
        ses.wait_for_alert(50)
        for a in ses.pop_alerts():
            if a.what() in _INTERESTING:
                emit(alert_dict(a))
            removed = removed or a.what() == "torrent_removed"
    emit({"type": "bye"})
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
