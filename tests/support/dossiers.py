"""The dossier service in a test, in this process, and commands as its users send them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from dossiers.service import DossierService, build
from dossiers.settings import load_dossier_settings
from qms_common.config import load_site_config
from qms_common.protocol import Topics
from tests.support.mqtt import Probe, new_id


@contextlib.asynccontextmanager
async def running_dossiers(config: Path, now: Callable[[], datetime] | None = None) -> AsyncIterator[DossierService]:
    """The service, connected and online (its subscriptions made) when this yields."""
    site = load_site_config(config)
    service = await build(site, load_dossier_settings(site), now)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(10):
            await service.session.wait_connects(1)
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.store.close()


class DossierClient:
    """cmd/dossier requests in a user's reply namespace (the test broker is anonymous: the
    namespace is who the service takes the sender to be, as the production ACL makes it)."""

    def __init__(self, probe: Probe, topics: Topics, user: str = "web") -> None:
        self.probe, self.t, self.user = probe, topics, user

    def as_user(self, user: str) -> DossierClient:
        return DossierClient(self.probe, self.t, user)

    async def send(self, action: str, **fields: Any) -> dict[str, Any]:
        return await self.probe.request(self.t.cmd_dossier, {"request_id": new_id(), "action": action, **fields},
                                        reply_topic=f"{self.t.reply(self.user)}/test")

    async def create(self, code: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"code": code, "procedure": {"code": "1.000894", "name": "Đăng ký kết hôn"},
                                "received_at": "2026-11-23T08:30:00+07:00", "due_at": "2026-11-27",
                                "source": "counter", "by": "Nguyễn Thị Hoa",
                                "documents": ["Tờ khai đăng ký kết hôn", "Giấy xác nhận tình trạng hôn nhân"]}
        return await self.send("create", **{**body, **fields})

    async def event(self, code: str, eid: str, status: str, at: str, **fields: Any) -> dict[str, Any]:
        return await self.send("event", code=code, id=eid, status=status, at=at, by="Phòng Tư pháp", **fields)

    async def get(self, code: str) -> dict[str, Any]:
        return await self.send("get", code=code)
