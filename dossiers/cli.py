"""qms-dossiers / python -m dossiers --config site.toml"""

from __future__ import annotations

import logging
from pathlib import Path

from dossiers.service import build
from dossiers.settings import load_dossier_settings
from qms_common.config import load_site_config
from qms_common.runner import service_main, until_signalled

log = logging.getLogger("dossiers")


async def serve(config: Path) -> None:
    site = load_site_config(config)
    settings = load_dossier_settings(site)
    try:
        service = await build(site, settings)
    except Exception as exc:
        raise SystemExit(f"Không khởi động được dịch vụ hồ sơ: {exc}") from None
    log.info("Dịch vụ hồ sơ điểm %s: cơ sở dữ liệu %s", site.id, settings.database)
    try:
        await until_signalled(service.run(), service.close)
    finally:
        await service.close()
        await service.store.close()
        log.info("Đã dừng dịch vụ hồ sơ")


def main(argv: list[str] | None = None) -> int:
    return service_main("qms-dossiers", "Dịch vụ hồ sơ (một cửa): tiếp nhận, tiến độ và kết quả hồ sơ, "
                        "người ghi duy nhất trạng thái hồ sơ.", "tệp cấu hình điểm (site.toml)", "dossiers",
                        serve, argv)
