"""[notify]: a full section loads; every mistake stops start-up with a Vietnamese message naming the
key; a site without [notify] runs as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.settings import EVENT_KINDS, load_notify_settings
from notifier.texts import DEFAULT_TEMPLATES, Kind
from qms_common.config import load_site_config
from qms_common.tomlconf import ConfigError

SITE = """
[site]
id = "hb"
name = "UBND phường Hòa Bình"

[mqtt]
url = "mqtt://localhost:1883"

[storage]
path = "data/hb.sqlite3"

[web]
host = "{web_host}"
port = 8080

[[fields]]
id = "dang-ky-kinh-doanh"
name = "Đăng ký doanh nghiệp và hộ kinh doanh, hợp tác xã"
first = 1001
last = 1999
prefix = "A"

[[counters]]
id = "1"
name = "Quầy tiếp nhận và trả kết quả số 12"
fields = ["dang-ky-kinh-doanh"]

{notify}
"""

FULL = """
[notify]
ahead = 4
channels = ["sms", "zalo"]
phone_days = 60
store = "notify/hb-notify.sqlite3"
public_url = "https://xephang.hoabinh.gov.vn/"
language = "vi"
user = "notify-hb"
listen = "127.0.0.1:8091"
retry_max_s = 120
give_up_s = 7200

[notify.zalo]
base_url = "http://127.0.0.1:9001"
oauth_url = "http://127.0.0.1:9002"
app_id = "1234567890"
secret_key = "zalo-secret"
refresh_token = "first-refresh"
templates = { issued = "231456", called = 231457 }
rate_per_s = 5

[notify.sms]
provider = "esms"
api_key = "esms-key"
secret_key = "esms-secret"
brandname = "UBND-HB"

[notify.templates.vi]
called = "{office}: mời số {number} đến {counter}."

[notify.templates.en]
rate = "{office}: please rate us: {link}"

[[notify.webhooks]]
url = "https://dvc.example.vn/hook"
secret = "0123456789abcdef0123"
events = ["issued", "called", "finished", "rated"]
rate_per_s = 2

