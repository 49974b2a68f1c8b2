"""asyncio shell for uTP: one UDP socket, many connections, and the datagrams others want.

:class:`UTPSocket` owns a UDP socket bound to the peer listen port. Datagrams that a registered
handler claims (the DHT's bencoded KRPC messages start with ``b"d"``, which is never a valid uTP
first byte) go to that handler; the rest are uTP and are routed to a connection by (address,
connection id). Each connection is a :class:`UTPTransport`, an ``asyncio.Transport`` look-alike,
so :class:`~ccbt_engine.net.peer.PeerConnection` (an ``asyncio.Protocol``) runs over uTP exactly
as over TCP.

The socket is read with ``add_reader`` and drained in batches: asyncio's own datagram transport
reads one datagram per loop iteration, which caps uTP far below what the core can do. Where the
loop has no ``add_reader`` (Windows' proactor), the ordinary datagram transport is used instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ccbt_engine.net.proxy import udp_block_reason
from ccbt_engine.protocol import utp
from ccbt_engine.protocol.utp import UTPConnection, UTPError

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

log = logging.getLogger(__name__)

Addr = tuple[str, int]
DatagramHandler = Callable[[bytes, Addr], None]
P = TypeVar("P", bound=asyncio.BaseProtocol)

#: datagrams read per wake-up before other tasks get the loop back
READ_BATCH = 256
SOCKET_BUFFER = 4 * 1024 * 1024
#: largest data_received when a paused reader resumes (TCP reads are of this order)
READ_CHUNK = 64 * 1024
#: incoming connections allowed at once (a SYN flood must not grow memory without bound)
MAX_CONNECTIONS = 4096
#: how long a uTP attempt runs alone before TCP is tried alongside it
UTP_HEAD_START = 0.5
#: peers remembered as reached over TCP while uTP went unanswered (a bounded LRU)
TCP_MEMORY = 4096


def _norm(addr: tuple[Any, ...]) -> Addr:
    host = str(addr[0]).split("%", 1)[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(addr[1])


def is_utp_datagram(data: bytes) -> bool:
    """Cheap first-byte test: type 0..4 in the high nibble, version 1 in the low one."""
    return len(data) >= utp.HEADER_SIZE and data[0] & 0x0F == utp.VERSION and data[0] >> 4 <= 4


class UTPTransport(asyncio.Transport):
    """One uTP connection seen as a stream transport (what ``PeerConnection`` needs)."""

    def __init__(self, owner: UTPSocket, core: UTPConnection, addr: Addr) -> None:
        super().__init__()
        self._owner = owner
        self.core = core
        self.addr = addr
        self._protocol: asyncio.Protocol | None = None
        self._closing = False
        self._lost_sent = False
        self._write_paused = False
        self._high = 1024 * 1024
        self._low = 256 * 1024
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.connected: asyncio.Future[None] | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (*self.addr, self.core.recv_id)

    # -- asyncio.Transport --------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.addr
        if name == "sockname":
            return self._owner.address
        return default  # "socket" included: there is no per-connection socket to tune

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self.core.send(data)
        self._owner.schedule_flush(self)
        self._check_pause()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        if self._closing:
            return
        for data in list_of_data:
            if data:
                self.core.send(data)
        self._owner.schedule_flush(self)
        self._check_pause()

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("uTP has no half-close")

    def get_write_buffer_size(self) -> int:
        return self.core.send_buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low
        self._check_pause()

    def pause_reading(self) -> None:
        self.core.pause_reading()

    def resume_reading(self) -> None:
        # hand the backlog over in read-sized bites, stopping as soon as the protocol pauses
        # again: one multi-megabyte data_received would defeat a rate limiter's accounting
        self._dispatch(self.core.resume_reading(READ_CHUNK))
        while self.core.held and not self.core._read_paused and not self._lost_sent:
            self._dispatch(self.core.resume_reading(READ_CHUNK))
        self._owner.schedule_flush(self)

    def is_reading(self) -> bool:
        return not self.core._read_paused

    def close(self) -> None:
        """Send what is queued, then FIN; the protocol hears ``connection_lost`` right away."""
        if self._closing:
            return
        self._closing = True
        self.core.close()
        self._owner.schedule_flush(self)
        self._lose(None)

    def abort(self) -> None:
        self._closing = True
        datagram = self.core.reset()
        if datagram is not None:
            self._owner.sendto(datagram, self.addr)
        self._owner.forget(self)
        self._lose(None)

    # -- from the socket ----------------------------------------------------------------
    def _dispatch(self, events: list[utp.Event]) -> None:
        for event in events:
            if isinstance(event, utp.Data):
                if self._protocol is not None and not self._lost_sent:
                    self._protocol.data_received(event.data)
            elif isinstance(event, utp.Connected):
                self.core.pause_reading()  # hold data until the protocol is attached
                if self.connected is not None and not self.connected.done():
                    self.connected.set_result(None)
            elif isinstance(event, utp.Closed):
                keep_open = self._protocol is not None and self._protocol.eof_received()
                if not keep_open:
                    self.close()
            elif isinstance(event, utp.Reset):
                self._closing = True
                if self.connected is not None and not self.connected.done():
                    refused = "reset" in event.reason
                    exc_type = ConnectionRefusedError if refused else TimeoutError
                    self.connected.set_exception(exc_type(f"uTP: {event.reason}"))
                self._lose(ConnectionResetError(f"uTP: {event.reason}"))

    def _lose(self, exc: Exception | None) -> None:
        if self._lost_sent or self._protocol is None:
            self._lost_sent = self._lost_sent or self._protocol is None
            return
        self._lost_sent = True
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, exc)

    def _check_pause(self) -> None:
        if self._protocol is None:
            return
        size = self.core.send_buffered
        if not self._write_paused and size > self._high:
            self._write_paused = True
            self._protocol.pause_writing()
        elif self._write_paused and size <= self._low:
            self._write_paused = False
            self._protocol.resume_writing()


class UTPSocket(asyncio.DatagramProtocol):
    """A UDP socket carrying uTP connections plus whatever registered handlers claim."""

    def __init__(self, accept: Callable[[], asyncio.Protocol] | None = None) -> None:
        #: factory for the protocol of an incoming connection; None refuses them (RESET)
        self.accept = accept
        self._sock: socket.socket | None = None
        self._dgram: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._links: dict[tuple[str, int, int], UTPTransport] = {}
        self._handlers: list[tuple[Callable[[bytes], bool], DatagramHandler]] = []
        self._dirty: set[UTPTransport] = set()
        self._flush_scheduled = False
        self._rng = random.Random()
        self.address: Addr = ("", 0)
        self.closed = False
        #: counters for tests and the curious
        self.malformed = 0

    @classmethod
    async def open(
        cls, host: str, port: int, *, accept: Callable[[], asyncio.Protocol] | None = None
    ) -> UTPSocket:
        """Bind ``host:port`` (UDP); raises OSError when the port is taken."""
        self = cls(accept)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.address = _norm(sock.getsockname())
        try:
            self._loop.add_reader(sock.fileno(), self._read_ready)
        except NotImplementedError:
            transport, _ = await self._loop.create_datagram_endpoint(lambda: self, sock=sock)
            self._dgram = transport
        return self

    @property
    def port(self) -> int:
        return self.address[1]

    def register_handler(
        self, predicate: Callable[[bytes], bool], callback: DatagramHandler
    ) -> None:
        """Send datagrams for which ``predicate`` is true to ``callback(data, (host, port))``.

        Handlers are asked in registration order, before uTP; the DHT registers
        ``lambda d: d[:1] == b"d"`` and sends its replies with :meth:`sendto`.
        """
        self._handlers.append((predicate, callback))

    def unregister_handler(self, callback: DatagramHandler) -> None:
        """Stop routing datagrams to ``callback`` (a DHT node that was switched off)."""
        self._handlers = [(p, c) for p, c in self._handlers if c != callback]

    def sendto(self, data: bytes, addr: Addr) -> None:
        if self.closed:
            return
        if self._dgram is not None:
            self._dgram.sendto(data, addr)
            return
        assert self._sock is not None
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # the kernel's queue is full: as good as lost on the wire, uTP resends
        except OSError as exc:
            log.debug("utp: sendto %s failed: %s", addr, exc)

    # -- connections ----------------------------------------------------------------------
    async def connect(
        self, factory: Callable[[], P], host: str, port: int, *, timeout: float
    ) -> tuple[UTPTransport, P]:
        """Open a uTP connection; raises TimeoutError or ConnectionError (OSError) on failure."""
        if self.closed:
            raise ConnectionError("uTP socket closed")
        addr = (host, port)
        recv_id = self._free_id(addr)
        core = UTPConnection.connect(
            recv_id, self._loop.time(), seq_nr=self._rng.randrange(1 << 16)
        )
        link = UTPTransport(self, core, addr)
        link.connected = self._loop.create_future()
        self._links[link.key] = link
        self.schedule_flush(link)
        try:
            await asyncio.wait_for(asyncio.shield(link.connected), timeout)
            protocol = factory()
        except BaseException:
            link._closing = True
            link.connected.cancel()
            datagram = core.reset()
            if datagram is not None:
                self.sendto(datagram, addr)
            self.forget(link)
            raise
        assert isinstance(protocol, asyncio.Protocol)
        link.set_protocol(protocol)
        protocol.connection_made(link)
        if not link._closing:
            link.resume_reading()
        return link, protocol

    def _free_id(self, addr: Addr) -> int:
        while True:
            recv_id = self._rng.randrange(1 << 16)
            # the peer answers on recv_id; it knows us by send_id = recv_id + 1
            if (*addr, recv_id) not in self._links:
                return recv_id

    def forget(self, link: UTPTransport) -> None:
        if self._links.get(link.key) is link:
            del self._links[link.key]
        self._dirty.discard(link)
        if link._timer is not None:
            link._timer.cancel()
            link._timer = None

    @property
    def connections(self) -> int:
        return len(self._links)

    def close(self) -> None:
        """Reset every connection and close the socket."""
        if self.closed:
            return
        for link in list(self._links.values()):
            if not link.core.finished:
                link.abort()
        self._links.clear()
        self.closed = True
        if self._dgram is not None:
            self._dgram.close()
        elif self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    # -- receiving ------------------------------------------------------------------------
    def _read_ready(self) -> None:
        sock = self._sock
        assert sock is not None
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("utp: recvfrom: %s", exc)
                break
            self._on_datagram(data, addr)
        self._flush()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._on_datagram(data, addr)
        self.schedule_flush(None)

    def error_received(self, exc: Exception) -> None:
        log.debug("utp: socket error: %s", exc)

    def _on_datagram(self, data: bytes, raw_addr: tuple[Any, ...]) -> None:
        addr = _norm(raw_addr)
        for predicate, callback in self._handlers:
            if predicate(data):
                try:
                    callback(data, addr)
                except Exception:  # a handler's bug must not take the peers down with it
                    log.exception("utp: datagram handler failed")
                return
        if self.closed or not is_utp_datagram(data):
            self.malformed += 1
            return
        try:
            pkt = utp.decode(data)
        except UTPError:
            self.malformed += 1
            return
        link = self._find(addr, pkt)
        if link is None:
            if pkt.type == utp.ST_SYN:
                self._incoming(addr, pkt)
            elif pkt.type in (utp.ST_DATA, utp.ST_FIN, utp.ST_SYN):
                self._refuse(addr, pkt)
            return
        link._dispatch(link.core.receive_packet(pkt, self._loop.time()))
        self._dirty.add(link)

    def _find(self, addr: Addr, pkt: utp.Packet) -> UTPTransport | None:
        cid = pkt.connection_id
        if pkt.type == utp.ST_SYN:
            return self._links.get((*addr, (cid + 1) & 0xFFFF))
        link = self._links.get((*addr, cid))
        if link is None and pkt.type == utp.ST_RESET:
            # a RESET may carry our send id instead (libutp checks the same three cases)
            for other in ((cid + 1) & 0xFFFF, (cid - 1) & 0xFFFF):
                cand = self._links.get((*addr, other))
                if cand is not None and cand.core.send_id == cid:
                    return cand
        return link

    def _incoming(self, addr: Addr, syn: utp.Packet) -> None:
        if self.accept is None or len(self._links) >= MAX_CONNECTIONS:
            self._refuse(addr, syn)
            return
        core = UTPConnection.accept(syn, self._loop.time(), seq_nr=self._rng.randrange(1 << 16))
        link = UTPTransport(self, core, addr)
        self._links[link.key] = link
        self._dirty.add(link)
        protocol = self.accept()
        link.set_protocol(protocol)
        protocol.connection_made(link)

    def _refuse(self, addr: Addr, pkt: utp.Packet) -> None:
        reset = utp.Packet(utp.ST_RESET, pkt.connection_id, 0, 0, 0, 0, pkt.seq_nr)
        self.sendto(utp.encode(reset), addr)

    # -- sending and timers -------------------------------------------------------------
    def schedule_flush(self, link: UTPTransport | None) -> None:
        """Send what ``link`` has on the next loop pass (writes in one pass share packets)."""
        if link is not None:
            self._dirty.add(link)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        now = self._loop.time()
        dirty, self._dirty = self._dirty, set()
        for link in dirty:
            for datagram in link.core.poll(now):
                self.sendto(datagram, link.addr)
            link._check_pause()
            self._arm(link)

    def _arm(self, link: UTPTransport) -> None:
        if link.core.finished:
            self.forget(link)
            return
        deadline = link.core.deadline()
        if deadline is None:
            return
        if link._timer is not None and link._timer_at <= deadline:
            return  # fires early, finds nothing due, re-arms: cheaper than rescheduling
        if link._timer is not None:
            link._timer.cancel()
        link._timer_at = deadline
        link._timer = self._loop.call_at(deadline, self._on_timer, link)

    def _on_timer(self, link: UTPTransport) -> None:
        link._timer = None
        if self._links.get(link.key) is not link:
            return
        link._dispatch(link.core.timer(self._loop.time()))
        self._dirty.add(link)
        self._flush()


class UTPListener:
    """One :class:`UTPSocket` per listen address, all on the same port (the TCP port)."""

    def __init__(self, sockets: Mapping[str, UTPSocket]) -> None:
        self.sockets = dict(sockets)
        #: peers whose last outgoing dial was won by TCP: the next one dials TCP first
        self.tcp_won: OrderedDict[Addr, None] = OrderedDict()

    def record_winner(self, addr: Addr, tcp: bool) -> None:
        """Remember which transport reached ``addr``, so a TCP-only peer (uTP off, or its UDP
        dropped on the way) costs the uTP head start once, not on every reconnect; libtorrent
        keeps a per-peer "supports uTP" flag for the same reason."""
        if tcp:
            self.tcp_won[addr] = None
            self.tcp_won.move_to_end(addr)
            while len(self.tcp_won) > TCP_MEMORY:
                self.tcp_won.popitem(last=False)
        else:
            self.tcp_won.pop(addr, None)

    @classmethod
    async def open(
        cls, hosts: Iterable[str], port: int, accept: Callable[[], asyncio.Protocol] | None
    ) -> UTPListener:
        """Bind every host; ``accept`` makes the protocol of an incoming connection (None:
        incoming SYNs are refused, as :meth:`UTPSocket.open` does)."""
        opened: dict[str, UTPSocket] = {}
        try:
            for host in hosts:
                opened[host] = await UTPSocket.open(host, port, accept=accept)
        except OSError:
            for sock in opened.values():
                sock.close()
            raise
        return cls(opened)

    def for_host(self, host: str) -> UTPSocket | None:
        """A socket of the right address family to reach ``host``."""
        v6 = ":" in host
        for bound, sock in self.sockets.items():
            if (":" in bound) == v6:
                return sock
        return None

    def register_handler(
        self, predicate: Callable[[bytes], bool], callback: DatagramHandler
    ) -> None:
        for sock in self.sockets.values():
            sock.register_handler(predicate, callback)

    def unregister_handler(self, callback: DatagramHandler) -> None:
        for sock in self.sockets.values():
            sock.unregister_handler(callback)

    def sendto(self, data: bytes, addr: Addr) -> None:
        sock = self.for_host(addr[0])
        if sock is not None:
            sock.sendto(data, addr)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


async def open_peer_connection(
    utp_listener: UTPListener | None,
    factory: Callable[[], P],
    host: str,
    port: int,
    timeout: float,
) -> tuple[asyncio.Transport, P]:
    """uTP first, TCP as the fallback, for one outgoing peer connection.

    uTP gets :data:`UTP_HEAD_START` alone (a SYN-ACK on a LAN or loopback takes far less);
    then TCP is dialled alongside it and whichever connects first wins, the other is closed.
    A peer without uTP therefore costs half a second, not a whole connect timeout, and only
    once: the listener remembers peers TCP won (:meth:`UTPListener.record_winner`) and gives
    TCP the head start with them next time. ``factory`` is called exactly once, for the winner.
    """
    loop = asyncio.get_running_loop()
    sock = utp_listener.for_host(host) if utp_listener is not None else None
    if utp_listener is None or sock is None:
        return await asyncio.wait_for(loop.create_connection(factory, host, port), timeout)
    made: list[P] = []

    def once() -> P:
        if made:
            raise ConnectionError("connected twice")
        made.append(factory())
        return made[0]

    async def tcp() -> tuple[asyncio.Transport, P]:
        raw_sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        raw_sock.setblocking(False)
        try:
            await loop.sock_connect(raw_sock, (host, port))
            if made:
                raise ConnectionError("uTP connected first")
        except BaseException:
            raw_sock.close()
            raise
        return await loop.create_connection(once, sock=raw_sock)

    async def utp_connect() -> tuple[asyncio.Transport, P]:
        return await sock.connect(once, host, port, timeout=timeout)

    def tcp_dial() -> asyncio.Future[tuple[asyncio.Transport, P]]:
        return asyncio.ensure_future(asyncio.wait_for(tcp(), timeout))

    def utp_dial() -> asyncio.Future[tuple[asyncio.Transport, P]]:
        return asyncio.ensure_future(utp_connect())

    tcp_first = (host, port) in utp_listener.tcp_won
    first, second = (tcp_dial, utp_dial) if tcp_first else (utp_dial, tcp_dial)
    tasks: list[asyncio.Future[tuple[asyncio.Transport, P]]] = [first()]
    errors: dict[int, BaseException] = {}  # by position in tasks
    try:
        done, _ = await asyncio.wait(tasks, timeout=UTP_HEAD_START)
        if not done or tasks[0].exception() is not None:
            tasks.append(second())
        pending = set(tasks)
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(finished, key=tasks.index):
                exc = task.exception()
                if exc is None:
                    transport, proto = task.result()
                    utp_listener.record_winner(
                        (host, port), not isinstance(transport, UTPTransport)
                    )
                    return transport, proto
                errors[tasks.index(task)] = exc
    finally:
        for task in tasks:
            task.cancel()  # the loser (or everything, when we were cancelled)
    # TCP's error when TCP was tried ("connection refused"): it says more than a uTP timeout
    tcp_at = 0 if tcp_first else 1
    last = errors.get(tcp_at, errors[0])
    raise last if isinstance(last, Exception) else ConnectionError("connect failed")


def transport_name(transport: asyncio.BaseTransport | None) -> str:
    """What the peers list shows: "uTP" or "TCP"."""
    return "uTP" if isinstance(transport, UTPTransport) else "TCP"


def is_krpc(data: bytes) -> bool:
    """DHT messages are bencoded dictionaries; no uTP packet starts with ``d``."""
    return data[:1] == b"d"


async def start_session_utp(session: SessionCore) -> UTPListener | None:
    """uTP on the session's listen port (every listen address), or None when it is off.

    Incoming connections become :class:`PeerConnection` objects exactly like TCP ones
    (``session._incoming``). The DHT shares this socket (``register_handler`` plus
    ``DHTNode.attach(listener.sendto)``, see ``dht.service.start_session_dht``).
    A port that cannot be bound costs uTP, not the session: TCP still works.
    """
    net = session.settings.network
    if not net.enable_utp or udp_block_reason(net) is not None:  # proxy_force: no direct UDP
        return None
    port = session.listen_port
    hosts = [h for h in net.listen_interfaces if net.enable_ipv6 or ":" not in h]
    try:
        listener = await UTPListener.open(hosts, port, session._incoming)
    except OSError as exc:
        log.warning("utp: cannot listen on UDP port %d: %s", port, exc)
        return None
    log.info("utp: listening on UDP port %d", port)
    return listener
