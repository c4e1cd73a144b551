// The inspector console (/console) and the observer view (/observe): the applicant's camera
// large, own preview small; beside it the checklist (prompt, capture still), signatures,
// notes and chat, and the inspection facts, the applicant's location, participants and
// connection; the 8.2.3 timer banner and the overtime dialog; the 8.1.8 prudent warnings
// (a panel on top of the side, and a banner once); controls at the bottom.

import { t, lang, bindLangToggles, onLangChange, applyI18n } from "./i18n.js";
import { Session, tokenFromUrl, exposeForTests } from "./session.js";
import { Overlay, bindOverlay } from "./overlay.js";
import { connText, elapsedText, remoteNotice, renderParticipants, toneOf } from "./presence.js";
import { playWithSound } from "./playback.js";
import { watchQuality } from "./quality.js";
import { Checklist } from "./checklist.js";
import { RecognitionPanel } from "./recognitions.js";
import { bindStageTools } from "./stage_tools.js";
import { ChatPanel } from "./chat.js";
import { SignatureSheet } from "./signature.js";
import { TimerWatch, renderBanner } from "./timer.js";
import { actionError, coords, distance, minutes, timeOfDay } from "./format.js";
import { PROTOCOL } from "./protocol.js";

const $ = (id) => document.getElementById(id);

const session = new Session({ token: tokenFromUrl(), lang: lang() });
watchQuality(session); // audio first: says so when a link cannot carry video
exposeForTests(session);
const overlay = new Overlay($("overlay"));
bindOverlay(overlay, session, { allowWithout: true });

bindLangToggles();

const timer = new TimerWatch(session);
const checklist = new Checklist(session, $("checklist"), {
  video: $("remote-video"),
  onRefused: (code) => { if (code === "overtime_reason_required") timer.noteRefused(); },
});
const chat = new ChatPanel(session, $("chat"));
new RecognitionPanel(session, $("prudent")); // licence/sign readings (server event `recognized`)
const tools = bindStageTools(session, { canAct: () => live() && !isObserver() }); // draw, clear, the phone's camera
const signatures = {
  applicant: { state: "none", code: null, at: null },
  inspector: { state: "none", code: null, at: null, png: null },
};
const sheet = new SignatureSheet(session, {
  onsigned: (r) => {
    Object.assign(signatures.inspector, { state: "signed", code: r.code, at: r.at, png: r.png });
    renderSignatures();
  },
});
let applicantLocation = null; // the last `location` event
const notes = []; // {text, checkpoint, at}, newest first
let unread = 0;
let noteSaving = false;
window.takan.ui = { checklist, chat, timer, signatures, sheet, notes, tools };

// ---- rendering ---------------------------------------------------------------------------

let noticeTimer = null;

function render() {
  const { state, inspection } = session;
  const observer = isObserver();
  document.body.classList.toggle("is-observer", observer);
  for (const el of document.querySelectorAll(".inspector-only")) el.hidden = observer;
  for (const el of document.querySelectorAll(".observer-only")) el.hidden = !observer;
  checklist.canAct = !observer;
  checklist.render();
  $("tab-talk-label").textContent = t(observer ? "chat.title" : "tab.talk");
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
  renderSignatures();
  renderLocation();
  renderTimer();
  renderNotes();
  renderPrudent();
  tools.render();
}

function isObserver() {
  const { state } = session;
  return state.role === "observer" || (!state.role && location.pathname.startsWith("/observe"));
}

function live() {
  return session.state.joined && !session.final;
}

// ---- prudent warnings (8.1.8): the lists the applicant is on ------------------------------

const PRUDENT_LISTS = PROTOCOL.prudent_lists;
const prudentSeenKey = () => `takan.prudentSeen.${session.inspection?.id ?? ""}`;
let prudentBannerDismissed = false;

function listName(w) {
  return PRUDENT_LISTS.includes(w.kind) ? t(`prudent.list.${w.kind}`) : w.title || w.kind || "?";
}

