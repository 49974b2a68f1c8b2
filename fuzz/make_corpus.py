"""Write the seed corpus in tests/corpus/<target>/ (checked in together with this script).

Seeds are real examples, so the fuzzer starts from inputs that reach deep into each parser:
torrents made by ``ccbt create`` and by libtorrent (v1, v2, hybrid), magnet links derived from
them, wire and extension message streams from ccbt's own encoders, tracker replies, KRPC
messages, an MSE handshake captured from a ccbt<->ccbt exchange, and uTP packets captured from
two ccbt connections talking to each other. Structured harnesses (wire, extension, tracker_udp,
mse, utp_conn) get their seeds wrapped in the harness' input layout.

Run ``.venv/bin/python -m fuzz.make_corpus`` from the repository root. The output is
deterministic (creation dates are fixed), so re-running it changes nothing unless the code did.
``--capture`` also re-records what a live libtorrent seeder sends over loopback (a real wire
stream and libtorrent's own extension handshake); that capture differs per run, so it is kept
as checked in otherwise. libtorrent is optional: without it the ``libtorrent_*`` files are kept.
"""

from __future__ import annotations

import shutil
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ccbt_engine import bencode
from ccbt_engine.create import create_torrent
from ccbt_engine.extensions import donthave, metadata, pex
from ccbt_engine.magnet import magnet_from_metainfo
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.protocol import extension, krpc, mse, utp, wire
from fuzz import fuzz_mse

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
INFO_HASH = bytes(range(1, 21))
PEER_ID = b"-CC0100-fuzzcorpus01"


