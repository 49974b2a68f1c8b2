"""``lt_peer.py`` plus what discovery tests need: add the torrent by magnet link (no metadata), and
a ``peers`` command listing libtorrent's connected peers with their source flags.

Same JSON-lines protocol as ``lt_peer.py`` (whose helpers it reuses); extra:
  --magnet URI                  instead of --torrent
  {"cmd": "peers"}        ->    reply with "peers": [{"ip", "port", "source", "flags"}]
    source is libtorrent's peer_info.source bit set: tracker 1, dht 2, pex 4, lsd 8, incoming 32
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import libtorrent as lt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lt_peer


def peers_reply(handle: Any) -> list[dict[str, Any]]:
    return [
        {"ip": p.ip[0], "port": p.ip[1], "source": int(p.source), "flags": int(p.flags)}
        for p in handle.get_peer_info()
    ]


def main() -> int:
    argv = sys.argv[1:]
    magnet = ""
    if "--magnet" in argv:
        i = argv.index("--magnet")
        magnet = argv[i + 1]
        del argv[i : i + 2]
        argv += ["--torrent", "-"]
    args = lt_peer.parse_args(argv)
    params = lt.session_params()
    params.settings = lt_peer.build_settings(args)
    ses = lt.session(params)
    # libtorrent exempts local peers (127.0.0.1 included) from rate limits; the PEX tests need a
    # throttled seed so leechers stay leechers, so every address goes into the global class
    everyone = lt.ip_filter()
    everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(everyone)
    if magnet:
        atp = lt.parse_magnet_uri(magnet)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = ses.add_torrent(atp)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not ses.listen_port():
        ses.wait_for_alert(100)
        ses.pop_alerts()
    ih = handle.info_hashes()
    lt_peer.emit(
        {
            "type": "ready",
            "port": ses.listen_port(),
            "pid": os.getpid(),
            "info_hash_v1": str(ih.v1) if ih.has_v1() else "",
            "info_hash_v2": str(ih.v2) if ih.has_v2() else "",
        }
    )
    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=lt_peer.read_stdin, args=(commands,), daemon=True).start()
    finished_sent = False
    next_status = 0.0
    running = True
    while running:
        ses.wait_for_alert(50)
        for a in ses.pop_alerts():
            if a.what() in lt_peer._INTERESTING or a.what() == "metadata_received":
                lt_peer.emit(lt_peer.alert_dict(a))
        while running:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd is None:
                running = False
            elif cmd.get("cmd") == "peers":
                reply = {"type": "reply", "cmd": "peers", "ok": True, "id": cmd.get("id")}
                lt_peer.emit({**reply, "peers": peers_reply(handle)})
            else:
                running = lt_peer.handle_command(ses, handle, cmd)
        st = lt_peer.status_dict(handle)
        st["has_metadata"] = handle.status().has_metadata
        done = st["is_finished"] and st["has_metadata"] and st["state"] != "checking_files"
        if done and not finished_sent:
            finished_sent = True
            lt_peer.emit({**st, "type": "finished"})
        if time.monotonic() >= next_status:
            next_status = time.monotonic() + args.status_interval
            lt_peer.emit(st)
    lt_peer.shutdown(ses, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
