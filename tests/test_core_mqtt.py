"""The queue core over a real Mosquitto: every action, replies, events, retained state, idempotency
and bad input."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id, response_topic
from tests.support.site import write_site


@dataclass
class Site:
    core: InProcessCore
    probe: Probe
    topics: Topics
    broker: Broker

    async def ticket(self, field: str, **kw: Any) -> dict[str, Any]:
        return await self.probe.request(self.topics.cmd_ticket, {"request_id": new_id(), "field": field, **kw})

    async def counter(self, counter: str, action: str, **kw: Any) -> dict[str, Any]:
        return await self.probe.request(self.topics.cmd_counter(counter),
                                        {"request_id": new_id(), "action": action, **kw})

    async def rating(self, **kw: Any) -> dict[str, Any]:
        return await self.probe.request(self.topics.cmd_rating, {"request_id": new_id(), **kw})

    async def quiet_marker(self) -> None:
        """A request that changes nothing; its reply comes after anything published before it,
        so a test can then check what did (not) arrive without sleeping."""
        reply = await self.counter("no-such-counter", "resume")
        assert reply["error"]["code"] == "unknown_counter"


@pytest.fixture
async def site(broker: Broker, tmp_path: Path) -> AsyncIterator[Site]:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    async with running_core(path) as core, Probe(broker.url) as probe:
        await probe.subscribe(topics.state_all, topics.event_all, topics.status_all)
        # "online" comes after the whole retained state
        await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online")
        yield Site(core, probe, topics, broker)


async def test_presence_and_retained_state_on_connect(site: Site) -> None:
    t = site.topics
    status = await site.probe.wait_for(lambda m: m.topic == t.status_core)
    assert status.text == "online" and status.retain
    site_state = await site.probe.wait_topic(t.state_site)
    assert site_state["protocol"] == 1 and site_state["name"] == "Bộ phận Một cửa thử nghiệm"
    assert [f["id"] for f in site_state["fields"]] == ["dat-dai", "ho-tich", "chung-thuc"]
    q = await site.probe.wait_topic(t.state_queue("dat-dai"))
    assert q["waiting"] == 0 and q["name"] == "Đất đai"
    c = await site.probe.wait_topic(t.state_counter("2"))
    assert c["status"] == "closed" and c["fields"] == ["dat-dai", "ho-tich"]


async def test_ticket_reply_event_and_queue_state(site: Site) -> None:
    t = site.topics
    mark = site.probe.mark()
    reply = await site.ticket("dat-dai", priority=True, source="kiosk-1")
    assert reply["ok"] is True and reply["counter"] is None
    ticket = reply["ticket"]
    assert ticket["number"] == "1001" and ticket["status"] == "waiting" and ticket["priority"] is True
    assert reply["ahead"] == 0 and reply["est_wait_s"] == 0
    assert ticket["issued_at"].endswith("+07:00")
    event = await site.probe.wait_topic(t.event("issued"), start=mark)
    assert event["ticket"]["id"] == ticket["id"] and event["kind"] == "issued"
    q = await site.probe.wait_topic(t.state_queue("dat-dai"), lambda q: q["waiting"] == 1, start=mark)
    assert q["priority_waiting"] == 1 and q["next"] == ["1001"]
    assert q["seq"] > event["seq"]


async def test_every_counter_action_over_mqtt(site: Site) -> None:
    t = site.topics
    for _ in range(3):
        await site.ticket("dat-dai")
    reply = await site.counter("1", "open", officer="Nguyễn Thị Hoa")
    assert reply["ok"] and reply["counter"]["status"] == "open" and reply["counter"]["officer"] == "Nguyễn Thị Hoa"

    mark = site.probe.mark()
    reply = await site.counter("1", "call_next")
    assert reply["ticket"]["number"] == "1001" and reply["counter"]["status"] == "serving"
    called = await site.probe.wait_topic(t.event("called"), start=mark)
    assert called["counter"] == "1" and called["recall"] is False and called["ticket"]["number"] == "1001"
    state = await site.probe.wait_topic(t.state_counter("1"), lambda s: s["status"] == "serving", start=mark)
    assert state["ticket"]["number"] == "1001" and state["officer"] == "Nguyễn Thị Hoa"

    mark = site.probe.mark()
    reply = await site.counter("1", "recall")
    assert reply["ok"] and reply["ticket"]["calls"] == 2
    assert (await site.probe.wait_topic(t.event("called"), start=mark))["recall"] is True

    mark = site.probe.mark()
    assert (await site.counter("1", "skip"))["ticket"]["status"] == "no_show"
    await site.probe.wait_topic(t.event("skipped"), start=mark)

    reply = await site.counter("1", "call", ticket="1001")
    assert reply["ticket"]["number"] == "1001" and reply["ticket"]["status"] == "serving"

    mark = site.probe.mark()
    reply = await site.counter("1", "transfer", to_field="ho-tich")
    assert reply["ticket"]["status"] == "transferred" and reply["ticket"]["field"] == "ho-tich"
    await site.probe.wait_topic(t.event("transferred"), start=mark)
    await site.probe.wait_topic(t.state_queue("ho-tich"), lambda q: q["next"] == ["1001"], start=mark)

    assert (await site.counter("1", "call_next"))["ticket"]["number"] == "1002"
    assert (await site.counter("1", "pause"))["counter"]["status"] == "paused"
    assert (await site.counter("1", "resume"))["counter"]["status"] == "serving"

    mark = site.probe.mark()
    assert (await site.counter("1", "finish"))["ticket"]["status"] == "done"
    await site.probe.wait_topic(t.event("finished"), start=mark)

    reply = await site.counter("1", "dossier", dossier="H12.34-261121-0007")
    assert reply["ticket"]["dossier"] == "H12.34-261121-0007"
    mark = site.probe.mark()
    reply = await site.rating(counter="1", score=3)
    assert reply["ok"] and reply["ticket"]["rating"] == 3 and reply["ticket"]["number"] == "1002"
    rated = await site.probe.wait_topic(t.event("rated"), start=mark)
    assert rated["counter"] == "1"

    reply = await site.counter("1", "close")
    assert reply["counter"]["status"] == "closed" and reply["counter"]["officer"] is None
    reply = await site.counter("1", "recall")
    assert reply["ok"] is False and reply["error"]["code"] == "counter_closed"
    assert "đóng" in reply["error"]["message"]


async def test_transfer_to_counter_and_call_next_opens(site: Site) -> None:
    await site.ticket("dat-dai")
    await site.ticket("dat-dai")
    assert (await site.counter("1", "call_next"))["ticket"]["number"] == "1001"
    reply = await site.counter("1", "transfer", to_counter="3")
    assert reply["ticket"]["counter"] == "3"
    assert (await site.counter("2", "call_next"))["ticket"]["number"] == "1002"
    assert (await site.counter("3", "call_next"))["ticket"]["number"] == "1001"


async def test_queue_empty_and_error_shape(site: Site) -> None:
    reply = await site.counter("1", "call_next")
    assert reply == {"ok": False, "request_id": reply["request_id"],
                     "error": {"code": "queue_empty", "message": "Không còn công dân nào đang chờ."},
                     "counter": reply["counter"]}
    assert reply["counter"]["status"] == "open"  # pressing next opened the counter


async def test_range_exhausted(site: Site) -> None:
    numbers = [(await site.ticket("chung-thuc"))["ticket"]["number"] for _ in range(3)]
    assert numbers == ["C1", "C2", "C3"]
    reply = await site.ticket("chung-thuc")
    assert reply["error"]["code"] == "range_exhausted"


async def test_a_repeated_request_id_gets_the_first_reply_and_changes_nothing(site: Site) -> None:
    t = site.topics
    await site.ticket("dat-dai")
    await site.ticket("dat-dai")
    req = {"request_id": "dup-1", "action": "call_next"}
    first = await site.probe.request(t.cmd_counter("1"), req)
    await site.quiet_marker()  # the state of the first request comes after its reply
    seq = site.core.service.seq
    mark = site.probe.mark()
    again = await site.probe.request(t.cmd_counter("1"), req)
    assert again == first
    assert again["ticket"]["number"] == "1001"
    await site.quiet_marker()
    assert site.probe.since(mark, f"qms/{t.site}/state") == []
    assert site.probe.since(mark, f"qms/{t.site}/event") == []
    assert site.core.service.seq == seq
    # also a refusal is replayed, not re-decided
    refusal = await site.probe.request(t.cmd_counter("2"), {"request_id": "dup-2", "action": "recall"})
    await site.counter("2", "call_next")
    assert await site.probe.request(t.cmd_counter("2"), {"request_id": "dup-2", "action": "recall"}) == refusal


async def test_reply_to_in_the_payload_serves_mqtt311_clients(site: Site, broker: Broker) -> None:
    topic = f"{site.topics.reply('legacy')}/{new_id()}"
    async with Probe(broker.url, protocol=aiomqtt.ProtocolVersion.V311) as old:
        await old.subscribe(topic)
        await old.publish(site.topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich", "reply_to": topic})
        reply = await old.wait_topic(topic)
    assert reply["ok"] and reply["ticket"]["number"] == "2001"


async def test_the_core_answers_only_inside_a_reply_namespace(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A request whose reply topic is outside qms/{site}/reply/{user}/... is refused: not executed,
    answered nowhere (an answer there would be read as the core's presence, a counter's state...)."""
    t = site.topics
    await site.probe.subscribe("#")
    outside = [t.status_core, t.state_site, t.state_counter("1"), t.event("called"), t.cmd_counter("2"),
               t.reply("cli").removesuffix("/cli"), f"{t.root}/reply/", f"{t.root}/reply//x", f"{t.root}/reply/x//y",
               f"{t.root}/reply/Cli", f"qms/{t.site}x/reply/cli", "qms/other/reply/cli", "cli"]
    mark = site.probe.mark()
    refused = []
    for target in outside:
        rid = new_id()
        await site.probe.publish(t.cmd_counter("1"), {"request_id": rid, "action": "open"},
                                 properties=response_topic(target))
        refused.append(rid)
    for target in [*outside, 5, ["x"], ""]:
        rid = new_id()
        await site.probe.publish(t.cmd_counter("1"), {"request_id": rid, "action": "open", "reply_to": target})
        refused.append(rid)
    # unreadable, with a reply topic outside: not answered either
    await site.probe.publish(t.cmd_counter("1"), b"not json", properties=response_topic(t.status_core))
    await site.quiet_marker()
    answers = [m for m in site.probe.since(mark) if m.topic != t.cmd_counter("1")]  # not our own requests
    assert [m.topic for m in answers if any(rid.encode() in m.payload for rid in refused)] == []
    assert [m.topic for m in answers if b"bad_request" in m.payload] == []
    assert site.core.service.book.counters["1"].status == "closed"
    assert caplog.text.count("nằm ngoài") == len(refused) + 1
    # within a namespace, at any depth
    for reply_topic in (t.reply("cli"), f"{t.reply('cli')}/a/b"):
        reply = await site.probe.request(t.cmd_counter("1"), {"request_id": new_id(), "action": "open"},
                                         reply_topic=reply_topic)
        assert reply["ok"]


