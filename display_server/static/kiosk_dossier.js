// The kiosk's "Tra cứu hồ sơ": the receipt's QR code holds /hs/{code}?k={token}. A USB scanner
// types it and Enter into the focused box; where the browser has BarcodeDetector, the camera
// reads it. A typed dossier code alone opens nothing (the token protects the dossier): the kiosk
// says to scan the QR code. Untouched for a while, it goes back to the question.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { busy: false, shown: null, camera: false };
  window.qmsKioskDossier = state;
  const ADDRESS = /\/hs\/([A-Za-z0-9._\/-]{1,64})\?k=([A-Za-z0-9_-]{8,64})/;
  let idle = null, stream = null, detector = null;

  function message(text) {
    const m = $("ask-message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  function rest() {
    clearTimeout(idle);
    idle = setTimeout(reset, config.idle_s * 1000);
  }

  function reset() {
    stopCamera();
    $("result").hidden = true;
    $("ask").hidden = false;
    $("scan").value = "";
    message("");
    state.shown = null;
    $("scan").focus();
  }

  // what the scanner typed (or the camera read): the receipt's address, whatever its host
  function parse(text) {
    const m = ADDRESS.exec(String(text || "").trim());
    return m ? { code: decodeURIComponent(m[1]), token: m[2] } : null;
  }

  async function lookUp(text) {
    rest();
    const found = parse(text);
    $("scan").value = "";
    if (!found) { message(T.kiosk_hs_code_only); $("scan").focus(); return; }
    if (state.busy) return;
    state.busy = true;
    message(T.kiosk_hs_looking);
    let resp = null, body = null;
    try {
      resp = await fetch("/hs/" + found.code.split("/").map(encodeURIComponent).join("/") + "/trang-thai?k="
                         + encodeURIComponent(found.token) + (config.lang !== "vi" ? "&lang=" + config.lang : ""),
                         { credentials: "same-origin" });
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    state.busy = false;
    if (!body || !body.ok) {
      message(resp && resp.status === 404 ? T.hs_not_found : (body && body.error && body.error.message) || T.err_network);
      $("scan").focus();
      return;
    }
    stopCamera();
    message("");
    state.shown = body.dossier;
    QmsDossier.draw($("hs"), body.dossier, T);
    $("ask").hidden = true;
    $("result").hidden = false;
    $("again").focus();
  }

  async function startCamera() {
    if (state.camera) { stopCamera(); return; }
    try {
      detector = detector || new BarcodeDetector({ formats: ["qr_code"] });
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (e) {
      message(T.err_network);
      return;
    }
    const video = $("video");
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    state.camera = true;
    $("camera").textContent = T.kiosk_hs_camera_stop;
    scanFrame();
  }

  async function scanFrame() {
    if (!state.camera) return;
    rest();
    try {
      const codes = await detector.detect($("video"));
      for (const c of codes) {
        if (parse(c.rawValue)) { lookUp(c.rawValue); return; }
      }
    } catch (e) { /* a frame it could not read: the next one */ }
    setTimeout(scanFrame, 300);
  }

  function stopCamera() {
    state.camera = false;
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    $("video").hidden = true;
    $("camera").textContent = T.kiosk_hs_camera;
  }

  $("scan-form").addEventListener("submit", function (e) { e.preventDefault(); lookUp($("scan").value); });
  $("scan").addEventListener("input", rest);
  $("again").addEventListener("click", reset);
  // the camera only where the browser reads QR codes itself
  $("camera").hidden = !("BarcodeDetector" in window && navigator.mediaDevices);
  $("camera").addEventListener("click", startCamera);
  // a scanner's keystrokes must land in the box, whatever was touched last
  document.addEventListener("keydown", function (e) {
    if (!$("ask").hidden && document.activeElement !== $("scan") && e.key.length === 1) $("scan").focus();
    if (!$("result").hidden && e.key.length === 1) { reset(); }
  });
  rest();
})();
