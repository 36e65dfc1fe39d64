"""qms-agent / python -m counter_agent --config agent.toml"""

from __future__ import annotations

import logging
from pathlib import Path

from counter_agent.agent import Agent
from counter_agent.config import load_agent_config
from qms_common.runner import service_main, settle_memory, until_signalled

log = logging.getLogger("counter_agent")


async def serve(config: Path) -> None:
    cfg = load_agent_config(config)
    agent = Agent(cfg)
    settle_memory()
    log.info("Tác tử quầy %s, điểm %s, broker %s, %d thiết bị trên %d cổng", cfg.id, cfg.site,
             cfg.mqtt.url(), len(cfg.devices), len(agent.buses))
    await until_signalled(agent.run(), agent.stop)
    log.info("Đã dừng tác tử quầy")


def main(argv: list[str] | None = None) -> int:
    return service_main("qms-agent", "Tác tử quầy: bảng LED và bàn phím gọi số qua cổng nối tiếp.",
                        "tệp cấu hình tác tử (agent.toml)", "agent", serve, argv)
