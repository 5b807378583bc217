"""The long-lived objects a function needs, built once per process on first use.

Warm invocations reuse them (connection pools, parsed spec); nothing is built at import
time, so a cold start pays only for imports and a misconfiguration surfaces as a clear
error on the first request instead of a crash while loading the module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lib.crypto import Keyring
from lib.kv.client import get_kv
from lib.kv.store import Store
from lib.log import set_level
from lib.provisioning.reconcile import Provisioner
from lib.provisioning.spec import Spec, load_spec
from lib.settings import Settings, get_settings

__all__ = ["Services", "get_services", "open_store", "reset_services"]


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    spec: Spec
    provisioner: Provisioner


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """Settings, store, spec and provisioner. Raises `SettingsError` / `SpecError`."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                settings = get_settings()
                set_level(settings.log_level)
                store = open_store(settings)
                spec = load_spec(settings.spec_path)
                _services = Services(
                    settings=settings,
                    store=store,
                    spec=spec,
                    provisioner=Provisioner(
                        store,
                        spec,
                        api_url=settings.vercel_api_url,
                        timeout_s=settings.vercel_timeout_s,
                    ),
                )
    return _services


def open_store(settings: Settings) -> Store:
    """The store for this deployment: the shared KV client and the configured keys."""
    keyring = Keyring(settings.encryption_key, settings.old_encryption_keys)
    kv = get_kv(settings.kv.url, settings.kv.token, timeout_s=settings.kv_timeout_s)
    return Store(kv, keyring, settings.key_prefix)


def reset_services() -> None:
    """Forget everything built (tests and the dev server change the environment)."""
    global _services
    from lib.kv.client import reset_kv
    from lib.settings import reset_settings

    with _lock:
        _services = None
    reset_settings()
    reset_kv()
