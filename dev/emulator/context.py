"""The parts of one emulator instance, shared by its REST, page and control handlers."""

from __future__ import annotations

from dev.emulator.calls import CallLog
from dev.emulator.clock import Clock
from dev.emulator.config import EmulatorConfig
from dev.emulator.faults import FaultInjector
from dev.emulator.limits import RateLimiter
from dev.emulator.signing import SigningKeys
from dev.emulator.state import Store
from dev.emulator.webhooks import WebhookSender

__all__ = ["Context"]


class Context:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(config.clock)
        self.store = Store(self.clock)
        self.sender = WebhookSender(lambda: self.config, self.clock)
        self.faults = FaultInjector()
        self.limits = RateLimiter(self.clock)
        self.calls = CallLog()
        # Sign in with Vercel's key: made once, kept across resets, rotated on request.
        self.keys = SigningKeys()
        self.store.reset(seed=config.seed)

    def dashboard_url(self) -> str:
        """Where "vercel.com" lives in this emulator: its own pages."""
        return self.config.public_url
