"""The web server's Prometheus metrics, read at each scrape from what it already follows: the
core's retained state and health, the presence of every service, the notifier's statistics,
its own MQTT session and speech cache. Only the command latency is recorded as it happens
(a Histogram fed by the requester's observers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from display_server.feed.follower import StateFollower
from display_server.speech.render import Speech
from qms_common.protocol import Topics

# Round trips of a key press or a kiosk's ticket: most are a few ms, anything near the 5 s
# request timeout is a failure seen by an officer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# the notifier's messages not yet sent (notifier/outbox.py states)
OUTBOX_WAITING = ("pending", "sending")

# name -> help: every metric this module exposes (tests check the dashboard against it)
METRICS: dict[str, str] = {
    "qms_queue_waiting": "Vé đang chờ được gọi, theo lĩnh vực",
    "qms_queue_priority_waiting": "Vé ưu tiên đang chờ, theo lĩnh vực",
    "qms_queue_awaiting_checkin": "Vé từ xa giữ chỗ, chờ xác nhận tại ki-ốt, theo lĩnh vực",
    "qms_queue_served_today": "Vé đã phục vụ xong hôm nay, theo lĩnh vực",
    "qms_queue_avg_wait_seconds": "Thời gian chờ trung bình hôm nay (từ lấy số đến được gọi), theo lĩnh vực",
    "qms_queue_est_wait_seconds": "Thời gian chờ ước tính cho người lấy số bây giờ, theo lĩnh vực",
    "qms_counters": "Số quầy theo trạng thái (closed, open, serving, paused)",
    "qms_tickets_issued_today": "Vé đã phát hôm nay (mọi lĩnh vực)",
    "qms_tickets_served_today": "Vé đã phục vụ xong hôm nay (mọi lĩnh vực)",
    "qms_command_latency_seconds": "Thời gian khứ hồi lệnh của máy chủ web tới lõi (gửi đến khi có trả lời)",
    "qms_core_commit_p99_seconds": "p99 thời gian ghi đĩa của lõi (health/core)",
    "qms_core_disk_free_bytes": "Chỗ trống trên đĩa chứa cơ sở dữ liệu của lõi (health/core)",
    "qms_core_warning": "Cảnh báo đang có của lõi, theo mã (1 khi có)",
    "qms_mqtt_connected": "Máy chủ web đang kết nối broker MQTT (1) hay không (0)",
    "qms_service_up": "Hiện diện của từng dịch vụ (status/#): 1 online, 0 offline",
    "qms_notify_outbox_pending": "Tin nhắn cho công dân chưa gửi xong trong hộp thư đi của bộ gửi tin hôm nay",
    "qms_speech_cache_hits": "Lượt đọc số có sẵn đoạn âm thanh trong bộ nhớ đệm",
    "qms_speech_cache_misses": "Lượt đọc số phải chờ tạo đoạn âm thanh",
}


def command_of(topics: Topics, topic: str) -> str:
    """A request topic's command, without ids (cmd/counter/3 -> counter): few label values."""
    parts = topics.split(topic)
    return parts[1] if len(parts) >= 2 and parts[0] == "cmd" else "other"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(eq=False)  # the registry keys collectors by identity
class WebCollector(Collector):
    follower: StateFollower
    speech: Speech
    issued_today: Callable[[], int | None]

    def collect(self) -> Iterator[Any]:
        state = self.follower.state
        per_field = {name: GaugeMetricFamily(name, METRICS[name], labels=["field"]) for name in (
            "qms_queue_waiting", "qms_queue_priority_waiting", "qms_queue_awaiting_checkin",
            "qms_queue_served_today", "qms_queue_avg_wait_seconds", "qms_queue_est_wait_seconds")}
        keys = {"qms_queue_waiting": "waiting", "qms_queue_priority_waiting": "priority_waiting",
                "qms_queue_awaiting_checkin": "awaiting_checkin", "qms_queue_served_today": "served",
                "qms_queue_avg_wait_seconds": "avg_wait_s", "qms_queue_est_wait_seconds": "est_wait_s"}
        served = 0.0
        for field, queue in sorted(state.queues.items()):
            for name, key in keys.items():
                value = _num(queue.get(key))
                if value is not None:
                    per_field[name].add_metric([field], value)
            served += _num(queue.get("served")) or 0.0
        yield from per_field.values()

        counters = GaugeMetricFamily("qms_counters", METRICS["qms_counters"], labels=["status"])
        by_status: dict[str, int] = {s: 0 for s in ("closed", "open", "serving", "paused")}
        for c in state.counters.values():
            status = c.get("status")
            if isinstance(status, str) and status in by_status:
                by_status[status] += 1
        for status, n in by_status.items():
            counters.add_metric([status], n)
        yield counters

        issued = self.issued_today()
        if issued is not None:
            yield GaugeMetricFamily("qms_tickets_issued_today", METRICS["qms_tickets_issued_today"], value=issued)
        if state.queues:
            yield GaugeMetricFamily("qms_tickets_served_today", METRICS["qms_tickets_served_today"], value=served)

        health = state.core_health or {}
        commit_ms = _num(health.get("commit_ms_p99"))
        if commit_ms is not None:
            yield GaugeMetricFamily("qms_core_commit_p99_seconds", METRICS["qms_core_commit_p99_seconds"],
                                    value=commit_ms / 1000.0)
        free = _num(health.get("disk_free_bytes"))
        if free is not None:
            yield GaugeMetricFamily("qms_core_disk_free_bytes", METRICS["qms_core_disk_free_bytes"], value=free)
        warnings = GaugeMetricFamily("qms_core_warning", METRICS["qms_core_warning"], labels=["code"])
        listed = health.get("warnings")
        for w in listed if isinstance(listed, list) else []:
            if isinstance(w, dict) and isinstance(w.get("code"), str):
                warnings.add_metric([w["code"]], 1)
        yield warnings

        yield GaugeMetricFamily("qms_mqtt_connected", METRICS["qms_mqtt_connected"],
                                value=1 if self.follower.connected else 0)
        up = GaugeMetricFamily("qms_service_up", METRICS["qms_service_up"], labels=["service"])
        for service, presence in sorted(state.presence.items()):
            up.add_metric([service], 1 if presence == "online" else 0)
        yield up

        stats = state.notify_stats
        if isinstance(stats, dict) and isinstance(stats.get("channels"), dict):
            waiting = sum(n for per_state in stats["channels"].values() if isinstance(per_state, dict)
                          for s, n in per_state.items() if s in OUTBOX_WAITING and isinstance(n, int))
            yield GaugeMetricFamily("qms_notify_outbox_pending", METRICS["qms_notify_outbox_pending"], value=waiting)

        yield CounterMetricFamily("qms_speech_cache_hits", METRICS["qms_speech_cache_hits"],
                                  value=self.speech.cache_hits)
        yield CounterMetricFamily("qms_speech_cache_misses", METRICS["qms_speech_cache_misses"],
                                  value=self.speech.cache_misses)


def make_registry(follower: StateFollower, speech: Speech,
                  issued_today: Callable[[], int | None]) -> CollectorRegistry:
    """One registry per app (never prometheus_client's global one: two apps in one process, as
    in tests, would share it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WebCollector(follower, speech, issued_today))
    latency = Histogram("qms_command_latency_seconds", METRICS["qms_command_latency_seconds"],
                        ["command", "outcome"], buckets=LATENCY_BUCKETS, registry=registry)
    topics = follower.topics
    follower.requester.observers.append(
        lambda topic, seconds, outcome: latency.labels(command_of(topics, topic), outcome).observe(seconds))
    return registry