[[notify.webhooks]]
url = "http://10.0.0.9:9000/qms"
secret = "another-long-secret"
"""


def write(tmp_path: Path, notify: str, *, web_host: str = "192.168.1.10") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(notify=notify, web_host=web_host), encoding="utf-8")
    return path


def load(tmp_path: Path, notify: str, *, env: dict[str, str] | None = None, web_host: str = "192.168.1.10"):
    site = load_site_config(write(tmp_path, notify, web_host=web_host), env={})
    return site, load_notify_settings(site, env=env or {})


def test_a_kind_may_have_its_own_order_of_channels(tmp_path: Path) -> None:
    _, s = load(tmp_path, '[notify]\nchannels = ["zalo", "sms"]\n' + BOTH + '[notify.kind_channels]\nrate = ["sms"]\n')
    assert s is not None
    assert s.channels_for("rate") == ("sms",) and s.channels_for("issued") == ("zalo", "sms")


def test_full_section_loads(tmp_path: Path) -> None:
    site, s = load(tmp_path, FULL)
    assert s is not None
    assert (site.notify_ahead, site.phone_days, site.notify_user) == (4, 60, "notify-hb")
    assert (s.ahead, s.phone_days, s.user, s.language) == (4, 60, "notify-hb", "vi")
    assert s.channels == ("sms", "zalo")
    assert s.store == (tmp_path / "notify" / "hb-notify.sqlite3").resolve()
    assert s.public_url == "https://xephang.hoabinh.gov.vn"
    assert s.listen == ("127.0.0.1", 8091)
    assert (s.retry_max_s, s.give_up_s) == (120.0, 7200.0)
    assert s.zalo is not None and s.zalo.base_url == "http://127.0.0.1:9001"
    assert s.zalo.oauth_url == "http://127.0.0.1:9002"
    assert (s.zalo.app_id, s.zalo.secret_key, s.zalo.refresh_token) == ("1234567890", "zalo-secret", "first-refresh")
    assert dict(s.zalo.templates) == {Kind.ISSUED: "231456", Kind.CALLED: "231457"}
    assert s.zalo.rate_per_s == 5.0
    assert s.sms is not None
    assert (s.sms.provider, s.sms.base_url, s.sms.api_key, s.sms.secret_key, s.sms.token, s.sms.brandname) == (
        "esms", "https://rest.esms.vn", "esms-key", "esms-secret", None, "UBND-HB")
    assert s.sms.rate_per_s == 10.0
    assert s.template(Kind.CALLED) == "{office}: mời số {number} đến {counter}."
    assert s.template(Kind.ISSUED) == DEFAULT_TEMPLATES["vi"][Kind.ISSUED]
    assert s.template("rate", "en") == "{office}: please rate us: {link}"
    assert s.template("rate", "fr") == DEFAULT_TEMPLATES["vi"][Kind.RATE]
    assert len(s.webhooks) == 2
    assert s.webhooks[0].events == ("issued", "called", "finished", "rated")
    assert s.webhooks[0].rate_per_s == 2.0
    assert s.webhooks[1].events == EVENT_KINDS and s.webhooks[1].url == "http://10.0.0.9:9000/qms"


def test_no_notify_section_means_no_notifier(tmp_path: Path) -> None:
    site, s = load(tmp_path, "")
    assert s is None
    assert (site.notify_ahead, site.phone_days, site.notify_user) == (3, 30, "notify")


def test_defaults(tmp_path: Path) -> None:
    notify = '[notify]\n[notify.sms]\nprovider = "speedsms"\ntoken = "t"\n[notify.zalo]\napp_id = "1"\n' \
             'secret_key = "s"\ntemplates = { issued = "1" }\n'
    site, s = load(tmp_path, notify)
    assert s is not None
    assert s.channels == ("zalo", "sms") and s.ahead == 3 and s.phone_days == 30 and s.user == "notify"
    assert s.store == site.storage_path.with_name("notify.sqlite3")
    assert s.public_url == "http://192.168.1.10:8080"
    assert s.listen is None and s.webhooks == () and s.language == "vi"
    assert s.sms is not None and s.sms.base_url == "https://api.speedsms.vn" and s.sms.token == "t"
    assert s.zalo is not None and s.zalo.refresh_token is None
    assert s.zalo.base_url == "https://business.openapi.zalo.me"


def test_webhooks_only(tmp_path: Path) -> None:
    _, s = load(tmp_path, '[notify]\nchannels = []\n[[notify.webhooks]]\nurl = "https://a.vn/h"\n'
                          'secret = "0123456789abcdef"\n')
    assert s is not None and s.channels == () and s.zalo is None and s.sms is None


def test_public_url_defaults_to_the_web_servers(tmp_path: Path) -> None:
    notify = '[notify]\nchannels = []\n'
    path = write(tmp_path, notify).read_text(encoding="utf-8").replace(
        "port = 8080", 'port = 8080\npublic_url = "https://xephang.vn/"')
    (tmp_path / "site.toml").write_text(path, encoding="utf-8")
    s = load_notify_settings(load_site_config(tmp_path / "site.toml", env={}), env={})
    assert s is not None and s.public_url == "https://xephang.vn"


def test_secrets_from_the_environment(tmp_path: Path) -> None:
    notify = '[notify]\n[notify.zalo]\napp_id = "1"\ntemplates = { rate = "9" }\n' \
             '[notify.sms]\nprovider = "esms"\napi_key = "in-file"\n'
    env = {"QMS_ZALO_SECRET_KEY": "zs", "QMS_ZALO_REFRESH_TOKEN": "zr", "QMS_SMS_SECRET_KEY": "ss",
           "QMS_SMS_API_KEY": "from-env"}
    _, s = load(tmp_path, notify, env=env)
    assert s is not None and s.zalo is not None and s.sms is not None
    assert (s.zalo.secret_key, s.zalo.refresh_token) == ("zs", "zr")
    assert (s.sms.api_key, s.sms.secret_key) == ("from-env", "ss")


ZALO = '[notify.zalo]\napp_id = "1"\nsecret_key = "s"\ntemplates = { issued = "1" }\n'
SMS = '[notify.sms]\nprovider = "esms"\napi_key = "k"\nsecret_key = "s"\n'
BOTH = ZALO + SMS


@pytest.mark.parametrize(("notify", "key", "words"), [
    ("ahead = 0\n" + BOTH, "notify.ahead", ["lớn hơn hoặc bằng 1"]),
    ("ahead = 21\n" + BOTH, "notify.ahead", ["nhỏ hơn hoặc bằng 20"]),
    ('ahead = "3"\n' + BOTH, "notify.ahead", ["số nguyên"]),
    ("phone_days = 0\n" + BOTH, "notify.phone_days", ["lớn hơn"]),
    ("phone_days = 4000\n" + BOTH, "notify.phone_days", ["nhỏ hơn"]),
    ('channels = ["zalo", "email"]\n' + BOTH, "notify.channels", ["email", "zalo, sms"]),
    ('channels = ["sms", "sms"]\n' + BOTH, "notify.channels", ["hai lần"]),
    ('channels = ["zalo", "sms"]\n' + SMS, "notify.channels", ["[notify.zalo]"]),
    ('channels = ["sms"]\n', "notify.channels", ["[notify.sms]"]),
    ('language = "fr"\n' + BOTH, "notify.language", ["vi, en"]),
    ('user = "Notify User"\n' + BOTH, "notify.user", ["chữ thường"]),
    ('public_url = "ftp://x.vn"\n' + BOTH, "notify.public_url", ["http://"]),
    ('public_url = "xephang.vn"\n' + BOTH, "notify.public_url", ["http://"]),
    ('public_url = "https://x.vn/' + "a" * 200 + '"\n' + BOTH, "notify.public_url", ["200"]),
    ('listen = "8091"\n' + BOTH, "notify.listen", ["máy:cổng"]),
    ('listen = "127.0.0.1:70000"\n' + BOTH, "notify.listen", ["máy:cổng"]),
    ("retry_max_s = 600\ngive_up_s = 60\n" + BOTH, "notify.give_up_s", ["retry_max_s"]),
    ("chanels = []\n" + BOTH, "notify.chanels", ["không được hỗ trợ"]),
    ('[notify.kind_channels]\nrated = ["sms"]\n' + BOTH, "notify.kind_channels.rated", ["issued, nears"]),
    ('[notify.kind_channels]\nrate = ["fax"]\n' + BOTH, "notify.kind_channels.rate", ["fax"]),
    ('channels = ["zalo"]\n[notify.kind_channels]\nrate = ["sms"]\n' + ZALO, "notify.channels", ["[notify.sms]"]),
    ('[notify.zalo]\nsecret_key = "s"\ntemplates = { issued = "1" }\n', "notify.zalo.app_id", ["thiếu"]),
    ('[notify.zalo]\napp_id = "1"\ntemplates = { issued = "1" }\n' + SMS, "notify.zalo.secret_key",
     ["QMS_ZALO_SECRET_KEY"]),
    ('[notify.zalo]\napp_id = "1"\nsecret_key = "s"\n' + SMS, "notify.zalo.templates", ["thiếu"]),
    ('[notify.zalo]\napp_id = "1"\nsecret_key = "s"\ntemplates = {}\n' + SMS, "notify.zalo.templates",
     ["chưa có"]),
    ('[notify.zalo]\napp_id = "1"\nsecret_key = "s"\ntemplates = { issue = "1" }\n' + SMS,
     "notify.zalo.templates.issue", ["không được hỗ trợ"]),
    ('[notify.zalo]\napp_id = "1"\nsecret_key = "s"\ntemplates = { issued = "a b" }\n' + SMS,
     "notify.zalo.templates.issued", ["ZNS"]),
    ('[notify.zalo]\napp_id = "1"\nsecret_key = "s"\ntemplates = { issued = "1" }\nbase_url = "zalo.me"\n' + SMS,
     "notify.zalo.base_url", ["http://"]),
    (ZALO + 'rate_per_s = 0\n' + SMS, "notify.zalo.rate_per_s", ["lớn hơn"]),
    (ZALO + '[notify.sms]\napi_key = "k"\nsecret_key = "s"\n', "notify.sms.provider", ["thiếu"]),
    (ZALO + '[notify.sms]\nprovider = "viettel"\n', "notify.sms.provider", ["esms, speedsms"]),
    (ZALO + '[notify.sms]\nprovider = "esms"\napi_key = "k"\n', "notify.sms.secret_key", ["QMS_SMS_SECRET_KEY"]),
    (ZALO + '[notify.sms]\nprovider = "speedsms"\n', "notify.sms.token", ["QMS_SMS_TOKEN"]),
    (ZALO + '[notify.sms]\nprovider = "speedsms"\ntoken = "t"\napi_key = "k"\n', "notify.sms.api_key",
     ["speedsms"]),
    (ZALO + SMS + 'brandname = "Ủy ban nhân dân"\n', "notify.sms.brandname", ["11 ký tự"]),
    (ZALO + SMS + 'apikey = "x"\n', "notify.sms.apikey", ["không được hỗ trợ"]),
    (BOTH + '[notify.templates.vi]\ncalled = "{office}: mời số {number} đến {quay}."\n',
     "notify.templates.vi.called", ["{quay}"]),
    (BOTH + '[notify.templates.vi]\nnears = "{office}: số {number} đến {counter}."\n',
     "notify.templates.vi.nears", ["{counter}", "nears"]),
    (BOTH + '[notify.templates.vi]\nissued = "{office}: số {number}' + " chờ nhé" * 20 + ' {link}"\n',
     "notify.templates.vi.issued", ["issued", "SMS", "ký tự"]),
    (BOTH + '[notify.templates.vi]\nissued = " "\n', "notify.templates.vi.issued", ["trống"]),
    (BOTH + '[notify.templates.vi]\nissue = "{office}"\n', "notify.templates.vi.issue", ["không được hỗ trợ"]),
    (BOTH + '[notify.templates.fr]\nissued = "{office}"\n', "notify.templates.fr", ["không được hỗ trợ"]),
    (BOTH + '[[notify.webhooks]]\nsecret = "0123456789abcdef"\n', "notify.webhooks[1].url", ["thiếu"]),
    (BOTH + '[[notify.webhooks]]\nurl = "mailto:a@b.vn"\nsecret = "0123456789abcdef"\n',
     "notify.webhooks[1].url", ["http://"]),
    (BOTH + '[[notify.webhooks]]\nurl = "https://a.vn"\nsecret = "short"\n', "notify.webhooks[1].secret",
     ["16"]),
    (BOTH + '[[notify.webhooks]]\nurl = "https://a.vn"\nsecret = "0123456789abcdef"\nevents = ["paid"]\n',
     "notify.webhooks[1].events", ["paid", "transferred"]),
    (BOTH + '[[notify.webhooks]]\nurl = "https://a.vn"\nsecret = "0123456789abcdef"\nevents = []\n',
     "notify.webhooks[1].events", ["chưa chọn"]),
    (BOTH + '[[notify.webhooks]]\nurl = "https://a.vn"\nsecret = "0123456789abcdef"\nevents = ["rated", "rated"]\n',
     "notify.webhooks[1].events", ["hai lần"]),
    (BOTH + '[[notify.webhooks]]\nurl = "https://a.vn"\nsecret = "0123456789abcdef"\nrate_per_s = 5000\n',
     "notify.webhooks[1].rate_per_s", ["1000"]),
])
def test_mistakes_name_the_key(tmp_path: Path, notify: str, key: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[notify]\n" + notify)
    assert info.value.key == key, str(info.value)
    text = str(info.value)
    assert text.startswith("Lỗi cấu hình ") and str(tmp_path / "site.toml") in text
    for w in words:
        assert w in text, text


def test_a_default_template_that_cannot_fit_the_sites_names_says_what_to_override(tmp_path: Path) -> None:
    # a field id so long that the tracking link leaves no room in the "issued" message
    long_id = "a" + "-b" * 31 + "c"
    text = write(tmp_path, "[notify]\nchannels = []\n").read_text(encoding="utf-8").replace(
        '"dang-ky-kinh-doanh"', f'"{long_id}"').replace(
        'host = "192.168.1.10"', 'host = "192.168.1.10"\npublic_url = "https://xephang.phuonghoabinh.thanhpho.gov.vn"')
    (tmp_path / "site.toml").write_text(text, encoding="utf-8")
    site = load_site_config(tmp_path / "site.toml", env={})
    with pytest.raises(ConfigError) as info:
        load_notify_settings(site, env={})
    assert info.value.key == "notify.templates"
    assert "issued" in str(info.value) and "[notify.templates.vi] issued" in str(info.value)


def test_a_wildcard_web_host_needs_a_public_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[notify]\nchannels = []\n", web_host="0.0.0.0")
    assert info.value.key == "notify.public_url"
    _, s = load(tmp_path, '[notify]\nchannels = []\npublic_url = "http://10.1.1.1:8080"\n', web_host="0.0.0.0")
    assert s is not None and s.public_url == "http://10.1.1.1:8080"


@pytest.mark.parametrize(("notify", "key"), [
    ("[notify]\nahead = 0\n", "notify.ahead"),
    ("[notify]\nphone_days = 0\n", "notify.phone_days"),
    ('[notify]\nuser = "A B"\n', "notify.user"),
])
def test_the_cores_keys_are_checked_by_the_site_loader_too(tmp_path: Path, notify: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_site_config(write(tmp_path, notify), env={})
    assert info.value.key == key
