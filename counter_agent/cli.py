"""qms-agent / python -m counter_agent --config agent.toml"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from counter_agent.agent import Agent
from counter_agent.config import load_agent_config
from qms_common.logs import setup_logging
from qms_common.runner import exit_on_config_error, until_signalled
from qms_common.tomlconf import ConfigError

log = logging.getLogger("counter_agent")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="qms-agent",
                                description="Tác tử quầy: bảng LED và bàn phím gọi số qua cổng nối tiếp.")
    p.add_argument("--config", required=True, type=Path, help="tệp cấu hình tác tử (agent.toml)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (mặc định INFO)")
    return p.parse_args(argv)


async def serve(config: Path) -> None:
    cfg = load_agent_config(config)
    agent = Agent(cfg)
    log.info("Tác tử quầy %s, điểm %s, broker %s, %d thiết bị trên %d cổng", cfg.id, cfg.site,
             cfg.mqtt.url(), len(cfg.devices), len(agent.buses))
    await until_signalled(agent.run(), agent.stop)
    log.info("Đã dừng tác tử quầy")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, "agent")
    try:
        asyncio.run(serve(args.config))
    except ConfigError as exc:
        return exit_on_config_error(exc)
    return 0