function renderPrudent() {
  const warnings = session.warnings ?? [];
  const panel = $("prudent");
  panel.hidden = !warnings.length;
  if (!warnings.length) {
    $("prudent-banner").hidden = true;
    return;
  }
  $("prudent-count").textContent = String(warnings.length);
  $("prudent-list").replaceChildren(...warnings.map((w) => {
    const li = document.createElement("li");
    li.className = "prudent-item";
    li.dataset.kind = w.kind ?? "";
    const head = document.createElement("div");
    head.className = "prudent-item-head";
    const name = document.createElement("strong");
    name.className = "prudent-list-name";
    name.textContent = listName(w);
    head.append(name);
    if (w.category) {
      const cat = document.createElement("span");
      cat.className = "prudent-cat";
      cat.textContent = w.category;
      head.append(cat);
    }
    li.append(head);
    if (w.reason) {
      const reason = document.createElement("p");
      reason.className = "prudent-reason";
      reason.textContent = w.reason;
      li.append(reason);
    }
    const facts = [];
    if (w.name) facts.push(t("prudent.entry", { name: w.name }));
    if (w.matched) facts.push(w.key && w.key !== w.matched ? t("prudent.matchedKey", { value: w.matched, key: w.key }) : t("prudent.matched", { value: w.matched }));
    if (facts.length) {
      const meta = document.createElement("p");
      meta.className = "prudent-meta";
      meta.append(...facts.map((fact) => Object.assign(document.createElement("span"), { textContent: fact })));
      li.append(meta);
    }
    return li;
  }));
  // The banner: once, when the session starts (dismissing it is remembered for this tab).
  let seen = prudentBannerDismissed;
  try { seen ||= sessionStorage.getItem(prudentSeenKey()) === "1"; } catch { /* ignore */ }
  $("prudent-banner").hidden = seen || !!session.final;
  const lists = [...new Set(warnings.map(listName))].join(t("prudent.sep"));
  $("prudent-banner-text").textContent = t("prudent.banner", { n: warnings.length, lists });
}

$("prudent-banner-close").addEventListener("click", () => {
  prudentBannerDismissed = true;
  try { sessionStorage.setItem(prudentSeenKey(), "1"); } catch { /* ignore */ }
  renderPrudent();
});

function renderTimer() {
  renderBanner($("timer-banner"), timer, session.state.role);
  $("overtime-chip").hidden = timer.phase !== "overtime";
  $("elapsed").dataset.phase = timer.phase ?? "";
}

function renderSignatures() {
  for (const role of ["applicant", "inspector"]) {
    const sig = signatures[role];
    const row = $(`sig-${role}`);
    row.dataset.state = sig.state;
    $(`sig-${role}-state`).textContent = sig.state === "signed" ? t("sig.signedAt", { time: timeOfDay(sig.at) })
      : sig.state === "requested" ? t("sig.requested") : t("sig.notSigned");
    const code = $(`sig-${role}-code`);
    code.hidden = sig.state !== "signed";
    code.querySelector(".sig-code").textContent = sig.code ?? "";
  }
  const img = $("sig-inspector-img");
  img.hidden = !signatures.inspector.png;
  if (signatures.inspector.png && img.src !== signatures.inspector.png) img.src = signatures.inspector.png;
  img.alt = t("sig.title");
  $("sig-explain").hidden = signatures.applicant.state !== "signed" && signatures.inspector.state !== "signed";
  $("btn-sign-request").disabled = !live() || signatures.applicant.state === "requesting";
  $("btn-sign-request").textContent = t(signatures.applicant.state === "signed" ? "sig.requestAgain" : "sig.request");
  $("btn-sign-own").disabled = !live();
  $("btn-sign-own").textContent = t(signatures.inspector.state === "signed" ? "sig.again" : "sig.signOwn");
}

function renderLocation() {
  const loc = applicantLocation;
  const state = !loc ? "none" : loc.within_radius === true ? "within" : loc.within_radius === false ? "outside" : "unknown";
  $("loc").dataset.state = state;
  $("loc-chip").dataset.state = state;
  const badge = state === "within" ? t("loc.within") : state === "outside" ? t("loc.outside")
    : state === "unknown" ? t("loc.unknownRadius") : t("loc.none");
  $("loc-badge").textContent = badge;
  const dist = loc && typeof loc.distance_m === "number" ? t("loc.distance", { distance: distance(loc.distance_m) }) : "";
  $("loc-distance").textContent = dist;
  $("loc-chip-text").textContent = loc ? [state === "unknown" ? "" : badge, dist].filter(Boolean).join(" · ") || t("loc.received") : t("loc.chipNone");
  $("loc-facts").hidden = !loc;
  if (loc) {
    $("loc-coords").textContent = coords(loc.lat, loc.lon);
    $("loc-accuracy").textContent = typeof loc.accuracy_m === "number" ? `±${distance(loc.accuracy_m)}` : "—";
    $("loc-updated").textContent = timeOfDay(loc.at);
  }
}

