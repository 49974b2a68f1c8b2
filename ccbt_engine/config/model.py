"""The typed settings model: one source of truth for files, environment, CLI and the GUI dialog.

Every setting is a field of a frozen section model, so a value that passed validation cannot be
changed behind the session's back; a change is a new :class:`Settings` whose :meth:`Settings.diff`
against the old one tells a running session what to apply live.

Each field carries a ``description`` (shown in docs and the settings dialog) and, where the type
alone does not say it well, an ``allowed`` text used in error messages; :func:`describe_allowed`
derives that text from the field's type and bounds otherwise, so messages can never drift from the
constraints actually enforced.
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo

from ccbt_engine.config.errors import ConfigError
from ccbt_engine.pathsafe import expand_home

__all__ = [
    "SECRET_KEYS",
    "SECTION_NAMES",
    "DiskSettings",
    "FieldSpec",
    "LimitsSettings",
    "NetworkSettings",
    "ObservabilitySettings",
    "RemoteSettings",
    "SecuritySettings",
    "Settings",
    "UiSettings",
    "describe_allowed",
    "field_info",
    "iter_fields",
    "split_key",
]

#: Keys whose values are secrets: never written to a config file, kept in the OS keyring instead.
SECRET_KEYS: frozenset[str] = frozenset({"remote.password", "network.proxy_password"})

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_ip(value: str) -> str:
    ipaddress.ip_address(value)  # raises ValueError, which pydantic turns into a validation error
    return value


def _empty_is_none(value: Any) -> Any:
    """TOML has no null, so an empty string is how a file (or env var) says "not set"."""
    return None if value == "" else value


def _not_empty(value: Any) -> Any:
    """``Path("")`` would silently mean the working folder; a required path must be given."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("the path is empty")
    return value


def _expand(path: Path | None) -> Path | None:
    """``~`` and ``~user`` expanded; a user with no home folder here is the value's error (a
    validation error naming the key), not a ``RuntimeError`` out of the loader."""
    return None if path is None else expand_home(path)


IpStr = Annotated[str, AfterValidator(_check_ip)]
UserPath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_expand)]
OptionalPath = Annotated[Path | None, BeforeValidator(_empty_is_none), AfterValidator(_expand)]
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
HostPort = Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):\d{1,5}$")]


def _f(default: Any = ..., description: str = "", *, allowed: str | None = None, **kw: Any) -> Any:
    """A field with a description and, optionally, a hand-written ``allowed`` text."""
    extra: dict[str, Any] | None = {"allowed": allowed} if allowed else None
    if "default_factory" in kw:
        return Field(description=description, json_schema_extra=extra, **kw)
    return Field(default, description=description, json_schema_extra=extra, **kw)


def _default_download_dir() -> Path:
    return Path(platformdirs.user_downloads_dir())


class _Section(BaseModel):
    # extra="forbid": a misspelt key must be an error, not a silently ignored line.
    # frozen: settings are values; a change is a new object, which makes diff() meaningful.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """Lax mode would read ``listen_port = true`` as port 1; a boolean is never a number."""
        name = info.field_name
        if isinstance(value, bool) and name and cls.model_fields[name].annotation in (int, float):
            raise ValueError("true/false is not a number")
        return value