def _payload(root: Path, name: str, sizes: list[int]) -> Path:
    """Small deterministic files: the torrents stay a few hundred bytes."""
    base = root / name
    for i, size in enumerate(sizes):
        path = base / (f"sub/file{i}.bin" if i % 2 else f"file{i}.bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes((i * 31 + j) & 0xFF for j in range(size)))
    return base


def torrents(tmp: Path) -> dict[str, bytes]:
    multi = _payload(tmp, "multi", [40000, 5, 16384, 0, 70000])
    single = _payload(tmp, "single", [50000]) / "file0.bin"
    out: dict[str, bytes] = {}
    versions: tuple[Literal["v1", "v2", "hybrid"], ...] = ("v1", "v2", "hybrid")
    for version in versions:
        for label, path in (("multi", multi), ("single", single)):
            out[f"ccbt_{version}_{label}.torrent"] = create_torrent(
                path,
                trackers=["http://127.0.0.1:6969/announce", ["udp://127.0.0.1:6969"]],
                piece_length=16384,
                web_seeds=["http://127.0.0.1:8000/"],
                version=version,
                comment="fuzz seed",
                creation_date=0,
                source="corpus",
                workers=1,
            )
    out.update(_hostile(out["ccbt_v1_multi.torrent"], out["ccbt_v2_multi.torrent"]))
    if not _have_libtorrent():  # keep the libtorrent torrents already checked in
        return out
    from tests.interop.refpeers import make_torrent

    for version in versions:
        made = make_torrent(
            multi, "http://127.0.0.1:6969/announce", 16384, tmp / f"lt_{version}.torrent", version
        )
        meta = bencode.decode(Path(made.path).read_bytes(), strict=False)
        meta[b"creation date"] = 0  # libtorrent writes "now": fix it so the output is stable
        out[f"libtorrent_{version}_multi.torrent"] = bencode.encode(meta)
    return out


def _hostile(v1: bytes, v2: bytes) -> dict[str, bytes]:
    """Path tricks a malicious torrent plays (the parser must refuse or sanitise every one)."""
    out: dict[str, bytes] = {}
    tricks: dict[str, list[list[bytes]]] = {
        "dotdot": [[b"..", b"..", b"etc", b"passwd"]],
        "absolute": [[b"/etc/passwd"], [b"C:\\Windows\\evil.dll"]],
        "reserved": [[b"CON"], [b"aux.txt"], [b"a:b"]],
        "case_twins": [[b"Readme.txt"], [b"README.TXT"]],
    }
    meta = bencode.decode(v1)
    for name, paths in tricks.items():
        files = meta[b"info"][b"files"]
        meta[b"info"][b"files"] = [
            {**files[i % len(files)], b"path": path} for i, path in enumerate(paths)
        ]
        meta[b"info"][b"pieces"] = meta[b"info"][b"pieces"][:20]
        meta[b"info"][b"files"][0][b"length"] = 100
        for f in meta[b"info"][b"files"][1:]:
            f[b"length"] = 0
        out[f"hostile_v1_{name}.torrent"] = bencode.encode(meta)
    meta = bencode.decode(v2)
    tree = meta[b"info"][b"file tree"]
    first = next(iter(tree.values()))
    meta[b"info"][b"file tree"] = {b"..": {b"x": first}, b"ok": first}
    out["hostile_v2_dotdot.torrent"] = bencode.encode(meta)
    return out


def _have_libtorrent() -> bool:
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        return False
    return True


def libtorrent_capture(tmp: Path) -> tuple[bytes, bytes] | None:
    """What a real libtorrent seeder sends a leecher over loopback TCP (no encryption).

    We play a minimal leecher with ccbt's encoders: handshake, extension handshake, interested,
    then two block requests once unchoked. Returns (every byte libtorrent sent until both
    blocks arrived, libtorrent's extension handshake payload), or None without libtorrent. The
    stream differs from run to run (peer id, timing), so it is only rewritten when asked with
    ``--capture``; otherwise the checked-in capture is kept.
    """
    if not _have_libtorrent():
        return None
    from tests.interop.refpeers import LibtorrentPeer, make_torrent

    payload = _payload(tmp, "captured", [40000, 60000])
    made = make_torrent(payload, None, 16384, tmp / "captured.torrent", "v1")
    ours = extension.encode_extension_handshake(
        extension.ExtensionHandshake(m={"ut_metadata": 1, "ut_pex": 2}, client="ccbt corpus")
    )
    received = bytearray()
    lt_handshake = b""
    seeder = LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True, enc="disabled")
    port = seeder.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                wire.encode_handshake(made.info_hash, PEER_ID)
                + wire.encode_extended(0, ours)
                + wire.encode_interested()
            )
            parser = wire.WireParser(num_pieces=-(-made.total_size // 16384))
            pieces = 0
            deadline = time.monotonic() + 30
            while pieces < 2 and time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                for event in parser.feed(data):
                    if isinstance(event, wire.Unchoke):
                        sock.sendall(
                            wire.encode_request(0, 0, 16384) + wire.encode_request(3, 0, 16384)
                        )
                    elif isinstance(event, wire.Piece):
                        pieces += 1
                    elif isinstance(event, wire.Extended) and event.ext_id == 0:
                        lt_handshake = event.payload
    finally:
        seeder.stop()
    if pieces < 2 or not lt_handshake:
        raise RuntimeError("libtorrent did not send two blocks and its extension handshake")
    return bytes(received), lt_handshake


def magnets(tors: dict[str, bytes]) -> dict[str, bytes]:
    out = {
        f"{name[:-8]}.magnet": magnet_from_metainfo(parse_torrent(raw)).to_uri().encode()
        for name, raw in tors.items()
    }
    out["full.magnet"] = (
        b"magnet:?xt=urn:btih:"
        + INFO_HASH.hex().encode()
        + b"&xt=urn:btmh:1220"
        + b"ab" * 32
        + b"&dn=Some+Name%20%C3%A9&xl=123456&tr=udp%3A%2F%2F127.0.0.1%3A6969&tr.1=http://x/a"
        + b"&ws=http%3A%2F%2F127.0.0.1%2Fseed&x.pe=127.0.0.1:6881&x.pe=[::1]:6882&so=0,2,4-6"
    )
    out["base32.magnet"] = b"magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYU&dn=b32"
    return out


def wire_streams(tors: dict[str, bytes]) -> dict[str, bytes]:
    """Harness layout: flags, mode, num_pieces (2 bytes), n chunk sizes, sizes, stream."""
    ext_hs = extension.encode_extension_handshake(
        extension.ExtensionHandshake(
            m={"ut_metadata": 1, "ut_pex": 2}, client="ccbt 0.1", listen_port=6881, reqq=500
        )
    )
    body = b"".join(
        (
            wire.encode_extended(0, ext_hs),
            wire.encode_bitfield(b"\xff\xfe"),
            wire.encode_have(3),
            wire.encode_port(6881),
            wire.encode_interested(),
            wire.encode_unchoke(),
            wire.encode_request(1, 0, 16384),
            wire.encode_piece(2, 16384 - 100, b"\xab" * 100),
            wire.encode_cancel(1, 0, 16384),
            wire.encode_keepalive(),
            wire.encode_choke(),
            wire.encode_not_interested(),
        )
    )
    fast = b"".join(
        (
            wire.encode_have_all(),
            wire.encode_suggest(4),
            wire.encode_allowed_fast(5),
            wire.encode_reject(1, 0, 16384),
            wire.encode_have_none(),
        )
    )
    handshake = wire.encode_handshake(INFO_HASH, PEER_ID, dht=True)
    n = struct.pack(">H", 15)
    return {
        "session_whole.bin": bytes([0b1111, 0]) + n + b"\x00" + handshake + body,
        "session_chunked.bin": bytes([0b1111, 0]) + n + b"\x03\x00\x06\x3f" + handshake + body,
        "no_handshake.bin": bytes([0b1110, 1]) + n + b"\x01\x04" + body,
        "fast.bin": bytes([0b1111, 0]) + n + b"\x00" + handshake + fast,
        "magnet_learns_count.bin": bytes([0b1011, 2]) + n + b"\x02\x10\x50" + handshake + body,
    }


def _ext_msg(op: int, payload: bytes) -> bytes:
    return bytes([op]) + struct.pack(">H", len(payload)) + payload


def extension_streams(tors: dict[str, bytes]) -> dict[str, bytes]:
    """Harness layout: outgoing flag, then [op][2-byte length][payload] per message."""
    ccbt_hs = extension.encode_extension_handshake(
        extension.ExtensionHandshake(
            m={"ut_metadata": 3, "ut_pex": 4, "lt_donthave": 7},
            client="ccbt 0.1",
            listen_port=6881,
            yourip=bytes([127, 0, 0, 1]),
            reqq=250,
            metadata_size=40000,
            upload_only=True,
        )
    )
    # what libtorrent 2.x sends (unsorted keys are tolerated; these are sorted)
    lt_hs = bencode.encode(
        {
            b"complete_ago": -1,
            b"m": {
                b"lt_donthave": 7,
                b"share_mode": 8,
                b"upload_only": 3,
                b"ut_holepunch": 4,
                b"ut_metadata": 2,
                b"ut_pex": 1,
            },
            b"metadata_size": 40000,
            b"reqq": 500,
            b"upload_only": 0,
            b"v": b"libtorrent/2.0.11.0",
            b"yourip": bytes([127, 0, 0, 1]),
        }
    )
    added = [("127.0.0.2", 6881, 0x10), ("::1", 6882, 0x02)]
    return {
        "handshakes.bin": b"\x01" + _ext_msg(0, ccbt_hs) + _ext_msg(0, lt_hs),
        "metadata_fetch.bin": b"\x01"
        + _ext_msg(0, lt_hs)
        + _ext_msg(4, b"")
        + _ext_msg(1, metadata.encode_data(0, 40000, b"d" * 16384))
        + _ext_msg(1, metadata.encode_data(1, 40000, b"e" * 16384))
        + _ext_msg(1, metadata.encode_reject(2))
        + _ext_msg(1, metadata.encode_data(2, 40000, b"f" * 7232)),
        "metadata_serve.bin": b"\x00"
        + _ext_msg(0, ccbt_hs)
        + _ext_msg(1, metadata.encode_request(0))
        + _ext_msg(1, metadata.encode_request(1))
        + _ext_msg(1, metadata.encode_request(9)),
        "pex_donthave.bin": b"\x01"
        + _ext_msg(0, ccbt_hs)
        + _ext_msg(2, pex.encode_pex(added, [("127.0.0.3", 6883)]))
        + _ext_msg(3, donthave.encode_donthave(3))
        + _ext_msg(9, b""),
    }


def tracker_http() -> dict[str, bytes]:
    enc = bencode.encode
    compact = bytes([127, 0, 0, 1]) + struct.pack(">H", 6881) + bytes([127, 0, 0, 2, 0x1A, 0xE2])
    v6 = bytes(15) + b"\x01" + struct.pack(">H", 6882)
    return {
        "announce_compact.bin": enc(
            {
                b"interval": 1800,
                b"min interval": 60,
                b"complete": 3,
                b"incomplete": 5,
                b"peers": compact,
                b"peers6": v6,
                b"tracker id": b"abc",
            }
        ),
        "announce_dict.bin": enc(
            {
                b"interval": 900,
                b"peers": [
                    {b"ip": b"127.0.0.1", b"port": 6881, b"peer id": PEER_ID},
                    {b"ip": b"::1", b"port": 6882},
                    {b"ip": b"example.org", b"port": 1},
                ],
                b"warning message": b"be nice",
            }
        ),
        "failure.bin": enc({b"failure reason": b"unregistered torrent"}),
        "scrape.bin": enc(
            {b"files": {INFO_HASH: {b"complete": 1, b"downloaded": 2, b"incomplete": 3}}}
        ),
        # bittorrent-tracker's latin-1-as-UTF-8 key
        "scrape_latin1.bin": enc(
            {b"files": {bytes(range(236, 256)).decode("latin-1").encode(): {b"complete": 1}}}
        ),
    }


def tracker_udp() -> dict[str, bytes]:
    """Harness layout: one byte (bit 0 clear: expect the datagram's own id; bits 1-6: number
    of info hashes scraped), then the datagram."""
    tid = 0x0BADCAFE
    peers = bytes([127, 0, 0, 1]) + struct.pack(">H", 6881)
    peers6 = bytes(15) + b"\x01" + struct.pack(">H", 6881)
    return {
        "connect.bin": b"\x00" + struct.pack(">IIQ", 0, tid, 0x41727101980),
        "announce.bin": b"\x00" + struct.pack(">IIIII", 1, tid, 1800, 2, 3) + peers * 2,
        "announce6.bin": b"\x00" + struct.pack(">IIIII", 1, tid, 1800, 2, 3) + peers6,
        "scrape.bin": bytes([2 << 1]) + struct.pack(">II", 2, tid) + struct.pack(">6I", *range(6)),
        "error.bin": b"\x00" + struct.pack(">II", 3, tid) + b"info_hash not found",
    }


def krpc_messages() -> dict[str, bytes]:
    me = b"\x11" * 20
    node4 = krpc.NodeInfo(b"\x22" * 20, "127.0.0.1", 6881)
    node6 = krpc.NodeInfo(b"\x33" * 20, "::1", 6882)
    return {
        "ping.bin": krpc.encode_query(b"aa", "ping", {b"id": me}, version=b"CC01"),
        "find_node.bin": krpc.encode_query(
            b"ab", "find_node", {b"id": me, b"target": INFO_HASH, b"want": [b"n4", b"n6"]}
        ),
        "get_peers.bin": krpc.encode_query(
            b"ac", "get_peers", {b"id": me, b"info_hash": INFO_HASH}, read_only=True
        ),
        "announce_peer.bin": krpc.encode_query(
            b"ad",
            "announce_peer",
            {
                b"id": me,
                b"info_hash": INFO_HASH,
                b"port": 6881,
                b"token": b"tok",
                b"implied_port": 1,
            },
        ),
        "sample.bin": krpc.encode_query(b"ae", "sample_infohashes", {b"id": me, b"target": me}),
        "nodes_reply.bin": krpc.encode_response(
            b"ab",
            {
                b"id": me,
                b"nodes": krpc.encode_nodes([node4]),
                b"nodes6": krpc.encode_nodes([node6]),
            },
            ip=("127.0.0.1", 6881),
        ),
        "peers_reply.bin": krpc.encode_response(
            b"ac",
            {
                b"id": me,
                b"token": b"tok",
                b"values": [krpc.encode_peer("127.0.0.1", 6881), krpc.encode_peer("::1", 6881)],
            },
        ),
        "samples_reply.bin": krpc.encode_response(
            b"ae", {b"id": me, b"samples": INFO_HASH * 3, b"num": 3, b"interval": 21600}
        ),
        "error.bin": krpc.encode_error(b"aa", 201, "A Generic Error Ocurred"),
    }


def mse_exchange() -> dict[str, bytes]:
    """A real handshake between ccbt's initiator and receiver, with the generators the harness
    uses, so replaying either direction into the harness' side completes the handshake."""
    initiator = mse.MSEInitiator(
        fuzz_mse.SKEY,
        initial_payload=wire.encode_handshake(fuzz_mse.SKEY, PEER_ID),
        pad_max=0,
        pad_c=7,
        rng=fuzz_mse._rng_a,
    )
    # RC4 chosen explicitly: the seeds must not change with the receiver's default preference
    # (the plaintext choice is covered by the *_plaintext seeds)
    receiver = mse.MSEReceiver(
        fuzz_mse._find_skey, prefer_rc4=True, pad_max=0, pad_d=5, rng=fuzz_mse._rng_b
    )
    a_to_b = bytearray(initiator.start())
    b_to_a = bytearray()
    step_b = receiver.feed(bytes(a_to_b))
    b_to_a += step_b.outgoing
    step_a = initiator.feed(step_b.outgoing)
    a_to_b += step_a.outgoing
    step_b = receiver.feed(step_a.outgoing)
    b_to_a += step_b.outgoing
    assert step_b.established is not None
    assert initiator.feed(step_b.outgoing).established is not None
    # layout: head (mode, methods), n chunk sizes, sizes, then the mode's input
    plain_a = bytes(8) + struct.pack(">IH", 3, 2) + b"pc" + struct.pack(">H", 3) + b"IA!"
    plain_b = bytes(8) + struct.pack(">IH", 2, 1) + b"d" + b"payload"
    return {
        "receiver_captured.bin": b"\x00\x00" + bytes(a_to_b),
        "receiver_captured_chunked.bin": b"\x00\x02\x10\x4f" + bytes(a_to_b),
        "initiator_captured.bin": b"\x01\x00" + bytes(b_to_a),
        "receiver_plaintext.bin": b"\x02\x00\x00\x03" + b"pad" + plain_a,
        "initiator_plaintext.bin": b"\x03\x01\x07\x00\x02" + b"pb" + plain_b,
    }


def _utp_pair() -> tuple[list[bytes], list[bytes]]:
    """Datagrams of a short ccbt<->ccbt uTP exchange: (initiator's, responder's)."""
    now = 1000.0
    a = utp.UTPConnection.connect(0x1234, now, seq_nr=100, payload_size=600)
    from_a: list[bytes] = []
    from_b: list[bytes] = []
    syn = a.poll(now)
    from_a += syn
    b = utp.UTPConnection.accept(utp.decode(syn[0]), now, seq_nr=500, payload_size=600)
    a.send(b"x" * 1500)
    b.send(b"y" * 700)
    for _ in range(6):
        now += 0.05
        out_b = b.poll(now)
        from_b += out_b
        for d in out_b:
            a.receive(d, now)
        out_a = a.poll(now)
        from_a += out_a
        for d in out_a:
            b.receive(d, now)
        if _ == 2:
            a.close()
            b.close()
    return from_a, from_b


def utp_packets() -> dict[str, bytes]:
    from_a, from_b = _utp_pair()
    out = {f"a{i:02d}.bin": d for i, d in enumerate(from_a)}
    out.update({f"b{i:02d}.bin": d for i, d in enumerate(from_b)})
    sack = utp.Packet(utp.ST_STATE, 0x1234, 1, 2, 65536, 7, 9, sack=b"\x05\x00\x00\x80")
    out["sack.bin"] = utp.encode(sack)
    return out


def utp_scripts() -> dict[str, bytes]:
    """Replays of the responder's datagrams into an initiator with the same ids, as op-0
    (raw datagram) steps with polls in between: the harness' connection then follows a real
    exchange before mutations take it elsewhere."""
    _, from_b = _utp_pair()
    head = b"\x01" + struct.pack(">HH", 0x1234, 100)  # connect, recv_id, seq_nr
    steps = bytearray(b"\x03" + struct.pack(">H", 1500) + b"x" * 1500 + b"\x04")
    for d in from_b:
        steps += b"\x00" + struct.pack(">H", len(d)) + d + b"\x04" + b"\x06\x00\x05"
    built = b"\x04" + b"\x01\x02\x08\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    return {
        "replay.bin": head + bytes(steps),
        "accept_and_close.bin": b"\x00"
        + struct.pack(">HIHH", 0x1234, 65536, 99, 500)
        + built
        + b"\x07\x04\x05\x01\x04",
        "timeouts.bin": head + b"\x04\x06\xff\xff\x05\x01\x04\x06\xff\xff\x05\x00\x09",
    }


def ipfilter_lists() -> dict[str, bytes]:
    return {
        "emule.dat": b"# eMule ipfilter.dat\n"
        b"001.002.003.000 - 001.002.003.255 , 100 , Some Org\n"
        b"010.000.000.000 - 010.255.255.255 , 000 , private\n"
        b"127.000.000.002 - 127.000.000.009 , 200 , allowed (level >= 128)\n",
        "peerguardian.p2p": b"Bad Corp: with colons:1.2.4.0-1.2.4.255\n"
        b"// comment\nOther:192.168.100.0-192.168.100.10\n",
        "cidr.txt": b"1.2.3.0/24\n2001:db8::/32\n203.0.113.7\n::ffff:1.2.3.4-::ffff:1.2.3.9\n",
        "mixed_junk.txt": b"1.2.3.4 - 1.2.3.5\nnot a rule\n999.1.1.1-1.1.1.1\n\n  # indented\n",
        # found by fuzz_ipfilter: a non-ASCII digit in an address and an access level too long
        # for int() both raised ValueError out of parse_line
        "regression_superscript_digit.p2p": "x:1.2.3.4-1.2.3.\u00b2\n".encode(),
        "regression_long_level.dat": b"1.2.3.4 - 1.2.3.5 , " + b"1" * 5000 + b" , d\n",
        # found by fuzz_ipfilter: an IPv4-mapped CIDR became an IPv6 rule that blocked nothing
        "regression_ipv4_mapped.txt": b"::ffff:1.2.3.0/120\n::ffff:2.2.3.9\n",
    }


def bencode_values(tors: dict[str, bytes]) -> dict[str, bytes]:
    out = {
        "int.bin": b"i-42e",
        "list.bin": b"l4:spami0ed1:ai1eee",
        "nested.bin": b"d1:ad1:bl1:cd1:di9eeeee",
        "torrent.bin": tors["ccbt_hybrid_single.torrent"],
    }
    out.update({f"krpc_{k}": v for k, v in krpc_messages().items() if "reply" in k})
    return out


def write(target: str, files: dict[str, bytes]) -> int:
    folder = CORPUS / target
    if folder.exists():
        keep = {name for name in files}
        for old in folder.iterdir():
            if old.name not in keep and not old.name.startswith("libtorrent_"):
                old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sum(len(d) for d in files.values())


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ccbt-corpus-"))
    try:
        tors = torrents(tmp)
        captured = libtorrent_capture(tmp) if "--capture" in sys.argv[1:] else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    builders: dict[str, Callable[[], dict[str, bytes]]] = {
        "bencode": lambda: bencode_values(tors),
        "metainfo": lambda: tors,
        "magnet": lambda: magnets(tors),
        "wire": lambda: wire_streams(tors),
        "extension": lambda: extension_streams(tors),
        "tracker_http": tracker_http,
        "tracker_udp": tracker_udp,
        "krpc": krpc_messages,
        "mse": mse_exchange,
        "utp": utp_packets,
        "utp_conn": utp_scripts,
        "ipfilter": ipfilter_lists,
    }
    if captured is not None:
        stream, lt_handshake = captured
        n = struct.pack(">H", 7)  # the captured torrent's piece count
        (CORPUS / "wire" / "libtorrent_seeder.bin").write_bytes(b"\x0f\x00" + n + b"\x00" + stream)
        (CORPUS / "extension" / "libtorrent_handshake.bin").write_bytes(
            b"\x01" + _ext_msg(0, lt_handshake) + _ext_msg(4, b"") + _ext_msg(0, lt_handshake)
        )
    total = 0
    for target, build in builders.items():
        size = write(target, build())
        total += size
        print(f"{target:14} {size:8d} bytes")
    print(f"{'total':14} {total:8d} bytes")
    if total >= 2 * 1024 * 1024:
        sys.exit("corpus exceeds 2 MB")


if __name__ == "__main__":
    main()
