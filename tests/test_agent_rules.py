"""The agent's pure layer: what a key asks for, what a panel shows, and its configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from counter_agent.config import load_agent_config
from counter_agent.keys import KeyCommand, NoSuchField, command_for
from counter_agent.panel import CounterView, Display, error_text, steady_text
from qms_common.protocol import Action, Topics
from qms_common.tomlconf import ConfigError

FIELDS = ["dat-dai", "ho-tich", "chung-thuc"]


@pytest.mark.parametrize(("key", "status", "expected"), [
    ("N", "closed", KeyCommand(Action.CALL_NEXT)),
    ("R", "serving", KeyCommand(Action.RECALL)),
    ("S", "serving", KeyCommand(Action.SKIP)),
    ("F", "serving", KeyCommand(Action.FINISH)),
    ("P", "serving", KeyCommand(Action.PAUSE)),
    ("P", "open", KeyCommand(Action.PAUSE)),
    ("P", None, KeyCommand(Action.PAUSE)),
    ("P", "paused", KeyCommand(Action.RESUME)),
    ("T1", "serving", KeyCommand(Action.TRANSFER, to_field="dat-dai")),
    ("T3", "serving", KeyCommand(Action.TRANSFER, to_field="chung-thuc")),
    ("T4", "serving", NoSuchField(4)),
    ("T0", "serving", NoSuchField(0)),
    ("1", "open", KeyCommand(score=1)),
    ("5", "open", KeyCommand(score=5)),
    ("6", "open", None), ("0", "open", None), ("X", "open", None), ("", "open", None),
    ("T", "open", None), ("T12", "open", None), ("TA", "open", None), ("n", "open", None),
])
def test_key_commands(key: str, status: str | None, expected: Any) -> None:
    assert command_for(key, status=status, fields=FIELDS) == expected


def test_key_payloads() -> None:
    t = Topics("s")
    cmd = KeyCommand(Action.TRANSFER, to_field="ho-tich")
    assert cmd.topic(t, "3") == "qms/s/cmd/counter/3"
    assert cmd.payload("r1", "3") == {"request_id": "r1", "action": "transfer", "to_field": "ho-tich"}
    assert KeyCommand(Action.CALL_NEXT).payload("r2", "3") == {"request_id": "r2", "action": "call_next"}
    rating = KeyCommand(score=3)
    assert rating.topic(t, "3") == "qms/s/cmd/rating"
    assert rating.payload("r3", "3") == {"request_id": "r3", "score": 3, "counter": "3"}


def ticket(number: str, calls: int = 1, status: str = "serving") -> dict[str, Any]:
    return {"id": f"d-{number}", "number": number, "status": status, "calls": calls}


def state(status: str, t: dict[str, Any] | None = None, seq: int = 1) -> dict[str, Any]:
    return {"counter": "1", "status": status, "ticket": t, "seq": seq}


@pytest.mark.parametrize(("st", "text"), [
    (None, ""),
    (state("closed"), ""),
    (state("open"), "----"),
    (state("serving", ticket("1005")), "1005"),
    (state("serving", ticket("A005")), "A005"),
    (state("paused", ticket("1005")), "PAUS"),
    (state("open", ticket("1005", status="done")), "----"),
])
def test_steady_text(st: dict[str, Any] | None, text: str) -> None:
    assert steady_text(st) == text


def test_error_texts() -> None:
    assert error_text("invalid_state") == "E-01"
    assert error_text("counter_closed") == "E-02"
    assert error_text("queue_empty") == "----"
    assert error_text("something new") == "E-09"
    assert error_text(None) == "E-09"


def test_view_blinks_once_per_call_wherever_it_comes_from() -> None:
    v = CounterView("1")
    v.apply_state(state("serving", ticket("1001"), seq=5), retained=True)
    assert v.display(online=True, now=0) == Display("1001", 0, blinks=False)  # what was there at start: no blink
    v.apply_state(state("serving", ticket("1002"), seq=6), retained=False)
    assert v.display(online=True, now=0) == Display("1002", 1)  # a call from the web console
    v.apply_state(state("serving", ticket("1002"), seq=7), retained=False)
    assert v.display(online=True, now=0).flash == 1              # the same call: no new blink
    v.apply_state(state("serving", ticket("1002", calls=2), seq=8), retained=False)
    assert v.display(online=True, now=0).flash == 2              # a recall blinks again
    # the reply comes before the state: blink now, and not again when the state follows
    v.apply_call(ticket("1003"))
    assert v.display(online=True, now=0) == Display("1003", 3)
    v.apply_state(state("serving", ticket("1003"), seq=9), retained=False)
    assert v.display(online=True, now=0) == Display("1003", 3)
    # the state came first: the reply changes nothing
    v.apply_state(state("serving", ticket("1004"), seq=10), retained=False)
    v.apply_call(ticket("1004"))
    assert v.display(online=True, now=0) == Display("1004", 4)


def test_view_drops_old_live_state_but_takes_retained() -> None:
    v = CounterView("1")
    assert v.apply_state(state("open", seq=10), retained=False)
    assert not v.apply_state(state("serving", ticket("1001"), seq=9), retained=False)
    assert v.display(online=True, now=0).text == "----"
    assert v.apply_state(state("closed", seq=3), retained=True)  # a broker that lost its memory
    assert v.display(online=True, now=0).text == ""
    v.forget_seq()
    assert v.apply_state(state("open", seq=1), retained=False)   # a core restored from a backup


def test_view_provisional_call_gives_way_to_newer_state() -> None:
    v = CounterView("1")
    v.apply_state(state("open", seq=4), retained=True)
    v.apply_call(ticket("1001"))
    assert v.display(online=True, now=0).text == "1001"
    v.apply_state(state("paused", ticket("1001"), seq=5), retained=False)
    assert v.display(online=True, now=0).text == "PAUS"


def test_a_blink_belongs_to_its_text() -> None:
    """docs/hardware.md: `----` is an open counter with no ticket, and blinks only right after N
    when nobody is waiting. A call's blink that never reached the panel must not make it blink."""
    v = CounterView("1")
    v.apply_state(state("open", seq=1), retained=True)
    v.apply_state(state("serving", ticket("1001"), seq=2), retained=False)   # a call: it blinks
    assert v.display(online=True, now=0) == Display("1001", 1, blinks=True)
    # finished before the panel showed the call (a quick finish, a panel that was away)
    v.apply_state(state("open", seq=3), retained=False)
    assert v.display(online=True, now=0) == Display("----", 1, blinks=False)
    v.show_notice(error_text("queue_empty"), until=5.0)                      # N, and nobody waiting
    assert v.display(online=True, now=1.0) == Display("----", 2, blinks=True)
    # a key refused while offline blinks OFF; back online, the number does not blink for it
    v.apply_state(state("serving", ticket("1002"), seq=4), retained=False)
    v.refuse()
    assert v.display(online=False, now=6.0) == Display("OFF", 4, blinks=True)
    assert v.display(online=True, now=6.0) == Display("1002", 4, blinks=False)


