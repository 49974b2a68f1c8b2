"""Secrets (remote and proxy passwords) live in the OS keyring, never in a config file.

``keyring`` picks the platform store (Windows Credential Locker, macOS Keychain, Secret Service /
KWallet on Linux). On a headless box it may find none; then we fail loudly instead of falling back
to a plaintext file, which is exactly the leak the keyring is there to prevent. For such boxes (a
seedbox daemon in a container) an environment variable ``CCBT_REMOTE_PASSWORD`` is honoured when
reading, because the operator put it there on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType

from ccbt_engine.config.errors import ConfigError
from ccbt_engine.config.model import SECRET_KEYS

__all__ = ["KEYRING_SERVICE", "delete_secret", "get_secret", "secret_env_var", "set_secret"]

#: The keyring "service" all ccbt secrets are filed under; the key is the keyring user name.
KEYRING_SERVICE = "ccbt"


def secret_env_var(key: str) -> str:
    """``"remote.password"`` -> ``"CCBT_REMOTE_PASSWORD"``."""
    return "CCBT_" + key.replace(".", "_").upper()


def get_secret(key: str, *, env: Mapping[str, str] | None = None) -> str | None:
    """The secret for ``key``: its environment variable if set, else the keyring, else None."""
    _check_key(key)
    environ = os.environ if env is None else env
    from_env = environ.get(secret_env_var(key))
    if from_env:
        return from_env
    keyring = _keyring("read", key)
    try:
        value = keyring.get_password(KEYRING_SERVICE, key)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(f"cannot read {key} from the OS keyring: {exc}", key=key) from exc
    return value if isinstance(value, str) else None


def set_secret(key: str, value: str) -> None:
    """Store ``value`` for ``key`` in the OS keyring; ConfigError if there is no usable keyring."""
    _check_key(key)
    if not value:
        raise ConfigError(f"{key} cannot be empty; use `ccbt config reset {key}` to remove it")
    keyring = _keyring("store", key)
    try:
        keyring.set_password(KEYRING_SERVICE, key, value)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(f"cannot store {key} in the OS keyring: {exc}", key=key) from exc


def delete_secret(key: str) -> bool:
    """Remove ``key`` from the keyring; False if it was not there."""
    _check_key(key)
    keyring = _keyring("remove", key)
    try:
        keyring.delete_password(KEYRING_SERVICE, key)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise ConfigError(f"cannot remove {key} from the OS keyring: {exc}", key=key) from exc
    return True


def _check_key(key: str) -> None:
    if key not in SECRET_KEYS:
        raise ConfigError(
            f"{key!r} is not a secret; secrets are " + ", ".join(sorted(SECRET_KEYS)), key=key
        )


def _keyring(verb: str, key: str) -> ModuleType:
    """The keyring module, or ConfigError explaining why there is no usable backend."""
    try:
        import keyring
        import keyring.errors
        from keyring.backends import fail, null
    except ImportError as exc:
        raise ConfigError(
            f"cannot {verb} {key}: the 'keyring' package is not installed; "
            "secrets are never written to the config file",
            key=key,
        ) from exc
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring | null.Keyring):
        raise ConfigError(
            f"cannot {verb} {key}: no OS keyring is available (install and unlock GNOME Keyring, "
            "KWallet or another Secret Service provider, or set the "
            f"{secret_env_var(key)} environment variable to provide it); "
            "secrets are never written to the config file",
            key=key,
        )
    return keyring