class NetworkSettings(_Section):
    """Listening, peer counts, timeouts and which peer sources/transports are used."""

    listen_port: int = _f(6881, "TCP/uTP port for incoming peer connections.", ge=1, le=65535)
    listen_interfaces: tuple[IpStr, ...] = _f(
        ("0.0.0.0", "::"),
        "Addresses to listen on; IPv6 ones are skipped when enable_ipv6 is false.",
        allowed='a list of IP addresses, e.g. ["0.0.0.0", "::"]',
    )
    enable_ipv6: bool = _f(True, "Listen on and connect to IPv6 peers.")
    max_global_peers: int = _f(200, "Connected peers across all torrents.", ge=1, le=100_000)
    max_peers_per_torrent: int = _f(50, "Connected peers per torrent.", ge=1, le=10_000)
    max_half_open: int = _f(50, "Outgoing connection attempts in flight at once.", ge=1, le=10_000)
    connect_timeout: float = _f(10.0, "Seconds to wait for a peer connection.", gt=0, le=300)
    handshake_timeout: float = _f(
        10.0, "Seconds to wait for the BitTorrent handshake.", gt=0, le=300
    )
    peer_idle_timeout: float = _f(
        180.0,
        "Seconds without any message before a peer is dropped (peers send keep-alives about"
        " every 2 minutes, so keep this above 120).",
        gt=0,
        le=3600,
    )
    max_outstanding_requests: int = _f(
        500,
        "Hard cap on block requests in flight per peer; below it the depth follows the peer's"
        " measured rate (3 s of its download, bandwidth x delay) and its advertised reqq.",
        ge=1,
        le=2048,
    )
    enable_tcp: bool = _f(True, "Use TCP peer connections.")
    enable_utp: bool = _f(
        True,
        "Use uTP (BEP 29) peer connections: outgoing peers are tried over uTP first and over TCP"
        " if it has not connected within 0.5 s; incoming uTP is accepted.",
    )
    enable_dht: bool = _f(True, "Find peers through the DHT (BEP 5).")
    dht_port: int = _f(0, "UDP port for the DHT; 0 means the same as listen_port.", ge=0, le=65535)
    dht_bootstrap_nodes: tuple[HostPort, ...] = _f(
        ("router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881"),
        "DHT nodes to join through when the saved routing table is empty or stale.",
        allowed='a list of host:port strings, e.g. ["router.bittorrent.com:6881", "[::1]:6881"]',
    )
    enable_lsd: bool = _f(True, "Local Service Discovery on the LAN (BEP 14).")
    enable_pex: bool = _f(True, "Peer exchange (BEP 11).")
    enable_upnp: bool = _f(True, "Ask the router to forward listen_port with UPnP.")
    enable_natpmp: bool = _f(True, "Ask the router to forward listen_port with NAT-PMP.")
    proxy_type: Literal["none", "socks5", "http"] = _f("none", "Proxy for peer/tracker traffic.")
    proxy_host: str = _f("", "Proxy host name or address.")
    proxy_port: int = _f(1080, "Proxy port.", ge=1, le=65535)
    proxy_username: str = _f("", "Proxy user name (the password is kept in the OS keyring).")
    proxy_force: bool = _f(
        False,
        "With a proxy set, turn off what it cannot carry (uTP, DHT, UDP trackers, LSD, UPnP and"
        " NAT-PMP) instead of letting it go direct.",
    )

    def no_transport_reason(self) -> str | None:
        """Why no peer connection can be made with these settings, or None when one can.

        Not a validation error: each key is valid alone, and the desktop app's tolerant loader
        applies keys one by one; instead the status bar, the log and ``ccbt config set`` say it.
        """
        if not self.enable_tcp and not self.enable_utp:
            return (
                "no peer transport is enabled: network.enable_tcp and network.enable_utp are"
                " both false; turn one of them on"
            )
        if not self.enable_tcp and self.proxy_type != "none":
            return "network.enable_tcp is false but a proxy carries only TCP: no outgoing peers"
        return None