function renderNotes() {
  const select = $("note-checkpoint");
  const items = checklist.items;
  const wanted = ["", ...items.map((i) => i.code)];
  if ([...select.options].map((o) => o.value).join("\n") !== wanted.join("\n") || select.dataset.lang !== lang()) {
    const value = select.value;
    select.replaceChildren(...wanted.map((code) => {
      const o = document.createElement("option");
      o.value = code;
      o.textContent = code ? checklist.item(code).title : t("note.none");
      return o;
    }));
    select.value = wanted.includes(value) ? value : "";
    select.dataset.lang = lang();
  }
  $("note-save").disabled = !live() || noteSaving;
  const list = $("notes-list");
  if (!notes.length) {
    const li = document.createElement("li");
    li.className = "notes-empty";
    li.textContent = t("note.empty");
    list.replaceChildren(li);
  } else {
    list.replaceChildren(...notes.map((n) => {
      const li = document.createElement("li");
      const meta = document.createElement("div");
      meta.className = "note-meta";
      meta.textContent = [timeOfDay(n.at), n.checkpoint ? checklist.item(n.checkpoint)?.title ?? n.checkpoint : ""].filter(Boolean).join(" · ");
      const text = document.createElement("div");
      text.className = "note-text";
      text.textContent = n.text;
      li.append(meta, text);
      return li;
    }));
  }
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

let toastTimer = null;
/** A short message over the video (chat, uploads, signatures): visible whatever tab is open. */
function stageToast(text, tone = "info", kind = "") {
  const el = $("stage-toast");
  el.textContent = text;
  el.dataset.tone = tone;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 7000);
}

// ---- tabs ----------------------------------------------------------------------------------

