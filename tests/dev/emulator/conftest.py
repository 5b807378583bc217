"""One emulator and one stub integration per session; each test starts from a fresh world."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dev.emulator import create_app
from dev.serve import start
from tests.dev.emulator.support import Receiver, Stack


@pytest.fixture(scope="session")
def _stack() -> Iterator[Stack]:
    receiver = Receiver()
    receiver_server = start(receiver)
    emulator = create_app()
    server = start(emulator)
    emulator.configure(
        public_url=server.url,
        redirect_uri=f"{receiver_server.url}/callback",
        webhook_url=f"{receiver_server.url}/webhook",
        time_scale=0.001,
        webhook_timeout_s=2.0,
    )
    stack = Stack(emulator, server, receiver, receiver_server, baseline=emulator.config)
    yield stack
    stack.close()
    emulator.reset()  # wakes calls parked in injected timeouts before the server stops
    server.stop()
    emulator.close()
    receiver_server.stop()


@pytest.fixture
def stack(_stack: Stack) -> Iterator[Stack]:
    _stack.restore()
    yield _stack
    _stack.close()
