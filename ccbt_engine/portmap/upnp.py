"""UPnP IGD messages: SSDP search, device description, SOAP port-mapping actions.

Sans-I/O: :mod:`ccbt_engine.portmap.service` does the multicast and the HTTP. Everything here
reads text any host on the LAN can send, so it is bounded and strict:

* an SSDP reply is at most :data:`MAX_SSDP_REPLY` bytes and must be ``HTTP/1.1 200`` with an
  ``http://`` LOCATION on the host that answered (a LAN host cannot send us to fetch a URL
  elsewhere);
* XML is at most :data:`MAX_XML` bytes and may carry no DTD at all: without ``<!DOCTYPE`` there
  are no entities to expand, which closes billion-laughs and external-entity attacks with the
  standard library's parser (no defusedxml dependency);
* every failure raises :class:`PortMapError`.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

from ccbt_engine.portmap.errors import PortMapError

__all__ = [
    "MAX_SSDP_REPLY",
    "MAX_XML",
    "SEARCH_TARGETS",
    "SSDP_ADDRESS",
    "IgdService",
    "UPnPActionError",
    "add_port_mapping",
    "build_msearch",
    "delete_port_mapping",
    "get_external_ip",
    "parse_action_reply",
    "parse_description",
    "parse_ssdp_reply",
]

SSDP_ADDRESS = ("239.255.255.250", 1900)
MAX_SSDP_REPLY = 4096
MAX_XML = 64 * 1024
#: the WAN connection services a port mapping is made on, best first
SEARCH_TARGETS = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


class UPnPActionError(PortMapError):
    """A SOAP fault; ``code`` is the UPnP error code (725: only permanent leases) if given."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class IgdService:
    """A WAN connection service: where to POST its actions and what to call it."""

    service_type: str
    control_url: str


def build_msearch(
    target: str, host: str = "239.255.255.250", port: int = 1900, mx: int = 2
) -> bytes:
    return (
        "M-SEARCH * HTTP/1.1\r\n"
        f"HOST: {host}:{port}\r\n"
        'MAN: "ssdp:discover"\r\n'
        f"MX: {mx}\r\n"
        f"ST: {target}\r\n\r\n"
    ).encode()


def _same_host(url: str, host: str) -> bool:
    try:
        parts = urlsplit(url)
        return (
            parts.scheme == "http"
            and parts.hostname is not None
            and ipaddress.ip_address(parts.hostname) == ipaddress.ip_address(host)
        )
    except ValueError:
        return False


def parse_ssdp_reply(data: bytes, sender: str) -> tuple[str, str]:
    """``(st, location)`` of an M-SEARCH answer from ``sender`` (its IP address)."""
    if len(data) > MAX_SSDP_REPLY:
        raise PortMapError(f"SSDP reply of {len(data)} bytes exceeds {MAX_SSDP_REPLY}")
    text = data.decode("latin-1")
    lines = text.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "200":
        raise PortMapError(f"not an SSDP search reply: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    location = headers.get("location", "")
    st = headers.get("st", "")
    if not location or not st:
        raise PortMapError("SSDP reply without LOCATION or ST")
    if not _same_host(location, sender):
        raise PortMapError(f"SSDP LOCATION {location[:100]!r} is not an http URL on {sender}")
    return st, location


def _parse_xml(data: bytes) -> ET.Element:
    if len(data) > MAX_XML:
        raise PortMapError(f"XML document of {len(data)} bytes exceeds {MAX_XML}")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise PortMapError("XML with a DTD is refused (entities are never needed here)")
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        raise PortMapError(f"malformed XML: {exc}") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: ET.Element, name: str) -> str:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def parse_description(data: bytes, location: str) -> IgdService:
    """The best WAN connection service in a device description fetched from ``location``."""
    root = _parse_xml(data)
    base = location
    for elem in root:
        if _local(elem.tag) == "URLBase" and (elem.text or "").strip():
            base = (elem.text or "").strip()
    found: dict[str, str] = {}
    for elem in root.iter():
        if _local(elem.tag) != "service":
            continue
        service_type = _child_text(elem, "serviceType")
        control = _child_text(elem, "controlURL")
        if service_type in SEARCH_TARGETS and control and service_type not in found:
            found[service_type] = control
    for service_type in SEARCH_TARGETS:
        if service_type in found:
            url = urljoin(base, found[service_type])
            host = urlsplit(location).hostname or ""
            if not _same_host(url, host):
                raise PortMapError(f"control URL {url[:100]!r} is not on the device's host")
            return IgdService(service_type, url)
    raise PortMapError("the device has no WANIPConnection or WANPPPConnection service")


def _envelope(service: IgdService, action: str, args: list[tuple[str, str]]) -> tuple[bytes, str]:
    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in args)
    body = (
        '<?xml version="1.0"?>'
        f'<s:Envelope xmlns:s="{_SOAP_ENV}" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
        f'<s:Body><u:{action} xmlns:u="{escape(service.service_type)}">{inner}</u:{action}>'
        "</s:Body></s:Envelope>"
    )
    return body.encode(), f'"{service.service_type}#{action}"'


def add_port_mapping(
    service: IgdService,
    transport: str,
    external_port: int,
    internal_client: str,
    internal_port: int,
    lease: int,
    description: str,
) -> tuple[bytes, str]:
    """``(body, SOAPAction header)`` for AddPortMapping."""
    return _envelope(
        service,
        "AddPortMapping",
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", str(external_port)),
            ("NewProtocol", transport),
            ("NewInternalPort", str(internal_port)),
            ("NewInternalClient", internal_client),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", description),
            ("NewLeaseDuration", str(lease)),
        ],
    )


def delete_port_mapping(
    service: IgdService, transport: str, external_port: int
) -> tuple[bytes, str]:
    return _envelope(
        service,
        "DeletePortMapping",
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", str(external_port)),
            ("NewProtocol", transport),
        ],
    )


def get_external_ip(service: IgdService) -> tuple[bytes, str]:
    return _envelope(service, "GetExternalIPAddress", [])


def parse_action_reply(status: int, data: bytes, action: str) -> dict[str, str]:
    """The out-arguments of a SOAP reply; a fault becomes PortMapError with the UPnP code."""
    root = _parse_xml(data)
    fault_code = ""
    fault_text = ""
    for elem in root.iter():
        name = _local(elem.tag)
        if name == "errorCode":
            fault_code = (elem.text or "").strip()
        elif name == "errorDescription":
            fault_text = (elem.text or "").strip()
    if fault_code or status != 200:
        why = f"UPnP error {fault_code or '?'}" + (f" {fault_text[:100]}" if fault_text else "")
        code = int(fault_code) if fault_code.isdigit() and len(fault_code) < 6 else None
        raise UPnPActionError(f"{action} failed: HTTP {status}, {why}", code)
    for elem in root.iter():
        if _local(elem.tag) == f"{action}Response":
            return {_local(c.tag): (c.text or "").strip()[:256] for c in elem}
    raise PortMapError(f"{action} reply has no {action}Response element")
