"""The example site's [notify] section, and how `make run` points it at the local stand-in."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from notifier.settings import EVENT_KINDS, load_notify_settings
from notifier.standin.__main__ import parse_args
from notifier.texts import Kind
from qms_common.config import load_site_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "site.toml"


def demo() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "scripts" / "demo.py"), run_name="demo_under_test")


def test_the_example_notify_section_loads_with_every_setting() -> None:
    n = load_notify_settings(load_site_config(EXAMPLE, env={}), env={})
    assert n is not None
    assert (n.ahead, n.channels, n.phone_days) == (3, ("zalo", "sms"), 30)
    assert n.zalo is not None and n.sms is not None
    # a ZNS template for each queue message
    assert set(n.zalo.templates) >= {Kind.ISSUED, Kind.NEARS, Kind.CALLED, Kind.RATE}
    assert n.zalo.app_id and n.zalo.secret_key and n.zalo.refresh_token
    assert (n.sms.provider, n.sms.brandname) == ("esms", "UBND-HB")
    assert n.sms.api_key and n.sms.secret_key
    [hook] = n.webhooks
    assert len(hook.secret) >= 16 and set(hook.events) <= set(EVENT_KINDS)
    assert n.listen is not None
    # the real providers' addresses, as a deployer leaves them
    assert n.zalo.base_url == "https://business.openapi.zalo.me"
    assert n.sms.base_url == "https://rest.esms.vn"


def test_make_run_points_every_provider_address_at_the_stand_in(tmp_path: Path) -> None:
    d = demo()
    standin = "http://127.0.0.1:40001"
    text = d["demo_site_text"](EXAMPLE.read_text(encoding="utf-8"), web_port=18080, standin_url=standin,
                               listen_port=40002)
    (tmp_path / "var").mkdir()
    derived = tmp_path / "var" / "demo-site.toml"  # where make run writes it: relative paths hold
    derived.write_text(text, encoding="utf-8")
    site = load_site_config(derived, env={})
    n = load_notify_settings(site, env={})
    assert n is not None and n.zalo is not None and n.sms is not None
    assert d["not_at_standin"](n, standin) == []
    assert (n.zalo.base_url, n.zalo.oauth_url, n.sms.base_url) == (standin, standin, standin)
    assert [w.url for w in n.webhooks] == [standin + d["HOOK_PATH"]]
    assert n.listen == ("127.0.0.1", 40002)
    assert site.web_port == 18080
    # the rest of the site is the example's own (the broker's url is not a provider's)
    example = load_site_config(EXAMPLE, env={})
    assert site.mqtt == example.mqtt and site.storage_path.name == example.storage_path.name
    # the guard that keeps the demo's messages on this machine sees the example's real addresses
    original = load_notify_settings(example, env={})
    assert original is not None
    assert len(d["not_at_standin"](original, standin)) == 3


def test_the_stand_in_gets_the_sites_app_secret_and_receipt_address() -> None:
    d = demo()
    n = load_notify_settings(load_site_config(EXAMPLE, env={}), env={})
    assert n is not None and n.zalo is not None
    argv = d["standin_argv"]("python", 40001, n)
    assert argv[1:3] == ["-m", "notifier.standin"]
    args = parse_args(argv[3:])
    assert (args.port, args.zalo_app_id, args.zalo_secret) == (40001, n.zalo.app_id, n.zalo.secret_key)
    assert args.webhook_secret == n.webhooks[0].secret
    assert args.receipt_url == f"http://127.0.0.1:{n.listen[1] if n.listen else 0}/zalo/events"
