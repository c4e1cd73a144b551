// The inspector console (/console) and the observer view (/observe): the applicant's camera
// large, own preview small, inspection facts, participants, connection, controls.

import { t, lang, bindLangToggles, onLangChange, applyI18n } from "./i18n.js";
import { Session, tokenFromUrl, exposeForTests } from "./session.js";
import { Overlay, bindOverlay } from "./overlay.js";
import { connText, elapsedText, remoteNotice, renderParticipants, toneOf } from "./presence.js";
import { playWithSound } from "./playback.js";

const $ = (id) => document.getElementById(id);

const session = new Session({ token: tokenFromUrl(), lang: lang() });
exposeForTests(session);
const overlay = new Overlay($("overlay"));
bindOverlay(overlay, session, { allowWithout: true });

bindLangToggles();

// ---- rendering ---------------------------------------------------------------------------

let noticeTimer = null;

function render() {
  const { state, inspection } = session;
  const observer = state.role === "observer" || (!state.role && location.pathname.startsWith("/observe"));
  document.body.classList.toggle("is-observer", observer);
  for (const el of document.querySelectorAll(".inspector-only")) el.hidden = observer;
  for (const el of document.querySelectorAll(".observer-only")) el.hidden = !observer;
  const titleKey = observer ? "app.observe" : "app.console";
  if (document.body.dataset.titleKey !== titleKey) {
    document.body.dataset.titleKey = titleKey;
    $("brand-sub").dataset.i18n = titleKey;
    applyI18n();
  }

  $("case-no").textContent = inspection?.case_no || "—";
  $("item-name").textContent = inspection?.item_name || "—";
  $("site-address").textContent = inspection?.site_address || "—";
  $("case-no-top").textContent = inspection?.case_no ? `${t("info.caseNo")} ${inspection.case_no}` : "";
  $("item-name-top").textContent = inspection?.item_name ?? "";

  const status = state.status;
  $("status-badge").dataset.status = status ?? "";
  $("status-badge").textContent = t(`status.${status ?? "unknown"}`);
  $("status-text").textContent = t(`status.${status ?? "unknown"}`);
  renderElapsed();

  renderParticipants($("participants"), session.participants, session.me?.id);
  $("participants").classList.toggle("stale", !state.joined);
  setConn("socket", state.socket === "connecting" && session.me ? "disconnected" : state.socket);
  // The server's view of our media is unknown while signaling is down.
  setConn("peer", state.joined && (session.pc || state.peer !== "new") ? state.peer : "none");
  setConn("pc", session.pcState);

  const notice = remoteNotice(session, "applicant");
  $("remote-notice").hidden = !notice;
  $("remote-notice-text").textContent = notice ? t(notice) : "";
  $("remote-notice").classList.toggle("busy", notice === "remote.waitingVideo" || notice === "remote.reconnecting" || notice === "line.connecting");

  renderLocal();
}

function setConn(name, state) {
  $(`${name}-state`).textContent = connText(state);
  $(`${name}-dot`).className = `dot dot-${toneOf(state)}`;
}

function renderElapsed() {
  const show = session.liveSince !== null;
  $("elapsed").hidden = !show;
  if (show && !session.final) $("elapsed-value").textContent = elapsedText(session);
}

function renderLocal() {
  const local = session.local;
  const flags = local.flags;
  const hasAudio = !!local.audioTrack;
  const hasVideo = !!local.videoTrack;
  setToggle($("btn-mic"), !local.audioEnabled, local.audioEnabled ? "ctl.mute" : "ctl.unmute", !hasAudio);
  setToggle($("btn-cam"), !local.videoEnabled, local.videoEnabled ? "ctl.camOff" : "ctl.camOn", !hasVideo);
  $("btn-switch").disabled = !hasVideo || local.switching;
  $("btn-end").disabled = !session.state.joined || !!session.final;
  const localNotice = !session.mediaReady ? "local.starting" : !hasVideo ? "local.noCam" : !flags.video ? "local.camOff" : null;
  $("local-notice").textContent = localNotice ? t(localNotice) : "";
  $("local-notice").hidden = !localNotice;
  $("local-preview").classList.toggle("mirrored", local.facing !== "environment");
}

function setToggle(btn, off, labelKey, disabled) {
  btn.setAttribute("aria-pressed", String(off));
  btn.classList.toggle("off", off);
  btn.querySelector(".ctl-label").textContent = t(labelKey);
  btn.disabled = disabled;
}

function showNotice(key, params) {
  const el = $("notice");
  el.textContent = t(key, params);
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

// ---- wiring ------------------------------------------------------------------------------

session.addEventListener("change", render);
session.addEventListener("joined", () => { applyI18n(); render(); });
session.addEventListener("notice", (e) => showNotice(e.detail.key, e.detail.params));
session.addEventListener("remotestream", () => playWithSound($("remote-video"), session.remoteStream, $("unmute-remote")));
session.addEventListener("localstream", () => {
  $("local-video").srcObject = session.local.stream;
  render();
});
session.addEventListener("final", () => {
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  if ($("end-dialog").open) $("end-dialog").close();
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

const endDialog = $("end-dialog");
$("btn-end").addEventListener("click", () => {
  $("end-error").hidden = true;
  endDialog.showModal();
  $("end-cancel").focus();
});
$("end-confirm").addEventListener("click", async (e) => {
  e.preventDefault();
  $("end-confirm").disabled = true;
  const ack = await session.end();
  $("end-confirm").disabled = false;
  if (ack.ok) {
    if (endDialog.open) endDialog.close();
  } else {
    $("end-error").textContent = t("end.failed", { message: ack.error?.message || ack.error?.code || "?" });
    $("end-error").hidden = false;
  }
});

setInterval(renderElapsed, 1000);
render();
session.start();
