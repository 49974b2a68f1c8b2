"""Reference BitTorrent peers (libtorrent, aria2, Transmission) and trackers on 127.0.0.1.

ccBitTorrent is only correct if it interoperates with clients nobody here wrote. This module
starts and stops those clients as separate processes, tells them whom to talk to, and reports
their progress, so interop tests and benchmarks can say "seed T from D with libtorrent, let ccbt
download it, compare sha256".

Every reference process runs in its own process group, is registered for ``atexit`` cleanup and
is stopped politely, then with SIGTERM, then with SIGKILL: no test may leave one behind.

This file does not import ``ccbt_engine`` on purpose: the harness must keep working while the
engine is broken. It imports nothing from ``tests`` either, so benchmarks can load it by path::

    spec = importlib.util.spec_from_file_location("refpeers", ROOT / "tests/interop/refpeers.py")
    refpeers = importlib.util.module_from_spec(spec)
    sys.modules["refpeers"] = refpeers  # dataclasses need the module registered
    spec.loader.exec_module(refpeers)
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import http.server
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

LOOPBACK = "127.0.0.1"
LT_PEER_SCRIPT = Path(__file__).with_name("lt_peer.py")

EncPolicy = Literal["forced", "enabled", "disabled"]
EncLevel = Literal["rc4", "plaintext", "both"]


class RefPeerError(RuntimeError):
    """A reference client failed to start, died, or did not reach the awaited state."""


# --------------------------------------------------------------------------------------------
# Small helpers: ports, payloads, hashes, torrents
# --------------------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK, kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago on ``host`` (TCP by default).

    There is an unavoidable race between closing the probe socket and the client binding it;
    prefer passing ``port=0`` to :class:`LibtorrentPeer`, which reports the port it really got.
    The port is also checked free for UDP because uTP and trackers listen on both.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind((host, port))
        except OSError:
            continue
        return port
    raise RefPeerError("no port free for both TCP and UDP")


def make_payload(
    root: Path | str,
    total_bytes: int,
    n_files: int,
    seed: int = 0,
    *,
    name: str = "payload",
) -> Path:
    """Write ``n_files`` deterministic random files summing to ``total_bytes`` under root/name.

    Sizes vary a lot (some tiny, some large, a few in nested folders) so piece boundaries fall
    inside and across files. The same arguments always give byte-identical files, so a
    session-scoped fixture can be reused and failures reproduced. Returns the payload folder.
    """
    if n_files < 1 or total_bytes < n_files:
        raise ValueError("need at least one byte per file")
    rng = random.Random(seed)
    weights = [rng.random() ** 2 + 0.01 for _ in range(n_files)]
    scale = (total_bytes - n_files) / sum(weights)
    sizes = [1 + int(w * scale) for w in weights]
    sizes[-1] += total_bytes - sum(sizes)
    base = Path(root) / name
    for i, size in enumerate(sizes):
        sub = Path(f"dir{i % 3}") if i % 4 == 3 else Path()
        path = base / sub / f"file{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            left = size
            while left:
                chunk = min(left, 4 * 1024 * 1024)
                f.write(rng.randbytes(chunk))
                left -= chunk
    return base


def sha256_tree(path: Path | str, *, ignore_pad: bool = True) -> dict[str, str]:
    """Map each regular file under ``path`` (relative, '/'-separated) to its SHA-256 hex.

    A single file gives ``{name: digest}``. BEP 47 pad files (a ``.pad`` folder) are skipped by
    default because clients differ on whether they write them; client bookkeeping files
    (``*.aria2``, ``*.parts``) are always skipped.
    """
    p = Path(path)
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    out: dict[str, str] = {}
    for f in files:
        rel = f.name if f == p else f.relative_to(p).as_posix()
        if ignore_pad and ".pad" in Path(rel).parts:
            continue
        if f.suffix in {".aria2", ".parts"}:
            continue
        h = hashlib.sha256()
        with f.open("rb") as fh:
            while block := fh.read(1024 * 1024):
                h.update(block)
        out[rel] = h.hexdigest()
    return out


@dataclass(frozen=True)
class MadeTorrent:
    """A .torrent written by :func:`make_torrent` and what tests need to know about it."""

    path: Path
    #: Folder to use as the seeder's save path (the payload's parent).
    save_path: Path
    #: The torrent's name (top-level file or folder name inside ``save_path``).
    name: str
    info_hash_v1: bytes | None
    info_hash_v2: bytes | None
    piece_size: int
    total_size: int

    @property
    def info_hash(self) -> bytes:
        """The 20-byte hash trackers see (v1, or the truncated v2 hash of a v2-only torrent)."""
        if self.info_hash_v1 is not None:
            return self.info_hash_v1
        assert self.info_hash_v2 is not None
        return self.info_hash_v2[:20]


def make_torrent(
    data_path: Path | str,
    tracker_url: str | list[str] | None,
    piece_size: int,
    out_path: Path | str,
    version: Literal["v1", "v2", "hybrid"] = "v1",
    *,
    private: bool = False,
) -> MadeTorrent:
    """Create a .torrent for ``data_path`` with libtorrent (independent of ccbt's creator).

    ``piece_size`` must be a power of two >= 16 KiB. A tracker list gives one tier per URL.
    """
    import libtorrent as lt  # local: only the harness process needs the binding

    data = Path(data_path).resolve()
    files = lt.list_files(str(data))  # add_files/file_storage are deprecated in 2.1
    if not files:
        raise ValueError(f"no files under {data}")
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[version]
    ct = lt.create_torrent(files, piece_size, flags)
    urls = [tracker_url] if isinstance(tracker_url, str) else list(tracker_url or [])
    for tier, url in enumerate(urls):
        ct.add_tracker(url, tier)
    ct.set_creator("ccbt interop harness (libtorrent)")
    ct.set_priv(private)
    lt.set_piece_hashes(ct, str(data.parent))
    raw = lt.bencode(ct.generate())
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    ti = lt.torrent_info(str(out))
    ih = ti.info_hashes()
    return MadeTorrent(
        path=out,
        save_path=data.parent,
        name=data.name,
        info_hash_v1=ih.v1.to_bytes() if ih.has_v1() else None,
        info_hash_v2=ih.v2.to_bytes() if ih.has_v2() else None,
        piece_size=ti.piece_length(),
        total_size=ti.total_size(),
    )


def bencode(value: Any) -> bytes:
    """Minimal encoder for tracker replies (kept here so the harness never needs ccbt)."""
    if isinstance(value, bool):
        raise TypeError("bool is not bencodable")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes | bytearray):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# Process bookkeeping: nothing outlives the harness
# --------------------------------------------------------------------------------------------

_LIVE: set[_ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


def live_pids() -> list[int]:
    """PIDs of reference processes started by this harness and not yet stopped."""
    with _LIVE_LOCK:
        return [p.pid for p in _LIVE if p.pid is not None]


def stop_all() -> None:
    """Stop every reference process still running (atexit hook and the ``ref_cleanup`` fixture)."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        with contextlib.suppress(Exception):
            p.stop()


atexit.register(stop_all)


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # start_new_session=True made the child a group leader: the group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class _ManagedProcess:
    """A child in its own process group, with stdout/stderr tails kept for failure messages."""

    name = "refpeer"

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: deque[str] = deque(maxlen=200)
        self._threads: list[threading.Thread] = []
        self.port: int = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def output_tail(self, n: int = 40) -> str:
        """The last lines the process printed (both streams), for assertion messages."""
        return "\n".join(list(self._tail)[-n:])

    def _spawn(self, argv: list[str], *, stdin: bool = False, cwd: Path | None = None) -> None:
        if self._proc is not None:
            raise RefPeerError(f"{self.name} already started")
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=cwd,
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for stream, handler in (
            (self._proc.stdout, self._on_stdout_line),
            (self._proc.stderr, self._on_stderr_line),
        ):
            t = threading.Thread(
                target=self._pump, args=(stream, handler), daemon=True, name=f"{self.name}-io"
            )
            t.start()
            self._threads.append(t)

    def _pump(self, stream: Any, handler: Callable[[str], None]) -> None:
        for raw in iter(stream.readline, b""):
            handler(raw.decode("utf-8", "replace").rstrip("\n"))
        self._on_eof()

    def _on_stdout_line(self, line: str) -> None:
        self._tail.append(line)

    def _on_stderr_line(self, line: str) -> None:
        self._tail.append("[stderr] " + line)

    def _on_eof(self) -> None:
        """Hook: a stream closed (the process is exiting)."""

    def _polite_stop(self) -> None:
        """Hook: ask the client to quit on its own (quit command, RPC shutdown ...)."""

    def stop(self, timeout: float = 5.0) -> int | None:
        """Quit politely, then SIGTERM the group, then SIGKILL it. Returns the exit status."""
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                with contextlib.suppress(Exception):
                    self._polite_stop()
                try:
                    proc.wait(timeout / 2)
                except subprocess.TimeoutExpired:
                    _kill_group(proc, signal.SIGTERM)
                    try:
                        proc.wait(timeout / 2)
                    except subprocess.TimeoutExpired:
                        _kill_group(proc, signal.SIGKILL)
                        proc.wait(5.0)
            # Helpers the client may have forked stay in its group: take them down too.
            _kill_group(proc, signal.SIGKILL)
        finally:
            # Readers end on EOF once the group is dead; join them before closing their pipes
            # so no thread ever reads from a closed file.
            for t in self._threads:
                t.join(2.0)
            for s in (proc.stdin, proc.stdout, proc.stderr):
                if s is not None:
                    with contextlib.suppress(Exception):
                        s.close()
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return proc.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> int:
        raise NotImplementedError

    # Blocking calls take tens of milliseconds to seconds; from an async test that runs ccbt on
    # the same loop, use these so ccbt keeps serving its sockets meanwhile.
    async def start_async(self) -> int:
        return await asyncio.to_thread(self.start)

    async def stop_async(self) -> int | None:
        return await asyncio.to_thread(self.stop)

    def _check_alive(self, what: str) -> None:
        if not self.running:
            raise RefPeerError(
                f"{self.name} exited (status {self.returncode}) while {what}:\n"
                + self.output_tail()
            )


# --------------------------------------------------------------------------------------------
# libtorrent
# --------------------------------------------------------------------------------------------


class LibtorrentPeer(_ManagedProcess):
    """libtorrent 2.x in a subprocess (``lt_peer.py``), controlled over JSON lines.

    ``status()`` keys: state, progress (0..1), num_peers, num_seeds, download_rate, upload_rate
    (payload bytes/s), total_download, total_upload (payload bytes this session), total_done,
    total_wanted, is_finished, is_seeding, paused, errc.
    """

    name = "libtorrent"

    def __init__(
        self,
        torrent_path: Path | str,
        save_path: Path | str,
        *,
        seed: bool,
        port: int = 0,
        extra_settings: dict[str, Any] | None = None,
        enc: EncPolicy = "enabled",
        enc_level: EncLevel = "both",
        utp_only: bool = False,
        tcp_only: bool = False,
        seed_mode: bool = False,
        fast: bool = False,
        status_interval: float = 0.25,
        python: str | None = None,
    ) -> None:
        super().__init__()
        if utp_only and tcp_only:
            raise ValueError("utp_only and tcp_only exclude each other")
        self.torrent_path = Path(torrent_path)
        self.save_path = Path(save_path)
        self.seed = seed
        self.requested_port = port
        self.extra_settings = dict(extra_settings or {})
        self.enc = enc
        self.enc_level = enc_level
        self.utp_only = utp_only
        self.tcp_only = tcp_only
        self.seed_mode = seed_mode
        self.fast = fast
        self.status_interval = status_interval
        self.python = python or sys.executable
        self.info_hash_v1 = ""
        self.info_hash_v2 = ""
        self.events: list[dict[str, Any]] = []
        self.last_status: dict[str, Any] = {}
        self.finished = False
        self.seed_incomplete: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._eof = False
        self._stdin_lock = threading.Lock()

    # -- process I/O -----------------------------------------------------------------------
    def _on_stdout_line(self, line: str) -> None:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            self._tail.append(line)
            return
        if not isinstance(ev, dict):
            return
        kind = ev.get("type")
        with self._cond:
            if kind == "status":
                self.last_status = ev
            else:
                self._tail.append(line)
                self.events.append(ev)
            if kind == "finished":
                self.finished = True
                self.last_status = {**ev, "type": "status"}
            elif kind == "reply" and "id" in ev:
                self._replies[int(ev["id"])] = ev
            elif kind == "seed_incomplete":
                self.seed_incomplete = ev
            elif kind == "ready":
                self.port = int(ev["port"])
                self.info_hash_v1 = ev.get("info_hash_v1", "")
                self.info_hash_v2 = ev.get("info_hash_v2", "")
            self._cond.notify_all()

    def _on_eof(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _wait(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if self._eof or (self._proc is not None and self._proc.poll() is not None):
                    raise RefPeerError(
                        f"libtorrent exited (status {self.returncode}) while {what}:\n"
                        + self.output_tail()
                    )
                if left <= 0:
                    raise TimeoutError(
                        f"libtorrent: timed out after {timeout:.1f}s {what}; last status "
                        f"{self.last_status}\n{self.output_tail()}"
                    )
                self._cond.wait(min(left, 0.2))

    def send(self, cmd: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send one command and return its reply (raises if the reply says ``ok: false``)."""
        self._check_alive(f"sending {cmd}")
        with self._cond:
            self._next_id += 1
            rid = self._next_id
        line = json.dumps({**cmd, "id": rid}) + "\n"
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        with self._stdin_lock:
            proc.stdin.write(line.encode())
            proc.stdin.flush()
        self._wait(lambda: rid in self._replies, timeout, f"waiting for reply to {cmd}")
        with self._cond:
            reply = self._replies.pop(rid)
        if not reply.get("ok"):
            raise RefPeerError(f"libtorrent refused {cmd}: {reply.get('error')}")
        return reply

    # -- public API ------------------------------------------------------------------------
    def argv(self) -> list[str]:
        """The command line used to start the peer (handy for running one by hand)."""
        argv = [
            self.python,
            str(LT_PEER_SCRIPT),
            "--torrent",
            str(self.torrent_path),
            "--save-path",
            str(self.save_path),
            "--port",
            str(self.requested_port),
            "--enc",
            self.enc,
            "--enc-level",
            self.enc_level,
            "--status-interval",
            str(self.status_interval),
        ]
        if self.seed:
            argv.append("--seed")
        if self.seed_mode:
            argv.append("--seed-mode")
        if self.utp_only:
            argv.append("--utp-only")
        if self.tcp_only:
            argv.append("--tcp-only")
        if self.fast:
            argv.append("--fast")
        if self.extra_settings:
            argv += ["--settings", json.dumps(self.extra_settings)]
        return argv

    def start(self, timeout: float = 30.0) -> int:
        """Start and wait until listening; a seeder also waits until its data is checked.

        Returns the TCP (and uTP) listen port on 127.0.0.1.
        """
        self.save_path.mkdir(parents=True, exist_ok=True)
        self._spawn(self.argv(), stdin=True)
        try:
            self._wait(lambda: self.port != 0, timeout, "starting")
            if self.seed:
                self._wait(
                    lambda: self.finished or self.seed_incomplete is not None,
                    timeout,
                    "checking the seed data",
                )
                if self.seed_incomplete is not None and not self.finished:
                    raise RefPeerError(
                        f"libtorrent seeder: data in {self.save_path} fails the check "
                        f"({self.seed_incomplete['total_done']} of "
                        f"{self.seed_incomplete['total_wanted']} bytes good)"
                    )
        except BaseException:
            self.stop()
            raise
        return self.port

    def connect(self, host: str, port: int) -> None:
        """Make libtorrent open a connection to ``host:port`` (ccbt's listener, another peer)."""
        self.send({"cmd": "connect", "host": host, "port": port})

    def status(self) -> dict[str, Any]:
        """A fresh status snapshot, asked for now (not the last periodic line)."""
        reply = self.send({"cmd": "status"})
        return {k: v for k, v in reply.items() if k not in {"id", "ok", "cmd", "type", "t"}}

    async def connect_async(self, host: str, port: int) -> None:
        await asyncio.to_thread(self.connect, host, port)

    async def status_async(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.status)

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Change libtorrent settings live (rate limits for throttled-peer tests ...)."""
        self.send({"cmd": "apply_settings", "settings": settings})

    def pause(self) -> None:
        self.send({"cmd": "pause"})

    def resume(self) -> None:
        self.send({"cmd": "resume"})

    def force_recheck(self) -> None:
        self.finished = False
        self.send({"cmd": "force_recheck"})

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        """Alert lines seen so far, optionally only those of one kind (e.g. "hash_failed")."""
        with self._cond:
            return [
                e
                for e in self.events
                if e.get("type") == "alert" and (name is None or e.get("alert") == name)
            ]

    def wait_finished(self, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the torrent is complete; returns the status at that moment."""
        self._wait(lambda: self.finished, timeout, "waiting for the download to finish")
        return dict(self.last_status)

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Block until ``pred(last periodic status)`` is true (e.g. ``num_peers >= 2``)."""
        self._wait(lambda: bool(self.last_status) and pred(self.last_status), timeout, "waiting")
        return dict(self.last_status)

    async def wait_finished_async(self, timeout: float = 60.0) -> dict[str, Any]:
        """Like :meth:`wait_finished` without blocking the event loop ccbt runs on."""
        return await _poll_async(lambda: self.finished, self, timeout, lambda: self.last_status)

    def _polite_stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with self._stdin_lock:
                proc.stdin.write(b'{"cmd": "quit"}\n')
                proc.stdin.flush()
                proc.stdin.close()


async def _poll_async(
    done: Callable[[], bool],
    peer: _ManagedProcess,
    timeout: float,
    snapshot: Callable[[], dict[str, Any]],
    interval: float = 0.05,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done():
        if not peer.running:
            raise RefPeerError(
                f"{peer.name} exited (status {peer.returncode}):\n{peer.output_tail()}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{peer.name}: not finished after {timeout:.1f}s: {snapshot()}")
        await asyncio.sleep(interval)
    return dict(snapshot())


# --------------------------------------------------------------------------------------------
# aria2
# --------------------------------------------------------------------------------------------


def ensure_apt_binary(binary: str, package: str) -> str:
    """Path of ``binary``, installing the Debian ``package`` first when missing (root only)."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RefPeerError(f"{binary} missing; install the Debian package {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, check=False
    )
    if result.returncode != 0:
        # The package lists may be missing on a fresh machine.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, check=False
        )
    found = shutil.which(binary)
    if not found:
        raise RefPeerError(f"could not install {package} to get {binary}")
    return found


class Aria2Peer(_ManagedProcess):
    """aria2c with BitTorrent on 127.0.0.1, controlled and observed over its JSON-RPC.

    aria2 cannot be told to connect to a given peer (no CLI option, no RPC method), so its peers
    come from the torrent's tracker: use :class:`MiniTracker` or :class:`OpenTracker`, and put
    the tracker URL in the torrent (:func:`make_torrent`). ``MiniTracker.add_peer`` is the way
    to point aria2 at ccbt's listen port.

    ``status()`` keys (aria2's own, numbers converted): status ("active", "complete", "error"
    ...), totalLength, completedLength, uploadLength, downloadSpeed, uploadSpeed, connections,
    numSeeders, seeder, verifiedLength, errorCode, errorMessage, plus normalised ``progress``.
    """

    name = "aria2"

    def __init__(
        self,
        torrent_path: Path | str,
        dir: Path | str,
        *,
        seed: bool,
        port: int = 0,
        seed_after_download: bool = False,
        require_crypto: bool = False,
        tracker_interval: int = 0,
        extra_args: list[str] | None = None,
        log_level: str = "notice",
    ) -> None:
        super().__init__()
        self.torrent_path = Path(torrent_path)
        self.dir = Path(dir)
        self.seed = seed
        self.requested_port = port
        self.seed_after_download = seed_after_download
        self.require_crypto = require_crypto
        self.tracker_interval = tracker_interval
        self.extra_args = list(extra_args or [])
        self.log_level = log_level
        self.rpc_port = 0
        self.gid = ""
        self._secret = secrets.token_hex(8)
        # Outside the download dir, so sha256_tree(dir) sees only the payload.
        self.log_path = Path(tempfile.gettempdir()) / f"ccbt-aria2-{secrets.token_hex(6)}.log"

    def rpc(self, method: str, *params: Any, timeout: float = 5.0) -> Any:
        """Call an aria2 JSON-RPC method (``aria2.tellStatus`` ...) with the secret token."""
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "h",
                "method": method,
                "params": [f"token:{self._secret}", *params],
            }
        ).encode()
        req = urllib.request.Request(
            f"http://{LOOPBACK}:{self.rpc_port}/jsonrpc",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        # The harness must never go through a proxy, even if the environment names one.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
        if "error" in answer:
            raise RefPeerError(f"aria2 {method}: {answer['error']}")
        return answer["result"]

    def argv(self, binary: str) -> list[str]:
        argv = [
            binary,
            "--no-conf",
            "--enable-rpc",
            f"--rpc-listen-port={self.rpc_port}",
            "--rpc-listen-all=false",
            f"--rpc-secret={self._secret}",
            # Without this aria2 writes the uploaded .torrent into the download dir.
            "--rpc-save-upload-metadata=false",
            f"--listen-port={self.port}",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6=true",
            "--file-allocation=none",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--summary-interval=0",
            "--console-log-level=warn",
            f"--log={self.log_path}",
            f"--log-level={self.log_level}",
            # aria2 exits on its own if the harness process dies without cleaning up.
            f"--stop-with-process={os.getpid()}",
        ]
        if self.require_crypto:
            argv += ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"]
        if self.tracker_interval:
            argv.append(f"--bt-tracker-interval={self.tracker_interval}")
        return argv + self.extra_args

    def download_options(self) -> dict[str, str]:
        opts = {"dir": str(self.dir), "follow-torrent": "false"}
        if self.seed:
            # Verify the data, refuse to seed unverified data, and seed until stopped.
            opts.update(
                {"check-integrity": "true", "bt-seed-unverified": "false", "seed-ratio": "0.0"}
            )
        elif self.seed_after_download:
            opts.update({"seed-ratio": "0.0"})
        else:
            opts.update({"seed-time": "0"})
        return opts

    def start(self, timeout: float = 30.0) -> int:
        """Start aria2, add the torrent over RPC; a seeder also waits until its data verified."""
        binary = ensure_apt_binary("aria2c", "aria2")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or free_port()
        self.rpc_port = free_port()
        self._spawn(self.argv(binary))
        try:
            deadline = time.monotonic() + timeout
            while True:
                self._check_alive("starting")
                try:
                    self.rpc("aria2.getVersion", timeout=1.0)
                    break
                except (OSError, RefPeerError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            torrent_b64 = base64.b64encode(self.torrent_path.read_bytes()).decode()
            self.gid = self.rpc("aria2.addTorrent", torrent_b64, [], self.download_options())
            if self.seed:
                self._wait_seed_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.port

    def _wait_seed_ready(self, timeout: float) -> None:
        """Wait for the integrity check; fail at once if it leaves pieces missing.

        Without this a seeder with wrong data just sits "active" (trying to download what it
        lacks) until the caller's timeout. While aria2 checks, ``verifiedLength`` is present;
        before the check starts ``completedLength`` is 0.
        """
        added = time.monotonic()
        while True:
            self._check_alive("checking the seed data")
            st = self.status()
            checking = "verifiedLength" in st or st.get("verifyIntegrityPending")
            done, total = st.get("completedLength", 0), st.get("totalLength", 0)
            if st.get("status") == "error":
                raise RefPeerError(f"aria2 seeder error: {st.get('errorMessage')}")
            if not checking and st.get("seeder"):
                return
            waited = time.monotonic() - added
            if not checking and (0 < done < total or (done == 0 and waited > 3.0)):
                raise RefPeerError(
                    f"aria2 seeder: data in {self.dir} fails the check ({done} of {total} "
                    "bytes good)"
                )
            if waited > timeout:
                raise TimeoutError(f"aria2: seed data not checked after {timeout:.1f}s: {st}")
            time.sleep(0.05)

    def status(self) -> dict[str, Any]:
        raw = self.rpc("aria2.tellStatus", self.gid)
        out: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, str) and v.isdigit():
                out[k] = int(v)
            elif v in ("true", "false"):
                out[k] = v == "true"
            else:
                out[k] = v
        total = out.get("totalLength", 0)
        out["progress"] = out.get("completedLength", 0) / total if total else 0.0
        return out

    async def status_async(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.status)

    def peers(self) -> list[dict[str, Any]]:
        """aria2's current peer list (ip, port, seeder, downloadSpeed ...)."""
        result: list[dict[str, Any]] = self.rpc("aria2.getPeers", self.gid)
        return result

    def is_finished(self) -> bool:
        """Every byte present and verified: a seeder ready to serve, or a leecher done."""
        st = self.status()
        if st.get("status") == "error":
            raise RefPeerError(
                f"aria2 download error {st.get('errorCode')}: {st.get('errorMessage')}\n"
                + self.log_tail()
            )
        if st.get("verifyIntegrityPending") or "verifiedLength" in st:
            return False  # still hashing
        return bool(st.get("status") == "complete" or st.get("seeder"))

    def wait_finished(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.is_finished():
            self._check_alive("waiting for the download to finish")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"aria2: not finished after {timeout:.1f}s: {self.status()}\n" + self.log_tail()
                )
            time.sleep(0.1)
        return self.status()

    async def wait_finished_async(self, timeout: float = 60.0) -> dict[str, Any]:
        """Like :meth:`wait_finished`, RPC calls in a thread so ccbt's loop keeps running."""
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self.is_finished):
            self._check_alive("waiting for the download to finish")
            if time.monotonic() > deadline:
                st = await asyncio.to_thread(self.status)
                raise TimeoutError(f"aria2: not finished after {timeout:.1f}s: {st}")
            await asyncio.sleep(0.1)
        return await asyncio.to_thread(self.status)

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text("utf-8", "replace").splitlines()
        except OSError:
            return self.output_tail(n)
        return "\n".join(lines[-n:])

    def _polite_stop(self) -> None:
        # SIGTERM is aria2's graceful stop (it still sends event=stopped) and takes ~1 s;
        # RPC aria2.forceShutdown measured slower (~4 s) because it waits for a loop tick.
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> int | None:
        try:
            return super().stop(timeout)
        finally:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


# --------------------------------------------------------------------------------------------
# Transmission
# --------------------------------------------------------------------------------------------


class TransmissionPeer(_ManagedProcess):
    """transmission-cli 3.x seeding or downloading one torrent, peers from the tracker only.

    transmission-cli reads its settings from ``<config-dir>/settings.json``; we write one with
    DHT, LPD, PeX, uTP-by-default and port mapping off, bound to 127.0.0.1. Progress is parsed
    from its status line (``Progress: 42.0%, dl from 1 of 1 peers (...), ul to ...``) and "Seeding"
    once complete.

    Loopback gotchas (Transmission 3.00, measured here):
    * It never *dials* a 127.x peer: with a tracker it announces, gets the seeder in the compact
      reply, and stays at "0 of 0 peers" (127/8 counts as a "martian" address for outgoing
      connections). Incoming connections from 127.0.0.1 are accepted, so make the other side
      connect to ``port`` (``LibtorrentPeer.connect``, or ccbt's own connect).
    * It decides interest and unchokes on a 10 s rechoke timer, then ramps its request pipeline
      up slowly: ~10-14 s for the first MiB in either direction. Budget >= 30 s per transfer.
    """

    name = "transmission"

    def __init__(
        self,
        torrent_path: Path | str,
        dir: Path | str,
        *,
        seed: bool,
        port: int = 0,
        encryption: Literal["required", "preferred", "tolerated"] = "preferred",
        utp: bool = False,
        extra_settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.torrent_path = Path(torrent_path)
        self.dir = Path(dir)
        self.seed = seed
        self.requested_port = port
        self.encryption = encryption
        self.utp = utp
        self.extra_settings = dict(extra_settings or {})
        self.config_dir = Path(tempfile.gettempdir()) / f"ccbt-transmission-{secrets.token_hex(6)}"
        self._cond = threading.Condition()
        self.progress = 0.0
        self.finished = False

    def _on_stdout_line(self, line: str) -> None:
        # transmission-cli redraws its status line with '\r'; split so each update is seen.
        for part in line.split("\r"):
            part = part.strip()
            if not part:
                continue
            self._tail.append(part)
            with self._cond:
                if part.startswith("Progress:"):
                    with contextlib.suppress(ValueError, IndexError):
                        self.progress = float(part.split()[1].rstrip("%,")) / 100.0
                if part.startswith("Seeding"):
                    self.progress = 1.0
                    self.finished = True
                self._cond.notify_all()

    def _on_stderr_line(self, line: str) -> None:
        self._on_stdout_line(line)

    def _pump(self, stream: Any, handler: Callable[[str], None]) -> None:
        # Read raw chunks: the status line ends in '\r', never '\n', so readline would stall.
        buf = b""
        while chunk := stream.read1(65536):
            buf += chunk
            *lines, buf = buf.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                handler(raw.decode("utf-8", "replace"))
        if buf:
            handler(buf.decode("utf-8", "replace"))
        self._on_eof()

    def start(self, timeout: float = 30.0) -> int:
        binary = ensure_apt_binary("transmission-cli", "transmission-cli")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or free_port()
        settings = {
            "bind-address-ipv4": LOOPBACK,
            "bind-address-ipv6": "::1",
            "dht-enabled": False,
            "lpd-enabled": False,
            "pex-enabled": False,
            "utp-enabled": self.utp,
            "port-forwarding-enabled": False,
            "peer-port": self.port,
            "peer-port-random-on-start": False,
            "download-dir": str(self.dir),
            "incomplete-dir-enabled": False,
            "rename-partial-files": False,
            "speed-limit-up-enabled": False,
            "speed-limit-down-enabled": False,
            "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False,
            "blocklist-enabled": False,
            "message-level": 2,
            "encryption": {"required": 2, "preferred": 1, "tolerated": 0}[self.encryption],
            **self.extra_settings,
        }
        (self.config_dir / "settings.json").write_text(json.dumps(settings, indent=1))
        enc_flag = {"required": "-er", "preferred": "-ep", "tolerated": "-et"}[self.encryption]
        # Its status line goes through stdio, fully buffered on a pipe (4 KiB, ~10 s of lines):
        # stdbuf makes it unbuffered so progress is seen when it happens.
        stdbuf = shutil.which("stdbuf")
        argv = [stdbuf, "-o0", "-e0"] if stdbuf else []
        argv += [
            binary,
            "-g",
            str(self.config_dir),
            "-w",
            str(self.dir),
            "-p",
            str(self.port),
            "-M",
            enc_flag,
        ]
        if self.seed:
            argv.append("-v")  # verify the data before seeding
        argv.append(str(self.torrent_path))
        self._spawn(argv)
        try:
            if self.seed:
                self.wait_finished(timeout)
        except BaseException:
            self.stop()
            raise
        return self.port

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {"progress": self.progress, "is_finished": self.finished}

    def wait_finished(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.finished:
                self._check_alive("waiting for the download to finish")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"transmission: not finished after {timeout:.1f}s\n" + self.output_tail()
                    )
                self._cond.wait(min(left, 0.2))
        return self.status()

    async def wait_finished_async(self, timeout: float = 60.0) -> dict[str, Any]:
        return await _poll_async(lambda: self.finished, self, timeout, self.status)

    def _polite_stop(self) -> None:
        # transmission-cli saves state and exits on SIGINT/SIGTERM.
        if self._proc is not None:
            _kill_group(self._proc, signal.SIGINT)

    def stop(self, timeout: float = 5.0) -> int | None:
        try:
            return super().stop(timeout)
        finally:
            shutil.rmtree(self.config_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Trackers
# --------------------------------------------------------------------------------------------


@dataclass
class _Swarm:
    peers: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    manual: set[tuple[str, int]] = field(default_factory=set)


class MiniTracker:
    """A tiny HTTP tracker on 127.0.0.1 for tests: every announcer, plus peers added by hand.

    ``announce_url`` is ``http://127.0.0.1:PORT/announce`` (libtorrent only announces to a
    loopback tracker whose path is exactly ``/announce``: its SSRF mitigation). Replies are
    compact (BEP 23) unless ``compact=0``; ``numwant`` is honoured; ``event=stopped`` removes
    the peer; the announcing peer itself is left out of its own reply. IPv6 peers go in
    ``peers6``. ``/scrape`` is answered too. Every announce is recorded in ``announces`` so
    tests of ccbt's tracker client can look at exactly what it sent.
    """

    def __init__(self, host: str = LOOPBACK, port: int = 0, *, interval: int = 5) -> None:
        self.host = host
        self.interval = interval
        self.announces: list[dict[str, Any]] = []
        self._swarms: dict[bytes, _Swarm] = {}
        self._lock = threading.Condition()
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query, encoding="latin-1")
                if url.path == "/announce":
                    body = tracker._announce(query, self.client_address[0])
                elif url.path == "/scrape":
                    body = tracker._scrape(query)
                else:
                    self.send_error(404)
                    return
                # A client that stops while announcing hangs up early: not the tracker's error.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read ``announces`` instead

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def announce_url(self) -> str:
        return f"http://{self.host}:{self.port}/announce"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- test-side API ---------------------------------------------------------------------
    def add_peer(self, info_hash: bytes | str, host: str, port: int) -> None:
        """Hand out ``host:port`` to everyone announcing ``info_hash`` (e.g. ccbt's listener)."""
        ih = _info_hash_bytes(info_hash)
        with self._lock:
            swarm = self._swarms.setdefault(ih, _Swarm())
            swarm.manual.add((host, port))
            swarm.peers[(host, port)] = {"peer_id": b"", "left": 0, "manual": True}
            self._lock.notify_all()

    def remove_peer(self, info_hash: bytes | str, host: str, port: int) -> None:
        ih = _info_hash_bytes(info_hash)
        with self._lock:
            swarm = self._swarms.get(ih)
            if swarm is not None:
                swarm.manual.discard((host, port))
                swarm.peers.pop((host, port), None)

    def peers(self, info_hash: bytes | str) -> list[tuple[str, int]]:
        with self._lock:
            swarm = self._swarms.get(_info_hash_bytes(info_hash))
            return list(swarm.peers) if swarm else []

    def wait_for_peers(self, info_hash: bytes | str, count: int, timeout: float = 15.0) -> None:
        """Block until ``count`` peers (announced or added) are known for ``info_hash``."""
        ih = _info_hash_bytes(info_hash)
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._swarms.get(ih, _Swarm()).peers) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"tracker: {count} peers wanted for {ih.hex()}, "
                        f"have {list(self._swarms.get(ih, _Swarm()).peers)}"
                    )
                self._lock.wait(left)

    # -- request handling ------------------------------------------------------------------
    def _announce(self, q: dict[str, list[str]], client_ip: str) -> bytes:
        def one(key: str, default: str = "") -> str:
            return q.get(key, [default])[0]

        try:
            ih = one("info_hash").encode("latin-1")
            port = int(one("port"))
            numwant = int(one("numwant", "50") or 50)
            left = int(one("left", "0") or 0)
        except ValueError as exc:
            return bencode({"failure reason": f"bad announce: {exc}"})
        if len(ih) != 20 or not 0 < port < 65536:
            return bencode({"failure reason": "bad info_hash or port"})
        ip = client_ip
        claimed = one("ip")
        with contextlib.suppress(ValueError):
            if claimed and ipaddress.ip_address(claimed).is_loopback:
                ip = claimed  # only ever trust a claimed address on loopback
        event = one("event")
        record = {
            "info_hash": ih,
            "ip": ip,
            "port": port,
            "peer_id": one("peer_id").encode("latin-1"),
            "event": event,
            "left": left,
            "uploaded": one("uploaded"),
            "downloaded": one("downloaded"),
            "compact": one("compact"),
            "numwant": numwant,
            "key": one("key"),
            "query": q,
        }
        with self._lock:
            self.announces.append(record)
            swarm = self._swarms.setdefault(ih, _Swarm())
            key = (ip, port)
            if event == "stopped":
                if key not in swarm.manual:
                    swarm.peers.pop(key, None)
            else:
                swarm.peers[key] = {"peer_id": record["peer_id"], "left": left, "manual": False}
            others = [(k, v) for k, v in swarm.peers.items() if k != key][: max(numwant, 0)]
            complete = sum(1 for v in swarm.peers.values() if v["left"] == 0)
            incomplete = len(swarm.peers) - complete
            self._lock.notify_all()
        reply: dict[str, Any] = {
            "interval": self.interval,
            "min interval": 1,
            "complete": complete,
            "incomplete": incomplete,
        }
        if one("compact", "1") == "0":
            reply["peers"] = [{"ip": h, "port": p, "peer id": v["peer_id"]} for (h, p), v in others]
        else:
            v4 = b"".join(
                socket.inet_aton(h) + struct.pack(">H", p) for (h, p), _ in others if ":" not in h
            )
            v6 = b"".join(
                socket.inet_pton(socket.AF_INET6, h) + struct.pack(">H", p)
                for (h, p), _ in others
                if ":" in h
            )
            reply["peers"] = v4
            if v6:
                reply["peers6"] = v6
        return bencode(reply)

    def _scrape(self, q: dict[str, list[str]]) -> bytes:
        files: dict[bytes, Any] = {}
        with self._lock:
            wanted = [h.encode("latin-1") for h in q.get("info_hash", [])] or list(self._swarms)
            for ih in wanted:
                swarm = self._swarms.get(ih, _Swarm())
                complete = sum(1 for v in swarm.peers.values() if v["left"] == 0)
                files[ih] = {
                    "complete": complete,
                    "incomplete": len(swarm.peers) - complete,
                    "downloaded": 0,
                }
        return bencode({"files": files})


def _info_hash_bytes(info_hash: bytes | str) -> bytes:
    ih = bytes.fromhex(info_hash) if isinstance(info_hash, str) else info_hash
    if len(ih) == 32:
        ih = ih[:20]  # v2 hashes are truncated to 20 bytes on the tracker wire
    if len(ih) != 20:
        raise ValueError("info hash must be 20 bytes (or 32, truncated)")
    return ih


class OpenTracker(_ManagedProcess):
    """Debian's ``opentracker`` (a real, widely deployed tracker) on 127.0.0.1, HTTP and UDP.

    ``announce_url`` is HTTP, ``udp_url`` is BEP 15 UDP on the same port number.

    Debian builds it with a *whitelist*: an info hash not listed is refused ("Requested download
    is not authorized for use with this tracker"). Pass the hashes to the constructor or call
    :meth:`allow` (rewrites the list and sends SIGHUP, which makes opentracker reload it).
    Unlike :class:`MiniTracker` it also returns the announcing peer its own address, so clients
    see themselves in the peer list (libtorrent and aria2 both drop such a self-connection).
    Its announce interval is ~30 min: start seeders before leechers.
    """

    name = "opentracker"

    def __init__(self, port: int = 0, *, whitelist: Iterable[bytes | str] = ()) -> None:
        super().__init__()
        self.requested_port = port
        self._allowed: set[bytes] = {_info_hash_bytes(h) for h in whitelist}
        self.workdir: Path | None = None

    @property
    def announce_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/announce"

    @property
    def udp_url(self) -> str:
        return f"udp://{LOOPBACK}:{self.port}/announce"

    def _write_whitelist(self) -> None:
        assert self.workdir is not None
        tmp = self.workdir / "whitelist.tmp"
        tmp.write_text("".join(h.hex() + "\n" for h in sorted(self._allowed)))
        tmp.chmod(0o644)
        tmp.replace(self.workdir / "whitelist")

    def allow(self, info_hash: bytes | str) -> None:
        """Let the tracker serve ``info_hash`` (takes effect within a few milliseconds)."""
        self._allowed.add(_info_hash_bytes(info_hash))
        if self.workdir is not None and self._proc is not None:
            self._write_whitelist()
            self._proc.send_signal(signal.SIGHUP)
            time.sleep(0.1)  # the reload happens on opentracker's own thread

    def start(self, timeout: float = 10.0) -> int:
        binary = ensure_apt_binary("opentracker", "opentracker")
        self.port = self.requested_port or free_port()
        # opentracker chroots into -d and, as root, drops to "nobody": the folder and the
        # whitelist must be readable by everyone.
        self.workdir = Path(tempfile.mkdtemp(prefix="opentracker-"))
        self.workdir.chmod(0o755)
        self._write_whitelist()
        argv = [binary, "-i", LOOPBACK, "-p", str(self.port), "-P", str(self.port)]
        argv += ["-d", str(self.workdir), "-w", "whitelist"]
        self._spawn(argv, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("starting")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return self.port
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RefPeerError(
                        "opentracker did not listen:\n" + self.output_tail()
                    ) from exc
                time.sleep(0.05)

    def _polite_stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 2.0) -> int | None:
        try:
            return super().stop(timeout)
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(*peers: _ManagedProcess) -> Iterator[list[int]]:
    """Start several peers, yield their ports, stop them all whatever happens."""
    started: list[_ManagedProcess] = []
    try:
        ports = []
        for p in peers:
            ports.append(p.start())
            started.append(p)
        yield ports
    finally:
        for p in reversed(started):
            p.stop()
