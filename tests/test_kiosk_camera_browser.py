"""The kiosk's "Tra cứu hồ sơ" with its camera, in real headless Chromium at kiosk size: Chromium's
own stand-in camera (--use-fake-device-for-media-stream) plays a video file of the printed
receipt's QR code held to it, and the page reads it with what this browser has (Chromium on Linux
has no BarcodeDetector: jsQR, static/vendor) and shows the dossier. A kiosk without a camera shows
no camera button."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image
from playwright.async_api import Browser, async_playwright

from display_server.dossiers.receipt import Receipt, render_receipt
from display_server.printing.ticket_image import Fonts
from display_server.settings import DEFAULT_BOLD_FONT, DEFAULT_FONT
from qms_common.devbroker import Broker
from tests import test_web_dossiers
from tests.support.web import CHROMIUM_ARGS
from tests.test_web_browser import Tab
from tests.test_web_dossiers import Rig, local, rig_for, rig_site

KIOSK = {"width": 1080, "height": 1920}
FRAME = (640, 480)
rig = test_web_dossiers.rig  # the office with the dossier service, as a fixture here too
READY = "window.qmsKioskDossier !== undefined && window.qmsKioskDossier.cameraChecked"


def write_y4m(image: Image.Image, path: Path, frames: int = 5) -> None:
    """A still picture as a short YUV4MPEG2 video (4:2:0), which Chromium's stand-in camera loops."""
    ycbcr = image.convert("RGB").convert("YCbCr")
    w, h = ycbcr.size
    y, cb, cr = ycbcr.split()
    half = (w // 2, h // 2)
    frame = b"FRAME\n" + y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)


def receipt_held_to_the_camera(code: str, url: str) -> Image.Image:
    """The printed receipt's lower part (its QR code and caption), as a camera sees it held up."""
    receipt = render_receipt(Receipt(office="Bộ phận Một cửa", code=code, procedure="Đăng ký khai sinh",
                                     received="09:00 26/11/2026", due="27/11/2026", documents=(), url=url),
                             width=576, fonts=Fonts(DEFAULT_FONT, DEFAULT_BOLD_FONT)).convert("L")
    lower = receipt.crop((0, receipt.height - 420, receipt.width, receipt.height))
    frame = Image.new("L", FRAME, 150)  # a grey counter top around the paper
    frame.paste(lower, ((FRAME[0] - lower.width) // 2, (FRAME[1] - lower.height) // 2))
    return frame


@contextlib.asynccontextmanager
async def chromium_with_camera(video: Path) -> AsyncIterator[Browser]:
    """Headless Chromium whose only camera plays `video`, allowed without asking."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_kiosk_s_camera_reads_the_receipt(broker: Broker, tmp_path: Path) -> None:
    async with rig_for(rig_site(tmp_path, broker), broker, tmp_path) as rig:
        created = await rig.create()
        await rig.event(id="kq", status="done", at="2026-11-30T10:00:00+07:00")
        url = local(created["url"], rig)
        video = tmp_path / "receipt.y4m"
        frame = receipt_held_to_the_camera(created["code"], url)
        frame.save(tmp_path / "camera-frame.png")
        write_y4m(frame, video)
        async with chromium_with_camera(video) as browser:
            context = await browser.new_context(viewport=KIOSK, has_touch=True)
            tab = await Tab.open(context, rig.url + "/kiosk/ho-so?id=kiosk-1", READY)
            page = tab.page
            assert await page.evaluate("'BarcodeDetector' in window") is False  # jsQR's turn
            assert await page.is_visible("#camera") and await tab.text("#camera") == "Dùng camera"
            await page.tap("#camera")
            await tab.until("!document.getElementById('result').hidden")
            # the scanned address: the page's whole model, timeline and all; the camera is off again
            assert await tab.text("#hs-status") == "Đã có kết quả"
            assert await tab.text("#hs-procedure") == "Đăng ký khai sinh"
            assert await page.locator("#hs-timeline li").count() == 2
            assert await page.evaluate("window.qmsKioskDossier.summary") is False
            assert await page.evaluate("window.qmsKioskDossier.camera") is False
            assert await page.is_hidden("#video") and await tab.text("#camera") == "Dùng camera"
            await page.screenshot(path=str(tmp_path / "kiosk-camera.png"))
            assert not tab.errors
            await context.close()


async def test_a_kiosk_without_a_camera_shows_no_camera_button(rig: Rig, chromium: Browser) -> None:
    context = await chromium.new_context(viewport=KIOSK, has_touch=True)
    tab = await Tab.open(context, rig.url + "/kiosk/ho-so?id=kiosk-1", READY)
    assert await tab.page.is_hidden("#camera")
    assert not tab.errors
    await context.close()
