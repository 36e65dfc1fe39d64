"""Every log line carries a stable code (qms_common.codes, qms_common.logs)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest

from qms_common.codes import BY_CODE, CODES, DISK_FULL, derived_code, log_code
from qms_common.devbroker import Broker
from qms_common.logs import CodedFormatter, syslog_priority
from qms_common.protocol import Topics
from tests.support.core import CoreProcess
from tests.support.mqtt import Probe
from tests.support.site import write_site

EXPLICIT = re.compile(r"^QMS-[A-Z]+-[IWE]\d{3}$")
DERIVED = re.compile(r"^QMS-[A-Z]+-[0-9A-F]{6}$")

# One process logs three lines through the real set-up and prints nothing else on stderr.
CHILD = r"""
import logging, sys
from qms_common.logs import setup_logging
from qms_common.codes import log_code, CLOCK_FORWARD
setup_logging("INFO", "core")
log = logging.getLogger("queue_core.service")
log.info("Đã nạp ngày làm việc %s: %d vé", sys.argv[1], int(sys.argv[2]))
log.warning("Từ chối yêu cầu trên %s", "x")
log_code(log, CLOCK_FORWARD, jump_s=300)
"""


def journal_stream(path: Path) -> str:
    """JOURNAL_STREAM as systemd sets it for a process whose stderr is this file."""
    path.touch()
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}"


def run_child(*args: str, journal: str | None = None) -> list[str]:
    """The child's stderr lines. journal: "own" its stderr is the journal stream; "inherited" the
    variable names another stream (a parent's); None no variable."""
    with tempfile.TemporaryDirectory() as tmp:
        err = Path(tmp) / "stderr"
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal == "own":
            env["JOURNAL_STREAM"] = journal_stream(err)
        elif journal == "inherited":
            env["JOURNAL_STREAM"] = journal_stream(Path(tmp) / "parent")
        with err.open("ab") as stderr:
            out = subprocess.run([sys.executable, "-c", CHILD, *args], stderr=stderr, timeout=60,
                                 env={**env, "LC_ALL": "C"})
        text = err.read_text(encoding="utf-8")
    assert out.returncode == 0, text
    return text.strip().splitlines()


def code_in(line: str) -> str:
    m = re.search(r" (QMS-[A-Z]+-[0-9A-Z]+) ", line)
    assert m, line
    return m.group(1)


def test_same_template_same_code_in_two_processes_whatever_the_values() -> None:
    first = run_child("2026-11-02", "5")
    second = run_child("2026-11-03", "900")
    assert len(first) == len(second) == 3
    assert [code_in(a) for a in first] == [code_in(b) for b in second]
    assert first[0] != second[0]  # the values differ, the code does not
    loaded, refused, jumped = (code_in(line) for line in first)
    assert DERIVED.match(loaded) and DERIVED.match(refused) and loaded != refused
    assert loaded.startswith("QMS-CORE-")
    assert jumped == "QMS-CORE-W121"  # the explicit code wins over the derived one


def test_vietnamese_lines_stay_nfc_utf8_under_a_c_locale() -> None:
    lines = run_child("2026-11-02", "5")
    assert "Đã nạp ngày làm việc 2026-11-02: 5 vé" in lines[0]
    assert "Đồng hồ hệ thống nhảy tới 300 giây" in lines[2]
    assert all(unicodedata.is_normalized("NFC", line) for line in lines)


def test_under_journald_no_timestamp_and_the_syslog_priority_first() -> None:
    lines = run_child("2026-11-02", "5", journal="own")
    assert lines[0].startswith("<6>core INFO QMS-CORE-")
    assert lines[1].startswith("<4>core WARNING QMS-CORE-")
    assert lines[2].startswith("<4>core WARNING QMS-CORE-W121 queue_core.service: ")
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} core INFO QMS-CORE-")
    assert stamped.match(run_child("2026-11-02", "5")[0])
    # a process started from a unit but writing to its own file keeps its timestamps
    assert stamped.match(run_child("2026-11-02", "5", journal="inherited")[0])


def test_derived_codes_depend_on_logger_and_template_only() -> None:
    a = derived_code("queue_core.link", "Không phát được trạng thái")
    assert a == derived_code("queue_core.link", "Không phát được trạng thái")
    assert a != derived_code("queue_core.link", "Không phát được trạng thái sau khi kết nối")
    assert a != derived_code("queue_core.service", "Không phát được trạng thái")
    # a decomposed spelling of the same words is the same line
    assert a == derived_code("queue_core.link", unicodedata.normalize("NFD", "Không phát được trạng thái"))
    assert derived_code("aiohttp.access", "x").startswith("QMS-LIB-")
    assert derived_code("display_server.app", "x").startswith("QMS-WEB-")


