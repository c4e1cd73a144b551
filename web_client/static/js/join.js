// The applicant's phone page (/join): full-screen rear-camera preview, the inspector small in
// a corner, a status line, big buttons for microphone / camera switch / camera.

import { t, lang, bindLangToggles, onLangChange } from "./i18n.js";
import { Session, tokenFromUrl, exposeForTests } from "./session.js";
import { Overlay, bindOverlay } from "./overlay.js";
import { elapsedText, remoteNotice, statusLine } from "./presence.js";
import { playWithSound } from "./playback.js";

const $ = (id) => document.getElementById(id);

const session = new Session({ token: tokenFromUrl(), lang: lang() });
exposeForTests(session);
const overlay = new Overlay($("overlay"));
// The applicant's camera is the point of the inspection: no "continue without camera".
bindOverlay(overlay, session, { allowWithout: false });
bindLangToggles();

let noticeTimer = null;

function render() {
  const line = statusLine(session, "inspector");
  $("join-status").dataset.tone = line.tone;
  $("status-dot").className = `dot dot-${line.tone}`;
  $("status-text").textContent = t(line.key, line.params);
  $("elapsed").hidden = !line.elapsed;
  renderElapsed();

  const insp = session.inspection;
  $("join-case").textContent = insp ? [insp.item_name, insp.case_no].filter(Boolean).join(" · ") : "";
  $("join-case").hidden = !insp;

  const pipNotice = remoteNotice(session, "inspector", { short: true });
  $("pip-notice").textContent = pipNotice ? t(pipNotice) : "";
  $("pip-notice").hidden = !pipNotice;
  $("pip").hidden = !session.state.joined && !session.me;

  const local = session.local;
  const hasVideo = !!local.videoTrack;
  const localNotice = session.final ? null
    : session.mediaError ? "line.camera"
    : !session.mediaReady ? "local.starting"
    : !hasVideo ? "local.noCam"
    : !local.videoEnabled ? "local.camOff" : null;
  $("local-notice").hidden = !localNotice;
  $("local-notice-text").textContent = localNotice ? t(localNotice) : "";
  $("local-notice").classList.toggle("busy", localNotice === "local.starting");
  $("local-video").classList.toggle("mirrored", local.facing === "user");

  setToggle($("btn-mic"), !local.audioEnabled, local.audioEnabled ? "ctl.mute" : "ctl.unmute", !local.audioTrack);
  setToggle($("btn-cam"), !local.videoEnabled, local.videoEnabled ? "ctl.camOff" : "ctl.camOn", !hasVideo);
  $("btn-switch").disabled = !hasVideo || local.switching;
  $("join-hint").hidden = !!session.final || !hasVideo || !local.videoEnabled || !session.state.joined;
}

function renderElapsed() {
  if (!$("elapsed").hidden && !session.final) $("elapsed").textContent = elapsedText(session);
}

function setToggle(btn, off, labelKey, disabled) {
  btn.setAttribute("aria-pressed", String(off));
  btn.classList.toggle("off", off);
  btn.querySelector(".round-label").textContent = t(labelKey);
  btn.disabled = disabled;
}

function showNotice(key, params) {
  const el = $("notice");
  el.textContent = t(key, params);
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

// Keep the phone's screen on while the inspection runs.
let wakeLock = null;
async function keepAwake() {
  if (session.final || !("wakeLock" in navigator) || document.visibilityState !== "visible") return;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
  } catch { /* not allowed (battery saver, no gesture): the screen may dim */ }
}
document.addEventListener("visibilitychange", () => { if (!wakeLock || wakeLock.released) keepAwake(); });

session.addEventListener("change", render);
session.addEventListener("notice", (e) => showNotice(e.detail.key, e.detail.params));
session.addEventListener("remotestream", () => playWithSound($("remote-video"), session.remoteStream, $("unmute-remote")));
session.addEventListener("localstream", () => {
  $("local-video").srcObject = session.local.stream;
  keepAwake();
  render();
});
session.addEventListener("final", () => {
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  wakeLock?.release().catch(() => {});
});
onLangChange((value) => {
  session.setLang(value);
  render();
});

$("btn-mic").addEventListener("click", () => session.setAudio(!session.local.audioEnabled));
$("btn-cam").addEventListener("click", () => session.setVideo(!session.local.videoEnabled));
$("btn-switch").addEventListener("click", async () => {
  $("btn-switch").disabled = true;
  try {
    if (!(await session.switchCamera())) showNotice("warn.noOtherCamera");
  } catch (err) {
    console.warn("camera switch failed", err);
    showNotice("warn.switchFailed");
  }
  render();
});
$("pip").addEventListener("click", () => $("pip").classList.toggle("pip-large"));

setInterval(renderElapsed, 1000);
render();
session.start();
