from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from qms_common.devbroker import Broker, start_broker
from tests.support.web import CHROMIUM_ARGS

# the `postgres` (one server per session) and `pg_dsn` (an empty database per test) fixtures
pytest_plugins = ["tests.support.postgres"]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One real Mosquitto for the session, from broker_config/test.conf, on a free port."""
    b = start_broker(workdir=tmp_path_factory.mktemp("broker"))
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, for tests that stop or restart it."""
    b = start_broker(workdir=tmp_path / "broker")
    yield b
    b.stop()


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Headless Debian Chromium (the TV's tests start their own, allowed to play sound)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()