async def test_request_ids_are_per_sender(site: Site) -> None:
    """The sender is the owner of the reply namespace: the same request_id from another sender is
    another request, and from the same sender (any topic of its namespace) the same one."""
    t = site.topics
    rid = new_id()
    first = await site.probe.request(t.cmd_ticket, {"request_id": rid, "field": "dat-dai"},
                                     reply_topic=f"{t.reply('a')}/1")
    again = await site.probe.request(t.cmd_ticket, {"request_id": rid, "field": "dat-dai"},
                                     reply_topic=f"{t.reply('a')}/2")
    other = await site.probe.request(t.cmd_ticket, {"request_id": rid, "field": "dat-dai"},
                                     reply_topic=t.reply("b"))
    assert first == again and first["ticket"]["number"] == "1001"
    assert other["ok"] and other["ticket"]["number"] == "1002" and other["request_id"] == rid
    # in flight at once, from two senders: two tickets; from one sender twice: one
    rid = new_id()
    replies = await asyncio.gather(*(site.probe.request(t.cmd_ticket, {"request_id": rid, "field": "ho-tich"},
                                                        reply_topic=f"{t.reply(who)}/{n}")
                                     for who in ("a", "b") for n in range(2)))
    assert [r["ticket"]["number"] for r in replies] == ["2001", "2001", "2002", "2002"]