const TABS = ["checklist", "talk", "info"];
function selectTab(name) {
  for (const tab of TABS) {
    const on = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(on));
    $(`tab-${tab}`).tabIndex = on ? 0 : -1;
    $(`panel-${tab}`).hidden = !on;
  }
  if (name === "talk") {
    if ($("stage-toast").dataset.kind === "chat") $("stage-toast").hidden = true;
    unread = 0;
    renderUnread();
    const list = $("chat-list");
    list.scrollTop = list.scrollHeight;
  }
}
for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
$("tab-checklist").parentElement.addEventListener("keydown", (e) => {
  if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
  const current = TABS.findIndex((tab) => $(`tab-${tab}`).getAttribute("aria-selected") === "true");
  const next = TABS[(current + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
  selectTab(next);
  $(`tab-${next}`).focus();
});

function renderUnread() {
  $("chat-unread").hidden = unread === 0;
  $("chat-unread").textContent = String(unread);
}

function renderCount() {
  const { done, total } = checklist.requiredDone;
  $("chk-count").textContent = total ? `${done}/${total}` : "";
  $("chk-count").dataset.complete = String(total > 0 && done === total);
}

// ---- wiring ------------------------------------------------------------------------------

checklist.addEventListener("change", renderCount);
checklist.addEventListener("captured", (e) => {
  const { item, capture } = e.detail;
  if (capture.kind === "photo") stageToast(t("toast.photoUploaded", { title: item.title }), "ok");
  renderNotes();
});
chat.addEventListener("message", (e) => {
  const msg = e.detail;
  if (msg.mine) return;
  if ($("panel-talk").hidden || document.visibilityState !== "visible") {
    unread++;
    renderUnread();
  }
  if ($("panel-talk").hidden) stageToast(t("toast.chat", { role: t(`role.${msg.from}`), text: msg.text }), "info", "chat");
});
timer.addEventListener("change", () => {
  renderTimer();
  if (timer.phase === "limit" && session.state.role === "inspector" && !session.final) openOvertime();
  if (timer.phase === "overtime") {
    if ($("overtime-dialog").open) $("overtime-dialog").close();
    checklist.clearOvertimeErrors();
    $("sig-request-error").hidden = true;
  }
});
$("timer-banner-close").addEventListener("click", () => timer.dismiss());

session.addEventListener("server", (e) => {
  const { name, payload: p } = e.detail;
  if (name === "location") {
    applicantLocation = p;
    renderLocation();
  } else if (name === "sign_request" && p?.role === "applicant" && signatures.applicant.state !== "signed") {
    signatures.applicant.state = "requested";
    renderSignatures();
  } else if (name === "signed" && (p?.role === "applicant" || p?.role === "inspector")) {
    Object.assign(signatures[p.role], { state: "signed", code: p.code, at: p.at });
    renderSignatures();
    if (p.role === "applicant") stageToast(t("toast.signed", { role: t("role.applicant"), code: p.code }), "ok");
  }
});

$("btn-sign-request").addEventListener("click", async () => {
  const sig = signatures.applicant;
  const before = sig.state;
  sig.state = "requesting";
  $("sig-request-error").hidden = true;
  renderSignatures();
  const ack = await session.request("sign_request", { role: "applicant" });
  if (ack.ok) {
    sig.state = "requested";
  } else {
    sig.state = before;
    $("sig-request-error").textContent = actionError(ack.error);
    $("sig-request-error").hidden = false;
    if (ack.error?.code === "overtime_reason_required") timer.noteRefused();
  }
  renderSignatures();
});
$("btn-sign-own").addEventListener("click", () => sheet.show("sig.padTitle"));

// Notes: the inspector's own record, optionally about one checkpoint.
$("note-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("note-text").value.trim();
  if (!text || noteSaving) return;
  const checkpoint = $("note-checkpoint").value || undefined;
  noteSaving = true;
  $("note-status").textContent = "";
  renderNotes();
  const ack = await session.request("note", checkpoint ? { text, checkpoint } : { text });
  noteSaving = false;
  if (ack.ok) {
    notes.unshift({ text, checkpoint, at: ack.at });
    if ($("note-text").value.trim() === text) $("note-text").value = "";
    $("note-status").textContent = t("note.saved", { time: timeOfDay(ack.at) });
    $("note-status").dataset.tone = "ok";
  } else {
    $("note-status").textContent = t("note.failed", { message: actionError(ack.error) });
    $("note-status").dataset.tone = "bad";
  }
  renderNotes();
});

// The time limit: the inspector must give a reason to go on (or end the inspection).
const overtimeDialog = $("overtime-dialog");
function openOvertime() {
  if (overtimeDialog.open) return;
  $("overtime-error").hidden = true;
  $("overtime-body").textContent = t("ot.body", { limit: timer.limitS ? minutes(timer.limitS) : t("ot.theLimit") });
  if ($("end-dialog").open) $("end-dialog").close();
  overtimeDialog.showModal();
  $("overtime-reason").focus();
}
overtimeDialog.addEventListener("cancel", (e) => e.preventDefault()); // Esc: a reason is required
$("overtime-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const reason = $("overtime-reason").value.trim();
  if (!reason) {
    $("overtime-error").textContent = t("ot.required");
    $("overtime-error").hidden = false;
    $("overtime-reason").focus();
    return;
  }
  $("overtime-submit").disabled = true;
  const ack = await session.request("overtime", { reason });
  $("overtime-submit").disabled = false;
  if (ack.ok) {
    if (overtimeDialog.open) overtimeDialog.close();
  } else {
    $("overtime-error").textContent = t("ot.failed", { message: actionError(ack.error) });
    $("overtime-error").hidden = false;
  }
});
$("overtime-end").addEventListener("click", () => {
  $("end-error").hidden = true;
  $("end-dialog").showModal();
  $("end-cancel").focus();
});

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
  if (overtimeDialog.open) overtimeDialog.close();
});
onLangChange((value) => {
  session.setLang(value);
  render();
  if (overtimeDialog.open) $("overtime-body").textContent = t("ot.body", { limit: timer.limitS ? minutes(timer.limitS) : t("ot.theLimit") });
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
    if (overtimeDialog.open) overtimeDialog.close();
  } else {
    $("end-error").textContent = t("end.failed", { message: ack.error?.message || ack.error?.code || "?" });
    $("end-error").hidden = false;
  }
});

setInterval(renderElapsed, 1000);
render();
renderUnread();
session.start();
