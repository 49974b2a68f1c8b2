"""Engine settings for tests: loopback only, no discovery, nothing from the user's config."""

from __future__ import annotations

from typing import Any

from ccbt_engine.config import Settings


def loopback_settings(**sections: dict[str, Any]) -> Settings:
    """Settings listening on 127.0.0.1 only, with DHT/LSD/UPnP/NAT-PMP off.

    ``sections`` override per section:
    ``loopback_settings(security={"ban_after_hash_failures": 1})``.
    """
    data: dict[str, dict[str, Any]] = {
        "network": {
            "listen_interfaces": ["127.0.0.1"],
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
        },
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings.model_validate(data)