async def test_correlation_data_is_echoed(site: Site) -> None:
    corr = b"\x00\x01binary-correlation\xff"
    reply = await site.probe.request(site.topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"},
                                     correlation=corr)
    assert reply["ok"]


async def test_mosquitto_rr_works_as_a_client(site: Site, broker: Broker) -> None:
    cmd = ["mosquitto_rr", "-p", str(broker.port), "-t", site.topics.cmd_ticket, "-e", site.topics.reply("cli"),
           "-m", '{"request_id":"r1","field":"dat-dai"}', "-W", "5"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    reply = json.loads(out)
    assert reply["ok"] and reply["request_id"] == "r1" and reply["ticket"]["number"] == "1001"
    assert "Đất" not in out.decode()  # the ticket has ids, not names; but the bytes are UTF-8 JSON


BAD_INPUTS = [
    pytest.param("cmd/ticket", b"not json at all", "bad_request", id="not-json"),
    pytest.param("cmd/ticket", b"\xff\xfe\x00garbage", "bad_request", id="not-utf8"),
    pytest.param("cmd/ticket", b"[1, 2, 3]", "bad_request", id="json-array"),
    pytest.param("cmd/ticket", b'{"field": "dat-dai"}', "bad_request", id="no-request-id"),
    pytest.param("cmd/ticket", b'{"request_id": "b1"}', "bad_request", id="no-field"),
    pytest.param("cmd/ticket", b'{"request_id": "b2", "field": 7}', "bad_request", id="field-mistyped"),
    pytest.param("cmd/ticket", b'{"request_id": "b3", "field": "dat-dai", "priority": "yes"}', "bad_request",
                 id="priority-mistyped"),
    pytest.param("cmd/ticket", b'{"request_id": "b4", "field": "thue"}', "unknown_field", id="unknown-field"),
    pytest.param("cmd/counter/99", b'{"request_id": "b5", "action": "call_next"}', "unknown_counter",
                 id="unknown-counter"),
    pytest.param("cmd/counter/1", b'{"request_id": "b6", "action": "dance"}', "bad_request", id="unknown-action"),
    pytest.param("cmd/counter/1", b'{"request_id": "b7", "action": "call"}', "bad_request", id="call-no-ticket"),
    pytest.param("cmd/counter/1", b'{"request_id": "b8", "action": "transfer", "to_field": "ho-tich", '
                 b'"to_counter": "2"}', "bad_request", id="transfer-both"),
    pytest.param("cmd/rating", b'{"request_id": "b9", "counter": "1", "score": "5"}', "bad_request",
                 id="score-mistyped"),
    pytest.param("cmd/rating", b'{"request_id": "b10", "score": 3}', "bad_request", id="rating-no-target"),
    pytest.param("cmd/nonsense", b'{"request_id": "b11"}', "bad_request", id="unknown-topic"),
    pytest.param("cmd/ticket", b'{"request_id": "b12", "field": "dat-dai", "source": "' + b"x" * (1024 * 1024) + b'"}',
                 "bad_request", id="one-megabyte"),
    pytest.param("cmd/ticket", b"[" * 100_000, "bad_request", id="deep-nesting"),
]


@pytest.mark.parametrize(("suffix", "payload", "code"), BAD_INPUTS)
async def test_bad_input_gets_an_error_and_changes_nothing(site: Site, suffix: str, payload: bytes,
                                                           code: str) -> None:
    t = site.topics
    seq = site.core.service.seq
    tickets = len(site.core.service.book.tickets)
    mark = site.probe.mark()
    reply = await site.probe.request(f"{t.root}/{suffix}", payload, timeout=10)
    assert reply["ok"] is False and reply["error"]["code"] == code
    assert reply["error"]["message"]
    await site.quiet_marker()
    assert site.probe.since(mark, f"{t.root}/state") == []
    assert site.probe.since(mark, f"{t.root}/event") == []
    assert site.core.service.seq == seq and len(site.core.service.book.tickets) == tickets
    # and the core still works
    assert (await site.ticket("dat-dai"))["ok"]


async def test_query_a_ticket_for_its_tracking_page(site: Site) -> None:
    t = site.topics
    first = (await site.ticket("dat-dai"))["ticket"]
    second = (await site.ticket("dat-dai"))["ticket"]
    await site.quiet_marker()
    seq = site.core.service.seq
    mark = site.probe.mark()
    reply = await site.probe.request(t.cmd_query, {"request_id": new_id(), "query": "ticket", "ticket": second["id"]})
    assert reply["ok"] and reply["ticket"]["number"] == "1002" and reply["ahead"] == 1
    assert reply["est_wait_s"] == 300 and reply["counter"] is None
    await site.counter("2", "open", officer="Đỗ Văn Bình")
    await site.counter("2", "call_next")
    reply = await site.probe.request(t.cmd_query, {"request_id": new_id(), "query": "ticket", "ticket": first["id"]})
    assert reply["ticket"]["status"] == "serving" and reply["ticket"]["officer"] == "Đỗ Văn Bình"
    assert reply["counter"]["counter"] == "2" and reply["ahead"] is None
    reply = await site.probe.request(t.cmd_query, {"request_id": new_id(), "query": "ticket", "ticket": "nope"})
    assert reply["error"]["code"] == "unknown_ticket"
    # questions change nothing
    assert site.probe.since(mark, f"{t.root}/event/issued") == []
    assert site.core.service.seq > seq  # (the counter commands above did publish)


async def test_query_ticket_records_page_by_page(site: Site) -> None:
    t = site.topics
    for _ in range(5):
        await site.ticket("ho-tich")
    await site.counter("3", "open", officer="Vũ Thị Lan")
    await site.counter("3", "call_next")
    await site.counter("3", "finish")
    await site.rating(counter="3", score=2)
    pages: list[list[dict[str, Any]]] = []
    after = None
    while True:
        body = {"request_id": new_id(), "query": "tickets", "limit": 2, "after": after}
        reply = await site.probe.request(t.cmd_query, {k: v for k, v in body.items() if v is not None})
        assert reply["ok"]
        pages.append(reply["tickets"])
        after = reply["next"]
        if after is None:
            break
    numbers = [r["number"] for page in pages for r in page]
    assert numbers == ["2001", "2002", "2003", "2004", "2005"]
    first = pages[0][0]
    assert first["officer"] == "Vũ Thị Lan" and first["rating"] == 2 and first["status"] == "done"
    assert first["rated_at"] and first["day"] and "phone" not in first
    today = first["day"]
    reply = await site.probe.request(t.cmd_query, {"request_id": new_id(), "query": "tickets", "from": "2000-01-01",
                                                   "to": "2000-01-02"})
    assert reply["ok"] and reply["tickets"] == [] and reply["next"] is None
    reply = await site.probe.request(t.cmd_query, {"request_id": new_id(), "query": "tickets", "from": today})
    assert len(reply["tickets"]) == 5
    for bad in ({"query": "everything"}, {"query": "tickets", "limit": 0}, {"query": "tickets", "from": "21/11/2026"},
                {"query": "ticket"}, {"query": "tickets", "after": "abc"}):
        reply = await site.probe.request(t.cmd_query, {"request_id": new_id(), **bad})
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", bad


async def test_a_page_of_records_never_outgrows_a_broker_packet(site: Site) -> None:
    """1000 records would be ~500 KiB; the production broker refuses packets over 256 KiB, and a
    refused reply would cost the core its connection. The page comes shorter instead."""
    from qms_common.protocol import MAX_REPLY_BYTES

    t = site.topics
    for field in ("dat-dai", "ho-tich"):
        for _ in range(8):
            await asyncio.gather(*(site.ticket(field, source="kiosk-sảnh-chính-tầng-một") for _ in range(50)))
    seen: list[str] = []
    after = None
    while True:
        body = {"request_id": new_id(), "query": "tickets", "limit": 1000}
        if after:
            body["after"] = after
        mark = site.probe.mark()
        reply = await site.probe.request(t.cmd_query, body)
        raw = next(m for m in site.probe.received[mark:] if m.topic == site.probe.reply_topic)
        assert len(raw.payload) < MAX_REPLY_BYTES
        seen += [r["number"] for r in reply["tickets"]]
        after = reply["next"]
        if after is None:
            break
    assert len(seen) == 800 == len(set(seen))


async def test_the_core_ignores_dossier_commands(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """cmd/dossier is the dossier service's (dossiers/): the core, subscribed to cmd/#, neither
    answers it, nor refuses it, nor clears a retained one, nor logs it."""
    t = site.topics
    await site.probe.subscribe(t.cmd_dossier)
    answer = await site.probe.reply_topic_for(t.cmd_dossier)
    mark = site.probe.mark()
    for payload in ({"request_id": new_id(), "action": "get", "code": "HS-1"}, b"not json"):
        await site.probe.publish(t.cmd_dossier, payload, properties=response_topic(answer))
    await site.probe.publish(t.cmd_dossier, {"request_id": new_id(), "action": "get", "code": "HS-2"}, retain=True)
    await site.quiet_marker()
    got = site.probe.since(mark)
    assert [m for m in got if m.topic == answer and (b"HS-" in m.payload or b"bad_request" in m.payload)] == []
    assert [m for m in got if m.topic == t.cmd_dossier and not m.payload] == []  # not cleared
    assert "dossier" not in caplog.text
    await site.probe.publish(t.cmd_dossier, b"", retain=True)  # the test's own retained copy