class DiskSettings(_Section):
    """Where data goes and how it is written, cached and checked."""

    download_path: UserPath = _f(
        ...,
        "Default folder for new downloads.",
        default_factory=_default_download_dir,
        allowed="a folder path",
    )
    state_dir: OptionalPath = _f(
        None,
        "Folder for resume data; empty means the platform's user data folder.",
        allowed="a folder path, or empty for the default",
    )
    move_completed_to: OptionalPath = _f(
        None,
        "When a download completes, move its files here (it keeps seeding from there; a failed"
        " move is rolled back); empty means leave them in place.",
        allowed="a folder path, or empty to leave finished downloads in place",
    )
    preallocate: Literal["none", "sparse", "full"] = _f(
        "sparse", "How file space is reserved: not at all, as sparse files, or fully written."
    )
    write_mode: Literal["direct", "cached"] = _f(
        "direct",
        "How verified pieces are written: 'direct' skips the OS page cache for large aligned"
        " writes on local Linux disks (ext4, xfs, btrfs ...; elsewhere it writes like 'cached'),"
        " 'cached' always writes through the OS page cache.",
    )
    write_cache_mb: int = _f(
        64,
        "Write cache size in MiB: pieces received, being hashed or written; reading from peers"
        " pauses while it is full (back-pressure).",
        ge=0,
        le=65536,
    )
    read_cache_mb: int = _f(32, "Upload read cache (all torrents) in MiB; 0 = off.", ge=0, le=65536)
    max_open_files: int = _f(256, "File handles kept open across all torrents.", ge=1, le=65536)
    hash_threads: int = _f(2, "Threads used to hash pieces.", ge=1, le=64)
    checkpoint_interval: int = _f(30, "Seconds between resume-data checkpoints.", ge=1, le=86_400)


class LimitsSettings(_Section):
    """Rate limits (KiB/s, 0 = unlimited), the alternative-speed schedule and queueing."""

    global_down_kib: int = _f(0, "Total download rate limit in KiB/s; 0 = unlimited.", ge=0)
    global_up_kib: int = _f(0, "Total upload rate limit in KiB/s; 0 = unlimited.", ge=0)
    per_torrent_down_kib: int = _f(
        0, "Default download limit for a new torrent in KiB/s; 0 = unlimited.", ge=0
    )
    per_torrent_up_kib: int = _f(
        0, "Default upload limit for a new torrent in KiB/s; 0 = unlimited.", ge=0
    )
    per_peer_down_kib: int = _f(
        0, "Download limit for each peer connection in KiB/s; 0 = unlimited.", ge=0
    )
    per_peer_up_kib: int = _f(
        0, "Upload limit for each peer connection in KiB/s; 0 = unlimited.", ge=0
    )
    alt_enabled: bool = _f(False, "Use the alternative limits now (manual switch).")
    alt_down_kib: int = _f(1024, "Alternative download limit in KiB/s; 0 = unlimited.", ge=0)
    alt_up_kib: int = _f(256, "Alternative upload limit in KiB/s; 0 = unlimited.", ge=0)
    alt_schedule_enabled: bool = _f(False, "Switch to the alternative limits on a schedule.")
    alt_schedule_from: ClockTime = _f(
        "08:00", "Local time the alternative limits start.", allowed="a time as HH:MM (00:00-23:59)"
    )
    alt_schedule_to: ClockTime = _f(
        "20:00",
        "Local time they end; earlier than from means overnight.",
        allowed="a time as HH:MM (00:00-23:59)",
    )
    alt_days: tuple[Weekday, ...] = _f(ALL_DAYS, "Days the schedule applies.")
    max_active_downloads: int = _f(
        5,
        "Torrents downloading at once; the others wait as queued, in queue order; 0 = unlimited.",
        ge=0,
    )
    max_active_seeds: int = _f(
        5,
        "Torrents seeding at once; the others wait as queued, in queue order; 0 = unlimited.",
        ge=0,
    )
    skip_slow_torrents: bool = _f(
        True,
        "A running torrent with under 2 KiB/s of payload for a minute (a dead swarm, a seed"
        " nobody wants) keeps running but frees its slot for the next queued torrent.",
    )
    share_ratio_limit: float = _f(
        0.0,
        "Pause a seeding torrent once its upload/download ratio reaches this; 0 = no limit.",
        ge=0,
    )
    seed_time_limit_min: int = _f(
        0, "Pause a torrent after it has seeded this many minutes; 0 = no limit.", ge=0
    )


