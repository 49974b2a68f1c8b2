"""Benchmark: uTP vs TCP on loopback, for ccbt and for libtorrent, in the same run.

One libtorrent seeder per transport (``utp_only`` or ``tcp_only``) serves a generated payload;
the leechers are ccbt (in this process, ``network.enable_utp`` on or off) and a second
libtorrent (same transport switch). MiB/s = payload / wall time from "connect" to "every piece
verified". Loopback has no queueing delay worth the name, so this measures protocol and
implementation cost (per-packet work), not LEDBAT.

    .venv/bin/python benchmarks/utp_vs_tcp.py                  # 128 MiB, 1 run each
    .venv/bin/python benchmarks/utp_vs_tcp.py --size 256M --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import MIB, load_refpeers, parse_size  # benchmarks are scripts, found via sys.path

PIECE = 1024 * 1024


async def _ccbt_leech(torrent: Path, save: Path, port: int, utp: bool, timeout: float) -> float:
    from ccbt_engine.api import Session
    from ccbt_engine.config import Settings

    settings = Settings.model_validate(
        {
            "network": {
                "listen_interfaces": ["127.0.0.1"],
                "enable_dht": False,
                "enable_lsd": False,
                "enable_upnp": False,
                "enable_natpmp": False,
                "enable_utp": utp,
            }
        }
    )
    async with Session(settings, listen_port=0) as session:
        handle = await session.add_torrent(torrent, save)
        start = time.monotonic()
        handle.connect_peer("127.0.0.1", port)
        await handle.wait_finished(timeout=timeout)
        elapsed = time.monotonic() - start
        transports = {p.transport for p in handle.peers()}
    if transports and transports != {"uTP" if utp else "TCP"}:
        raise RuntimeError(f"expected {'uTP' if utp else 'TCP'}, peers used {transports}")
    return elapsed


def _lt_leech(rp: Any, torrent: Path, save: Path, port: int, utp: bool, timeout: float) -> float:
    kind = {"utp_only": True} if utp else {"tcp_only": True}
    with rp.LibtorrentPeer(torrent, save, seed=False, **kind) as leecher:
        start = time.monotonic()
        leecher.connect("127.0.0.1", port)
        leecher.wait_finished(timeout)
        return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("128M"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rp = load_refpeers()
    work = Path(tempfile.mkdtemp(prefix="ccbt-utp-bench-"))
    results: dict[tuple[str, str], list[float]] = {}
    try:
        payload = rp.make_payload(work / "payload", args.size, 4, seed=29)
        made = rp.make_torrent(payload, None, PIECE, work / "t.torrent", "v1")
        for transport in ("uTP", "TCP"):
            utp = transport == "uTP"
            kind = {"utp_only": True} if utp else {"tcp_only": True}
            with rp.LibtorrentPeer(made.path, made.save_path, seed=True, **kind) as seeder:
                for run in range(args.runs):
                    for who in ("ccbt", "libtorrent"):
                        dest = work / f"{who}-{transport}-{run}"
                        if who == "ccbt":
                            secs = asyncio.run(
                                _ccbt_leech(made.path, dest, seeder.port, utp, args.timeout)
                            )
                        else:
                            dest.mkdir()
                            secs = _lt_leech(rp, made.path, dest, seeder.port, utp, args.timeout)
                        shutil.rmtree(dest, ignore_errors=True)
                        results.setdefault((who, transport), []).append(secs)
                        rate = args.size / MIB / secs
                        print(
                            f"  {who:10} {transport:3} run {run + 1}: {rate:7.1f} MiB/s", flush=True
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nloopback, {args.size / MIB:.0f} MiB, median of {args.runs} run(s), MiB/s")
    print(f"{'leecher':12}{'uTP':>10}{'TCP':>10}{'uTP/TCP':>10}")
    for who in ("ccbt", "libtorrent"):
        utp_rate = args.size / MIB / statistics.median(results[(who, "uTP")])
        tcp_rate = args.size / MIB / statistics.median(results[(who, "TCP")])
        print(f"{who:12}{utp_rate:10.1f}{tcp_rate:10.1f}{utp_rate / tcp_rate:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