def test_view_notice_and_offline() -> None:
    v = CounterView("1")
    v.apply_state(state("serving", ticket("1001"), seq=1), retained=True)
    v.show_notice("E-01", until=10.0)
    assert v.display(online=True, now=5.0) == Display("E-01", 1)
    assert v.display(online=True, now=10.0) == Display("1001", 1, blinks=False)  # over: the state again
    v.show_notice("E-01", until=20.0)
    v.apply_state(state("open", seq=2), retained=False)            # the counter moved on
    assert v.display(online=True, now=11.0) == Display("----", 2, blinks=False)  # E-01's blink is not its
    assert v.display(online=False, now=11.0) == Display("OFF", 2, blinks=False)
    v.refuse()
    assert v.display(online=False, now=11.0) == Display("OFF", 3)  # a refused key blinks OFF
    v.unknown = True
    assert v.display(online=True, now=30.0).text == "E-04"


# ---------------------------------------------------------------- configuration

GOOD = """
[agent]
id = "quay-1-3"

[mqtt]
url = "mqtt://127.0.0.1:1883"
site = "demo"

[[counters]]
id = "1"
port = "/dev/ttyUSB0"
driver = "qms-serial"
address = 1

[[counters]]
id = "2"
port = "/dev/ttyUSB0"
driver = "qms-serial"
address = 2

[[counters]]
id = "1"
port = "tty-wall"
driver = "modbus-led"
address = 1
digits = 6
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_config_reads_a_good_file(tmp_path: Path) -> None:
    cfg = load_agent_config(write(tmp_path, GOOD), env={})
    assert (cfg.id, cfg.site, cfg.mqtt.port) == ("quay-1-3", "demo", 1883)
    assert cfg.counters == ("1", "2")
    assert [(d.counter, d.address, d.baudrate, d.digits) for d in cfg.devices] == [
        ("1", 1, 9600, None), ("2", 2, 9600, None), ("1", 1, 9600, 6)]
    assert cfg.devices[2].port == str(tmp_path / "tty-wall")  # relative to the file
    assert list(cfg.ports()) == ["/dev/ttyUSB0", str(tmp_path / "tty-wall")]
    assert cfg.serial.ack_timeout_s == 0.5 and cfg.notice_s == 3.0


def test_config_env_overrides_the_broker(tmp_path: Path) -> None:
    cfg = load_agent_config(write(tmp_path, GOOD), env={"QMS_MQTT_URL": "mqtt://u:p@broker:1999"})
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username) == ("broker", 1999, "u")


def test_config_keeps_urls_as_written(tmp_path: Path) -> None:
    cfg = load_agent_config(write(tmp_path, GOOD.replace("/dev/ttyUSB0", "socket://10.0.0.5:4001")), env={})
    assert cfg.devices[0].port == "socket://10.0.0.5:4001"


@pytest.mark.parametrize(("change", "key", "words"), [
    (('id = "quay-1-3"', 'id = "Quầy 1"'), "agent.id", "không hợp lệ"),
    (('site = "demo"\n', ""), "mqtt.site", "thiếu"),
    (('url = "mqtt://127.0.0.1:1883"', 'url = "http://x"'), "mqtt.url", "broker"),
    (('driver = "modbus-led"', 'driver = "modbus"'), "counters[3].driver", "qms-serial"),
    (("address = 2", "address = 255"), "counters[2].address", "1–254"),
    (("address = 2", "address = 1"), "counters[2].address", "đã dùng"),
    (("digits = 6", "digits = 6\nbaudrate = 9601"), "counters[3].baudrate", "không hỗ trợ"),
    (('port = "/dev/ttyUSB0"\ndriver = "qms-serial"\naddress = 2',
      'port = "/dev/ttyUSB0"\ndriver = "qms-serial"\naddress = 2\nbaudrate = 19200'), "counters[2].baudrate", "9600"),
    (('port = "tty-wall"', 'port = "/dev/ttyUSB0"'), "counters[3].driver", "qms-serial"),
    (("address = 2", "address = 2\ndigits = 4"), "counters[2].digits", "không được hỗ trợ"),
    (("[agent]", "[agnet]\nid = \"x\"\n[agent]"), "agnet", "không được hỗ trợ"),
    (("[[counters]]", "[[counter]]"), "counter", "không được hỗ trợ"),
])
def test_config_errors_name_file_key_and_fix(tmp_path: Path, change: tuple[str, str], key: str, words: str) -> None:
    text = GOOD.replace(change[0], change[1], 1)
    assert text != GOOD
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, text), env={})
    assert err.value.key == key, str(err.value)
    assert words in str(err.value)
    assert str(tmp_path / "agent.toml") in str(err.value)


def test_config_keeps_symbolic_links(tmp_path: Path) -> None:
    (tmp_path / "by-id").mkdir()
    (tmp_path / "by-id" / "usb-FTDI-if00").symlink_to("/dev/null")
    cfg = load_agent_config(write(tmp_path, GOOD.replace("/dev/ttyUSB0", "by-id/usb-FTDI-if00")), env={})
    assert cfg.devices[0].port == str(tmp_path / "by-id" / "usb-FTDI-if00")


@pytest.mark.parametrize("name", ["agent.toml", "agent-demo.toml"])
def test_example_configs_load(name: str) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    cfg = load_agent_config(examples / name, env={})
    assert cfg.site == "demo"
    if name == "agent-demo.toml":  # a panel and keypad for every counter of the demo site
        assert set(cfg.counters) == {"1", "2", "3", "4", "5", "6"}
        assert all(d.driver == "qms-serial" for d in cfg.devices if d.counter != "1")
