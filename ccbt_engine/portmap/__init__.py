"""Port mapping: ask the home router to forward the listen port (NAT-PMP and UPnP IGD).

Sans-I/O message cores (:mod:`.natpmp`, :mod:`.upnp`), the default-gateway lookup
(:mod:`.gateway`) and the asyncio service the session starts and stops (:mod:`.service`).
"""

from ccbt_engine.portmap.errors import PortMapError
from ccbt_engine.portmap.service import MappingStatus, PortMapOptions, PortMapService

__all__ = ["MappingStatus", "PortMapError", "PortMapOptions", "PortMapService"]