class SecuritySettings(_Section):
    """Encryption, filtering and how misbehaving peers are dealt with."""

    encryption: Literal["disabled", "enabled", "forced"] = _f(
        "enabled",
        "MSE/PE encryption: never, preferred with plaintext fallback, or required.",
    )
    ip_filter_path: OptionalPath = _f(
        None,
        "Blocklist file (eMule DAT / PeerGuardian P2P format); empty = no filter.",
        allowed="a file path, or empty for no filter",
    )
    ip_whitelist_path: OptionalPath = _f(
        None,
        "Allow-list in the same formats; its ranges are never blocked (overrides the blocklist).",
        allowed="a file path, or empty for none",
    )
    max_connections_per_ip: int = _f(
        4,
        "Connections accepted from one IP address (limits Sybil floods, allows NATed homes).",
        ge=1,
        le=1000,
    )
    max_incoming_half_open: int = _f(
        100, "Incoming connections still in the handshake at once; more are refused.", ge=1
    )
    incoming_rate: int = _f(
        50, "New incoming connections accepted per second from all addresses together.", ge=1
    )
    incoming_rate_per_ip: int = _f(
        5, "New incoming connections accepted per second from one IP address.", ge=1
    )
    ban_after_hash_failures: int = _f(
        3,
        "Ban a peer after this many pieces failing the hash check that it alone sent "
        "(pieces shared with others count partly, smart ban proofs at once); 0 = never ban.",
        ge=0,
    )
    ban_duration: int = _f(3600, "Seconds a ban lasts; 0 = until the session ends.", ge=0)
    smart_ban: bool = _f(
        True, "Compare blocks of failed pieces with the verified data to find the liar."
    )
    reputation_half_life: float = _f(
        1800.0, "Seconds for a peer's misbehaviour score to halve (forgiveness).", gt=0
    )
    anomaly_z_threshold: float = _f(
        4.0,
        "Robust z-score above which a peer's behaviour is anomalous among the torrent's peers; "
        "0 = off.",
        ge=0,
    )
    verify_tls: bool = _f(True, "Verify certificates of HTTPS trackers and web seeds.")


