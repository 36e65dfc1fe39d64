"""The phone inbox page: what the stand-in "delivered", newest first, phones masked."""

from __future__ import annotations

import time
from html import escape

from notifier.standin.state import Delivered
from qms_common.phones import mask_phone

HEAD = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hộp thư điện thoại (giả lập)</title>
<style>
body{font-family:"DejaVu Sans",sans-serif;margin:1.5rem;max-width:52rem;background:#f4f6f8;color:#1c2833}
h1{font-size:1.4rem} p.note{color:#566573}
ol{list-style:none;padding:0} li{background:#fff;border-radius:.5rem;margin:.6rem 0;padding:.7rem 1rem;
box-shadow:0 1px 2px #0002} .meta{color:#566573;font-size:.9rem} .channel{font-weight:bold;color:#1f618d}
.text{margin-top:.3rem;white-space:pre-wrap}
</style></head><body>
<h1>Hộp thư điện thoại (giả lập)</h1>
<p class="note">Tin nhắn mà máy chủ giả lập Zalo, SMS và webhook đã nhận để chuyển đi, mới nhất ở trên.
Trang tự tải lại sau 5 giây.</p>
"""


def render_inbox(inbox: list[Delivered]) -> str:
    rows = []
    for d in reversed(inbox):  # appended as delivered: the newest last
        when = time.strftime("%H:%M:%S %d/%m/%Y", time.localtime(d.at))
        who = mask_phone(d.phone) if d.phone.isdigit() else d.phone
        rows.append(f'<li><div class="meta"><time>{escape(when)}</time> · <span class="channel">{escape(d.channel)}'
                    f'</span> · <span class="phone">{escape(who)}</span></div>'
                    f'<div class="text">{escape(d.text)}</div></li>')
    body = "<ol>\n" + "\n".join(rows) + "\n</ol>" if rows else "<p>Chưa có tin nhắn nào.</p>"
    return HEAD + body + "\n</body></html>\n"