def test_traceback_lines_carry_the_code_and_priority() -> None:
    fmt = CodedFormatter("web", journal=True)
    try:
        raise ValueError("hỏng")
    except ValueError:
        record = logging.LogRecord("display_server.app", logging.ERROR, __file__, 1, "Tác vụ nền %s dừng",
                                   ("x",), sys.exc_info())
    lines = fmt.format(record).splitlines()
    code = derived_code("display_server.app", "Tác vụ nền %s dừng")
    assert lines[0] == f"<3>web ERROR {code} display_server.app: Tác vụ nền x dừng"
    assert len(lines) > 2 and all(line.startswith(f"<3>{code} | ") for line in lines[1:])


def test_explicit_code_via_extra_wins() -> None:
    fmt = CodedFormatter()
    record = logging.LogRecord("queue_core.store", logging.ERROR, __file__, 1, "ổ đĩa %s", ("a",), None)
    record.code = "QMS-DB-E301"
    assert " QMS-DB-E301 queue_core.store: ổ đĩa a" in fmt.format(record)


def test_explicit_codes_are_unique_well_formed_and_vietnamese(caplog: pytest.LogCaptureFixture) -> None:
    assert len(BY_CODE) == len(CODES)
    for c in CODES:
        assert EXPLICIT.match(c.code), c.code
        assert c.code.split("-")[2][0] == {logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E"}[c.level]
        for text in (c.template, c.meaning, c.action):
            assert unicodedata.is_normalized("NFC", text) and text.strip()
    log = logging.getLogger("queue_core.health")
    with caplog.at_level(logging.INFO):
        text = log_code(log, DISK_FULL, free_mib=12.4, free_pct=0.3, path="/var/lib/qms 100%")
    assert caplog.records[-1].code == "QMS-CORE-E112" and caplog.records[-1].getMessage() == text
    assert "còn 12 MiB (0.3%) tại /var/lib/qms 100%" in text


def test_priorities() -> None:
    assert [syslog_priority(lv) for lv in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]


def test_operations_doc_lists_every_code() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    mine = doc.split("<!-- other sections below -->")[0]
    for c in CODES:
        assert f"| `{c.code}` |" in mine, c.code


def test_a_decomposed_value_is_logged_composed() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Hoa")
    record = logging.LogRecord("display_server.pages.console", logging.INFO, __file__, 1, "Cán bộ %s mở quầy",
                               (nfd,), None)
    line = CodedFormatter().format(record)
    assert "Cán bộ Nguyễn Thị Hoa mở quầy" in line and unicodedata.is_normalized("NFC", line)
    assert line.encode("utf-8").decode("utf-8") == line


def test_library_lines_keep_one_code_per_logger_and_level() -> None:
    fmt = CodedFormatter()

    def code(msg: str, level: int = logging.ERROR) -> str:
        return code_in(fmt.format(logging.LogRecord("asyncio", level, __file__, 1, msg, None, None)))

    assert code("Task exception was never retrieved\nfuture: <Task 0x7f01>") == code("Task exception: <Task 0x7f02>")
    assert code("x", logging.WARNING) != code("x")
    assert code("x").startswith("QMS-LIB-")


JOURNAL_LINE = re.compile(r"^<[2-7]>(core (DEBUG|INFO|WARNING|ERROR|CRITICAL) QMS-[A-Z]+-(\w{4}|[0-9A-F]{6}) [\w.]+: "
                          r"|QMS-[A-Z]+-(\w{4}|[0-9A-F]{6}) \| )")


async def test_every_line_of_a_real_core_under_journald(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    log = tmp_path / "core.log"
    core = CoreProcess(path, log, env={"JOURNAL_STREAM": journal_stream(log), "LC_ALL": "C"}).start()
    try:
        async with Probe(broker.url) as probe:
            await probe.subscribe(Topics(site_id).status_core)
            await probe.wait_for(lambda m: m.text == "online", timeout=20)
    finally:
        assert core.stop() == 0
    lines = core.log().splitlines()
    assert len(lines) >= 3  # loaded, connected, stopped
    assert all(JOURNAL_LINE.match(line) for line in lines), [x for x in lines if not JOURNAL_LINE.match(x)]
    assert any(" QMS-MQTT-I202 qms_common.mqtt: queue_core: đã kết nối broker" in line for line in lines)
