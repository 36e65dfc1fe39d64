// The kiosk's "Tra cứu hồ sơ": the receipt's QR code holds /hs/{code}?k={token}. A USB scanner
// types it and Enter into the focused box; where the kiosk has a camera, the camera reads it
// (the browser's BarcodeDetector, else jsQR, static/vendor, loaded only then): the dossier's
// page model, timeline and all. A dossier code typed on the screen's keys
// has no token: the server answers its summary only (POST /api/kiosk/dossier, rate-limited).
// Untouched for idle_s, it goes back to the kiosk's menu.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { busy: false, shown: null, summary: false, camera: false, cameraChecked: false };
  window.qmsKioskDossier = state;
  const ADDRESS = /\/hs\/([A-Za-z0-9._\/-]{1,64})\?k=([A-Za-z0-9_-]{8,64})/;
  const CODE = /^[A-Za-z0-9._\/-]{1,64}$/;
  const lang = config.lang !== "vi" ? "lang=" + config.lang : "";
  let idle = null, stream = null, reader = null;

  function message(text) {
    const m = $("ask-message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  function rest() {
    clearTimeout(idle);
    idle = setTimeout(idleOut, config.idle_s * 1000);
  }

  // untouched for idle_s: the camera off and back to the kiosk's menu, so that the next citizen
  // finds the four functions, not the last one's dossier
  function idleOut() {
    if (state.busy) { rest(); return; }
    stopCamera();
    location.replace(config.home);
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

  // a dossier code as typed: spaces dropped (the server does the same)
  function typedCode(text) {
    const code = String(text || "").replace(/\s+/g, "");
    return CODE.test(code) ? code : null;
  }

  async function scanned(found) {
    try {
      const resp = await fetch("/hs/" + found.code.split("/").map(encodeURIComponent).join("/") + "/trang-thai?k="
                               + encodeURIComponent(found.token) + (lang ? "&" + lang : ""),
                               { credentials: "same-origin" });
      return { status: resp.status, body: await resp.json() };
    } catch (e) {
      return { status: 0, body: { ok: false, error: { code: "network", message: null } } };
    }
  }

  async function lookUp(text) {
    rest();
    const found = parse(text);
    const code = found ? null : typedCode(text);
    // a scanned address goes; a typed code stays, to be corrected if it was mistyped
    if (!code) $("scan").value = "";
    if (!found && !code) {
      // another QR code (a ticket's, a web page's) is no dossier; anything else, a mistyped code
      message(/:\/\//.test(String(text)) ? T.hs_not_found : T.kiosk_hs_bad_code);
      $("scan").focus();
      return;
    }
    if (state.busy) return;
    state.busy = true;
    message(T.kiosk_hs_looking);
    const res = found ? await scanned(found)
      : await P.post("/api/kiosk/dossier" + (lang ? "?" + lang : ""), { kiosk: config.kiosk, code: code });
    state.busy = false;
    const body = res.body;
    if (!body || !body.ok) {
      const error = (body && body.error) || {};
      message(res.status === 404 ? T.hs_not_found : (error.code !== "network" && error.message) || T.err_network);
      $("scan").focus();
      return;
    }
    stopCamera();
    message("");
    $("scan").value = "";
    state.shown = body.dossier;
    state.summary = !found;
    if (found) QmsDossier.draw($("hs"), body.dossier, T);
    else QmsDossier.summary($("hs"), body.dossier, T);
    $("ask").hidden = true;
    $("result").hidden = false;
    $("again").focus();
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  // what reads QR codes in the camera's frames: the browser's own, else jsQR on a frame drawn
  // at most FRAME_WIDTH wide (a receipt held to the camera fills much of it; smaller is quicker)
  const FRAME_WIDTH = 640;
  async function qrReader() {
    if ("BarcodeDetector" in window) {
      const detector = new BarcodeDetector({ formats: ["qr_code"] });
      return async function (video) { return (await detector.detect(video)).map(function (c) { return c.rawValue; }); };
    }
    if (!window.jsQR) await loadScript(config.qr_script);
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async function (video) {
      if (!video.videoWidth || !video.videoHeight) return [];
      const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
      const w = Math.round(video.videoWidth * scale), h = Math.round(video.videoHeight * scale);
      canvas.width = w;
      canvas.height = h;
      context.drawImage(video, 0, 0, w, h);
      const found = window.jsQR(context.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
      return found ? [found.data] : [];
    };
  }

  async function startCamera() {
    if (state.camera) { stopCamera(); return; }
    try {
      reader = reader || await qrReader();
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (e) {
      message(T.kiosk_hs_camera_error);
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
    try {
      for (const text of await reader($("video"))) {
        if (parse(text)) { lookUp(text); return; }
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
  // the screen's keys type into the box (the server takes the code as typed, spaces dropped)
  P.keys($("hs-keys"), $("scan"), 64, function () { message(""); rest(); $("scan").focus(); });
  $("again").addEventListener("click", reset);
  // the camera's button only on a kiosk that has a camera
  async function hasCamera() {
    try {
      return (await navigator.mediaDevices.enumerateDevices()).some(function (d) { return d.kind === "videoinput"; });
    } catch (e) {
      return false;
    }
  }
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    hasCamera().then(function (yes) { $("camera").hidden = !yes; state.cameraChecked = true; });
  } else {
    state.cameraChecked = true;
  }
  $("camera").addEventListener("click", startCamera);
  // any touch or key is someone at the kiosk (the camera's frames are not)
  for (const type of ["pointerdown", "keydown", "touchstart"]) {
    document.addEventListener(type, rest, { passive: true, capture: true });
  }
  // a scanner's keystrokes must land in the box, whatever was touched last
  document.addEventListener("keydown", function (e) {
    if (!$("ask").hidden && document.activeElement !== $("scan") && e.key.length === 1) $("scan").focus();
    if (!$("result").hidden && e.key.length === 1) { reset(); }
  });
  rest();
})();
