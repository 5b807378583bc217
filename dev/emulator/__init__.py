"""A local Vercel for the integration: REST API, OAuth, install pages, signed webhooks.

    from dev.emulator import EmulatorConfig, create_app
    from dev.serve import running

    emulator = create_app(EmulatorConfig(webhook_url="http://127.0.0.1:3000/webhook"))
    with running(emulator) as server:
        emulator.configure(public_url=server.url)
        ...

Faithful to the OpenAPI excerpts and vercel-api.md in ../shared/reference/; where Vercel's
behaviour has documented variants, `EmulatorConfig` selects which one it produces.
"""

from dev.emulator.app import Emulator, create_app
from dev.emulator.config import EmulatorConfig
from dev.emulator.faults import FaultRule
from dev.emulator.limits import BucketRule
from dev.emulator.webhooks import sign

__all__ = ["BucketRule", "Emulator", "EmulatorConfig", "FaultRule", "create_app", "sign"]