class ObservabilitySettings(_Section):
    """Logging and metrics."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _f("INFO", "Minimum log level.")
    log_file: OptionalPath = _f(
        None,
        "Also log to this rotating file (a relative path goes in the platform's log folder); "
        "empty = console only.",
        allowed="a file path, or empty",
    )
    log_json: bool = _f(False, "Write log records as JSON lines.")
    enable_metrics: bool = _f(False, "Serve Prometheus metrics.")
    metrics_host: IpStr = _f(
        "127.0.0.1",
        "Address the metrics endpoint binds to (it has no authentication).",
        allowed="an IP address",
    )
    metrics_port: int = _f(9090, "Port of the metrics endpoint.", ge=1, le=65535)


class UiSettings(_Section):
    """Desktop application behaviour."""

    theme: Literal["light", "dark", "system"] = _f("system", "Colour theme.")
    close_to_tray: bool = _f(True, "Closing the window keeps the client running in the tray.")
    start_minimized: bool = _f(False, "Start hidden in the tray.")
    confirm_on_remove: bool = _f(True, "Ask before removing a torrent.")
    show_notifications: bool = _f(True, "Desktop notification when a download finishes.")
    snapshot_interval_ms: int = _f(
        1000, "How often the GUI receives state updates, in milliseconds.", ge=100, le=60_000
    )


class RemoteSettings(_Section):
    """The HTTP/WebSocket remote-control daemon (the password lives in the OS keyring)."""

    enabled: bool = _f(
        False,
        "The desktop app serves its engine over the remote API too (`ccbt daemon` always does).",
    )
    host: str = _f("127.0.0.1", "Address to bind (daemon) or connect to (client).", min_length=1)
    port: int = _f(8080, "Port of the remote interface.", ge=1, le=65535)
    username: str = _f("", "User name for the remote interface.")


class Settings(BaseModel):
    """All settings. Build it with :func:`ccbt_engine.config.load_settings`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: NetworkSettings = Field(default_factory=NetworkSettings)
    disk: DiskSettings = Field(default_factory=DiskSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    remote: RemoteSettings = Field(default_factory=RemoteSettings)

    def diff(self, other: Settings) -> dict[str, tuple[Any, Any]]:
        """``{"section.key": (value in self, value in other)}`` for every setting that differs.

        ``self`` is the old state and ``other`` the new one; a running session applies exactly
        these keys instead of restarting (see :class:`ccbt_engine.config.LiveSettings`).
        """
        changes: dict[str, tuple[Any, Any]] = {}
        for section in SECTION_NAMES:
            mine, theirs = getattr(self, section), getattr(other, section)
            for key in type(mine).model_fields:
                old, new = getattr(mine, key), getattr(theirs, key)
                if old != new:
                    changes[f"{section}.{key}"] = (old, new)
        return changes


SECTION_MODELS: dict[str, type[BaseModel]] = {
    name: typing.cast(type[BaseModel], info.annotation)
    for name, info in Settings.model_fields.items()
}
SECTION_NAMES: tuple[str, ...] = tuple(SECTION_MODELS)


def split_key(key: str, source: str = "") -> tuple[str, str]:
    """``"network.listen_port"`` -> ``("network", "listen_port")``, or ConfigError naming it.

    Secret keys split too (they have a section); callers decide what to do with them.
    """
    section, dot, name = key.partition(".")
    if dot and section in SECTION_MODELS and name in SECTION_MODELS[section].model_fields:
        return section, name
    if key in SECRET_KEYS:
        return section, name
    where = f" (from {source})" if source else ""
    raise ConfigError(f"unknown setting {key!r}{where}{_suggestion(key)}", key=key, source=source)


def field_info(key: str) -> FieldInfo:
    """The pydantic field behind a (non-secret) ``section.key``."""
    section, name = split_key(key)
    if key in SECRET_KEYS:
        raise ConfigError(f"{key} is a secret kept in the OS keyring, not a setting", key=key)
    return SECTION_MODELS[section].model_fields[name]


def _suggestion(key: str) -> str:
    import difflib

    known = [spec.key for spec in iter_fields()] + sorted(SECRET_KEYS)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close and "." not in key:
        close = [k for k in known if k.endswith("." + key)][:1]
    return f"; did you mean {close[0]!r}?" if close else "; run `ccbt config show` for all keys"


# -- describing fields ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What a settings UI or the docs need to know about one setting."""

    key: str
    section: str
    name: str
    annotation: Any
    default: Any
    description: str
    allowed: str


def iter_fields() -> Iterator[FieldSpec]:
    """Every (non-secret) setting in declaration order, with its default and allowed values."""
    for section, model in SECTION_MODELS.items():
        for name, info in model.model_fields.items():
            yield FieldSpec(
                key=f"{section}.{name}",
                section=section,
                name=name,
                annotation=info.annotation,
                default=info.get_default(call_default_factory=True),
                description=info.description or "",
                allowed=describe_allowed(info),
            )


def describe_allowed(info: FieldInfo) -> str:
    """Human text for what a field accepts, from its type and bounds (or its ``allowed`` extra)."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("allowed"), str):
        return str(extra["allowed"])
    return _describe_type(info.annotation, info.metadata)


def _describe_type(annotation: Any, metadata: list[Any]) -> str:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        return _describe_number("an integer" if annotation is int else "a number", metadata)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        if typing.get_origin(item) is Literal:
            return "a list of any of " + ", ".join(repr(v) for v in typing.get_args(item))
        return "a list"
    if annotation is str:
        quoted = "text (a quoted string in TOML)"
        return "non-empty " + quoted if any(_min_len(m) for m in metadata) else quoted
    return "a value of type " + getattr(annotation, "__name__", str(annotation))


def _min_len(meta: Any) -> bool:
    return isinstance(meta, annotated_types.MinLen) and meta.min_length > 0


def _describe_number(kind: str, metadata: list[Any]) -> str:
    low: object = None
    high: object = None
    low_open = high_open = False
    for meta in metadata:
        if isinstance(meta, annotated_types.Ge):
            low = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            low, low_open = meta.gt, True
        elif isinstance(meta, annotated_types.Le):
            high = meta.le
        elif isinstance(meta, annotated_types.Lt):
            high, high_open = meta.lt, True
    if low is not None and high is not None and not low_open and not high_open:
        return f"{kind} from {low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return f"{kind} {' and '.join(parts)}" if parts else kind
