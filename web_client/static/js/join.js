// The applicant's phone page (/join): full-screen rear-camera preview, the inspector small in
// a corner, a status line, big buttons for microphone / camera / photo / camera switch / chat.
// Also: the inspector's prompt and the checkpoint picker for photos (uploaded at full
// resolution over HTTP), location sharing, the signature pad, the 8.2.3 timer banner; before
// joining, the one-time code sent to the applicant's phone (when the server asks for one);
// after the end, the clause 10 rating card.

import { t, lang, bindLangToggles, onLangChange } from "./i18n.js";
import { Session, tokenFromUrl, exposeForTests } from "./session.js";
import { Overlay, bindOverlay } from "./overlay.js";
import { elapsedText, remoteNotice, statusLine } from "./presence.js";
import { playWithSound } from "./playback.js";
import { watchQuality } from "./quality.js";
import { ChatPanel } from "./chat.js";
import { SignatureSheet } from "./signature.js";
import { TimerWatch, renderBanner } from "./timer.js";
import { LocationShare } from "./geo.js";
import { newUploadId, uploadPhoto } from "./photo_upload.js";
import { hold, release, waiting } from "./photo_queue.js";
import { distance } from "./format.js";
import { DrawingOverlay } from "./drawing.js";
import { CameraControl } from "./camera_control.js";

const $ = (id) => document.getElementById(id);

const session = new Session({ token: tokenFromUrl(), lang: lang() });
watchQuality(session); // audio first: says so when a link cannot carry video
exposeForTests(session);
new DrawingOverlay(session, document.getElementById("local-video")); // the inspector's marks over the camera view
new CameraControl(session, document.getElementById("local-video"), { // torch, zoom, photo on request
  checkpoint: () => document.getElementById("photo-checkpoint")?.value || null,
});
const overlay = new Overlay($("overlay"));
// The applicant's camera is the point of the inspection: no "continue without camera".
bindOverlay(overlay, session, { allowWithout: false });
bindLangToggles();

const timer = new TimerWatch(session);
const chat = new ChatPanel(session, $("chat-sheet"));
const geo = new LocationShare(session);
let signed = null; // the last signature ack: {code, at}
const sheet = new SignatureSheet(session, {
  onsigned: (r) => {
    signed = r;
    render();
  },
});
const photo = {
  prompted: null, // {checkpoint, title} of the last prompt
  checkpoint: "", // the picker's choice
  state: "idle", // idle | uploading | done | failed
  progress: 0,
  file: null, // kept for "retry"
  message: "",
  code: "",
};
let unread = 0;
let geoDismissed = false;
let sheetRequested = false; // the inspector asked for the applicant's signature
window.takan.ui = { chat, timer, geo, sheet, photo };

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
  const live = session.state.joined && !session.final && session.state.status === "live";
  $("join-hint").hidden = !!session.final || !hasVideo || !local.videoEnabled || !session.state.joined || !!photo.prompted;
  $("btn-photo").disabled = !live || photo.state === "uploading" || !checkpoints().length;
  $("btn-chat").disabled = !session.me || !!session.final;
  $("join-side").hidden = !session.me || !!session.final;
  renderTask(live);
  renderGeo();
  renderSign();
  renderBanner($("timer-banner"), timer, "applicant");
  document.body.classList.toggle("has-banner", !$("timer-banner").hidden);
  $("overtime-chip").hidden = timer.phase !== "overtime";
  $("chat-unread").hidden = unread === 0;
  $("chat-unread").textContent = String(unread);
  renderOtp();
  renderRating();
}

function checkpoints() {
  return session.inspection?.checkpoints ?? [];
}

function titleOf(code) {
  return checkpoints().find((c) => c.code === code)?.title ?? code;
}

function renderTask(live) {
  const list = checkpoints();
  $("task").hidden = !live || !list.length;
  $("task").dataset.prompted = String(!!photo.prompted);
  $("task-prompt").hidden = !photo.prompted;
  $("task-title").textContent = photo.prompted ? photo.prompted.title || titleOf(photo.prompted.checkpoint) : "";
  const select = $("photo-checkpoint");
  const wanted = list.map((c) => c.code);
  if ([...select.options].map((o) => o.value).join("\n") !== wanted.join("\n")) {
    select.replaceChildren(...list.map((c) => {
      const o = document.createElement("option");
      o.value = c.code;
      o.textContent = c.title;
      return o;
    }));
  }
  if (!wanted.includes(photo.checkpoint)) photo.checkpoint = wanted[0] ?? "";
  select.value = photo.checkpoint;
  select.disabled = photo.state === "uploading";

  const status = $("photo-status");
  status.hidden = photo.state === "idle";
  status.dataset.tone = photo.state;
  status.classList.toggle("busy", photo.state === "uploading");
  $("photo-retry").hidden = photo.state !== "failed" || !photo.file;
  let text = "";
  if (photo.state === "uploading") text = t("photo.uploading", { pct: Math.round(photo.progress * 100) });
  else if (photo.state === "done") text = t("photo.uploaded", { title: titleOf(photo.doneCheckpoint) });
  else if (photo.state === "failed") text = photoError(photo.code, photo.message);
  $("photo-status-text").textContent = text;
}

function photoError(code, message) {
  if (code === "too_large") return t("photo.tooLarge");
  if (code === "unsupported_media_type") return t("photo.notImage");
  if (code === "overtime_reason_required") return t("photo.overtime");
  if (code === "network") return t("photo.network");
  if (code === "forbidden") return t("photo.notLive");
  return t("photo.failed", { message });
}

function renderGeo() {
  const state = geo.state;
  const chip = $("geo-chip");
  chip.dataset.state = state;
  const reply = geo.reply;
  let chipText = t("geo.off");
  if (state === "shared") {
    chipText = reply?.within_radius === true ? t("geo.onSite")
      : typeof reply?.distance_m === "number" ? t("geo.offSite", { distance: distance(reply.distance_m) }) : t("geo.shared");
    if (reply?.within_radius === false) chip.dataset.state = "far";
  } else if (state === "locating") chipText = t("geo.locating");
  $("geo-chip-text").textContent = chipText;
  chip.hidden = state === "idle";

  const card = $("geo-card");
  const showCard = !session.final && session.state.joined
    && (state === "ask" || ((state === "denied" || state === "unavailable") && !geoDismissed));
  card.hidden = !showCard;
  card.dataset.state = state;
  if (showCard) {
    $("geo-text").textContent = state === "ask" ? t("geo.why")
      : state === "denied" ? t("geo.denied") : t("geo.unavailable", { message: geo.error ?? "" });
    $("geo-allow").hidden = state !== "ask";
    $("geo-allow").textContent = t("geo.allow");
    $("geo-skip").textContent = t(state === "ask" ? "geo.skip" : "geo.ok");
  }
}

function renderSign() {
  const btn = $("btn-sign");
  btn.dataset.state = signed ? "signed" : sheetRequested ? "requested" : "none";
  $("btn-sign-text").textContent = signed ? t("sig.youSigned", { code: signed.code }) : t("sig.openButton");
  btn.hidden = !session.state.joined || session.state.status !== "live";
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

function showNotice(key, params, tone = "warn") {
  showToast(t(key, params), tone);
}

function showToast(text, tone = "warn") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.tone = tone;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

// ---- photos --------------------------------------------------------------------------------

/** A network failure (not a refusal): the photo waits on the phone and goes when the link is back. */
const OFFLINE_CODES = new Set(["network", "http_502", "http_503", "http_504"]);

async function sendPhoto(file, checkpoint, takenAt = new Date(file.lastModified || Date.now()).toISOString()) {
  photo.file = file;
  photo.fileCheckpoint = checkpoint;
  photo.state = "uploading";
  photo.progress = 0;
  render();
  const uploadId = newUploadId(); // kept with the photo if it has to wait on the phone
  const result = await uploadPhoto({
    token: session.token,
    file,
    checkpoint,
    fix: geo.recent(),
    takenAt,
    uploadId,
    onprogress: (f) => {
      photo.progress = f;
      renderTask(true);
    },
  });
  if (!result.ok && OFFLINE_CODES.has(result.code)) {
    await hold({ token: session.token, file, checkpoint, takenAt, fix: geo.recent(), uploadId });
    photo.state = "idle";
    photo.file = null;
    showNotice("photo.held");
    render();
    return;
  }
  if (result.ok) {
    photo.state = "done";
    photo.doneCheckpoint = checkpoint;
    photo.file = null;
    photo.last = { ...result.body, size: file.size };
    setTimeout(() => {
      if (photo.state === "done" && photo.last?.key === result.body?.key) {
        photo.state = "idle";
        render();
      }
    }, 8000);
  } else {
    photo.state = "failed";
    photo.code = result.code;
    photo.message = result.message;
    if (result.code === "overtime_reason_required") timer.noteRefused();
  }
  render();
}

$("btn-photo").addEventListener("click", () => {
  // The phone's own camera app: full resolution, focus, flash (a still of the video is the
  // inspector's job).
  $("photo-input").value = "";
  $("photo-input").click();
});
$("photo-input").addEventListener("change", () => {
  const file = $("photo-input").files?.[0];
  if (file) sendPhoto(file, photo.checkpoint);
});
$("photo-retry").addEventListener("click", () => {
  if (photo.file) sendPhoto(photo.file, photo.fileCheckpoint ?? photo.checkpoint);
});
$("photo-checkpoint").addEventListener("change", () => {
  photo.checkpoint = $("photo-checkpoint").value;
  render();
});

// ---- chat, signature, location, timer -------------------------------------------------------

function setChatOpen(open) {
  $("chat-sheet").hidden = !open;
  $("btn-chat").setAttribute("aria-expanded", String(open));
  if (open) {
    unread = 0;
    chat.render();
    const list = $("chat-list");
    list.scrollTop = list.scrollHeight;
  }
  render();
}
$("btn-chat").addEventListener("click", () => setChatOpen($("chat-sheet").hidden));
$("chat-close").addEventListener("click", () => setChatOpen(false));
chat.addEventListener("message", (e) => {
  const msg = e.detail;
  if (msg.mine || !$("chat-sheet").hidden) return;
  unread++;
  showToast(t("toast.chat", { role: t(`role.${msg.from}`), text: msg.text }), "info");
  render();
});

$("btn-sign").addEventListener("click", () => sheet.show(sheetRequested ? "sig.padTitleApplicant" : "sig.padTitle"));

$("geo-allow").addEventListener("click", () => geo.allow());
$("geo-skip").addEventListener("click", () => {
  if (geo.state === "ask") geo.decline();
  geoDismissed = true;
  render();
});
$("geo-chip").addEventListener("click", () => {
  if (geo.state === "denied" || geo.state === "unavailable") {
    geoDismissed = false;
    if (geo.state === "denied") geo.allow(); // asks again; the browser may refuse at once
    render();
  }
});
geo.addEventListener("change", render);
timer.addEventListener("change", render);
$("timer-banner-close").addEventListener("click", () => timer.dismiss());

session.addEventListener("server", (e) => {
  const { name, payload: p } = e.detail;
  if (name === "prompt" && p?.checkpoint) {
    photo.prompted = { checkpoint: p.checkpoint, title: p.title };
    if (photo.state !== "uploading") {
      photo.checkpoint = p.checkpoint;
      if (photo.state === "done") photo.state = "idle";
    }
    render();
    navigator.vibrate?.(200);
  } else if (name === "sign_request" && p?.role === "applicant") {
    sheetRequested = true;
    sheet.show("sig.padTitleApplicant");
    render();
  } else if (name === "captured" && p?.kind === "still") {
    showToast(t("photo.stillTaken", { title: titleOf(p.checkpoint) }), "info");
  }
});

// ---- one-time code: asked before joining (and so before the camera starts) ------------------

// msg: "" or a function giving the message in the current language
const otpUi = { busy: false, msg: "", tone: "", badCode: false, shown: false };

function renderOtp() {
  const show = !!session.otp && !session.final && !session.state.error;
  $("otp").hidden = !show;
  if (!show) {
    otpUi.shown = false;
    return;
  }
  if (!otpUi.shown) {
    otpUi.shown = true;
    otpUi.msg = "";
    $("otp-code").value = "";
    setTimeout(() => $("otp-code").focus(), 0);
  }
  const phone = session.otp.sentTo;
  $("otp-sent").textContent = phone ? t("otp.sentTo", { phone }) : t("otp.sentToPhone");
  $("otp-msg").textContent = otpUi.msg ? otpUi.msg() : "";
  $("otp-msg").dataset.tone = otpUi.tone;
  $("otp-msg").hidden = !otpUi.msg;
  $("otp-code").setAttribute("aria-invalid", String(otpUi.badCode && !!otpUi.msg));
  $("otp-submit").disabled = otpUi.busy;
  $("otp-submit").classList.toggle("busy", otpUi.busy);
  $("otp-resend").disabled = otpUi.busy;
}

/** A refusal of otp_verify / otp_send in words the applicant understands. */
function otpError(error) {
  const code = error?.code;
  const message = error?.message ?? "";
  if (code === "not_connected" || code === "timeout") return t("otp.network");
  let m = message.match(/(\d+) tries? left/);
  if (code === "bad_request" && m) return t("otp.wrong", { n: m[1] });
  if (code === "bad_request" && /not right/.test(message)) return t("otp.wrongLast");
  if (code === "bad_request" && /no valid code/.test(message)) return t("otp.expired");
  if (code === "rate_limited" && /too many/i.test(message)) return t("otp.tooMany");
  m = message.match(/sent (\d+) s ago; wait (\d+) s/);
  if (code === "rate_limited" && m) return t("otp.wait", { n: Math.max(1, Number(m[2]) - Number(m[1])) });
  return t(code === "rate_limited" ? "otp.limited" : "otp.failed", { message: message || code || "?" });
}

/** Digits only (full-width digits from a Chinese keyboard count), at most 6. */
function otpDigits(value) {
  return value.replace(/[\uFF10-\uFF19]/g, (c) => String(c.charCodeAt(0) - 0xff10)).replace(/\D/g, "").slice(0, 6);
}

async function submitOtp() {
  if (otpUi.busy || !session.otp) return;
  const code = otpDigits($("otp-code").value);
  if (code.length !== 6) {
    Object.assign(otpUi, { msg: () => t("otp.sixDigits"), tone: "bad", badCode: true });
    renderOtp();
    $("otp-code").focus();
    return;
  }
  Object.assign(otpUi, { busy: true, msg: "", tone: "", badCode: false });
  renderOtp();
  const ack = await session.verifyOtp(code);
  otpUi.busy = false;
  if (!ack.ok) {
    Object.assign(otpUi, { msg: () => otpError(ack.error), tone: "bad", badCode: ack.error?.code === "bad_request" });
    $("otp-code").select();
  }
  render();
}

$("otp-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submitOtp();
});
$("otp-code").addEventListener("input", () => {
  const el = $("otp-code");
  const digits = otpDigits(el.value);
  if (el.value !== digits) el.value = digits;
  if (otpUi.badCode && otpUi.msg) {
    otpUi.msg = "";
    renderOtp();
  }
  if (digits.length === 6) submitOtp(); // typed, pasted or filled in from the SMS
});
$("otp-resend").addEventListener("click", async () => {
  if (otpUi.busy) return;
  Object.assign(otpUi, { busy: true, msg: "", tone: "", badCode: false });
  renderOtp();
  const ack = await session.resendOtp();
  otpUi.busy = false;
  Object.assign(otpUi, ack.ok
    ? { msg: () => t("otp.resent", { phone: ack.sent_to ?? session.otp?.sentTo ?? "" }), tone: "ok" }
    : { msg: () => otpError(ack.error), tone: "bad" });
  if (ack.ok) $("otp-code").value = "";
  $("otp-code").focus();
  render();
});

// ---- rating (clause 10): once the inspection has ended ----------------------------------------

// state: idle | sending | done | already; error: "" or a function giving the message
const rating = { score: 0, state: "idle", error: "" };
const RATED_KEY = `takan.rated.${(session.token ?? "").slice(-16)}`;
try {
  if (localStorage.getItem(RATED_KEY)) rating.state = "already";
} catch { /* storage blocked: the server answers 409 if it was rated */ }
window.takan.ui.rating = rating;

function renderRating() {
  const id = overlay.spec?.id;
  const show = id === "final-ended" || id === "error-inspection_ended";
  const form = $("rating");
  form.hidden = !show;
  if (!show) return;
  const finished = rating.state === "done" || rating.state === "already";
  form.dataset.state = rating.state;
  for (const star of form.querySelectorAll(".star")) {
    const n = Number(star.dataset.score);
    star.classList.toggle("on", n <= rating.score);
    star.setAttribute("aria-checked", String(n === rating.score));
    star.tabIndex = n === (rating.score || 1) ? 0 : -1;
    star.disabled = finished || rating.state === "sending";
  }
  $("rating-stars").hidden = finished;
  $("rating-hint").hidden = finished;
  $("rating-label").hidden = finished;
  $("rating-label").textContent = rating.score ? t(`rate.s${rating.score}`) : t("rate.pick");
  $("rating-label").dataset.picked = String(!!rating.score);
  $("rating-comment").hidden = finished;
  $("rating-comment").disabled = rating.state === "sending";
  $("rating-submit").hidden = finished;
  $("rating-submit").disabled = !rating.score || rating.state === "sending";
  $("rating-submit").classList.toggle("busy", rating.state === "sending");
  $("rating-submit-text").textContent = t(rating.state === "sending" ? "rate.sending" : "rate.submit");
  $("rating-error").hidden = !rating.error || finished;
  $("rating-error").textContent = rating.error ? rating.error() : "";
  $("rating-done").hidden = !finished;
  $("rating-done").textContent = finished ? t(rating.state === "done" ? "rate.thanks" : "rate.already") : "";
}

function pickScore(score) {
  if (rating.state !== "idle") return;
  rating.score = score;
  rating.error = "";
  renderRating();
}

function rated(state) {
  rating.state = state;
  try { localStorage.setItem(RATED_KEY, "1"); } catch { /* ignore */ }
}

for (const star of $("rating").querySelectorAll(".star")) {
  star.addEventListener("click", () => pickScore(Number(star.dataset.score)));
}
$("rating-stars").addEventListener("keydown", (e) => {
  const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[e.key];
  if (!step) return;
  e.preventDefault();
  pickScore(Math.min(5, Math.max(1, (rating.score || (step > 0 ? 0 : 6)) + step)));
  $("rating").querySelector(`.star[data-score="${rating.score}"]`)?.focus();
});
$("rating").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!rating.score || rating.state !== "idle") return;
  rating.state = "sending";
  rating.error = "";
  renderRating();
  const comment = $("rating-comment").value.trim();
  try {
    const response = await fetch("/api/v1/session/rating", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Takan-Token": session.token },
      body: JSON.stringify(comment ? { score: rating.score, comment } : { score: rating.score }),
      cache: "no-store",
    });
    if (response.status === 201) rated("done");
    else if (response.status === 409) rated("already");
    else {
      let detail = "";
      try { detail = (await response.json())?.detail ?? ""; } catch { /* not a problem document */ }
      rating.state = "idle";
      rating.error = () => t("rate.failed", { message: detail || `HTTP ${response.status}` });
    }
  } catch {
    rating.state = "idle";
    rating.error = () => t("rate.network");
  }
  renderRating();
});

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
session.addEventListener("otp", render);
session.addEventListener("fatal", render);
session.addEventListener("final", () => {
  $("remote-video").srcObject = null;
  $("local-video").srcObject = null;
  wakeLock?.release().catch(() => {});
  setChatOpen(false);
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

// ---- photos kept on the phone while the network was down ---------------------------------

let flushing = false;
async function flushHeld() {
  if (flushing || !navigator.onLine) return;
  flushing = true;
  try {
    for (const entry of await waiting(session.token)) {
      const result = await uploadPhoto({ token: entry.token, file: entry.file, checkpoint: entry.checkpoint,
                                         fix: entry.fix, takenAt: entry.takenAt, held: true, uploadId: entry.uploadId });
      if (result.ok) {
        await release(entry.id);
        showNotice("photo.heldSent", {}, "ok");
      } else if (!OFFLINE_CODES.has(result.code)) {
        await release(entry.id); // refused for good (e.g. the inspection ended): say so
        photo.state = "failed";
        photo.code = result.code;
        photo.message = result.message;
        render();
      } else {
        break; // still offline
      }
    }
  } catch (err) {
    console.warn("takan: held photos", err);
  } finally {
    flushing = false;
  }
}
addEventListener("online", flushHeld);
session.addEventListener("joined", flushHeld);
setInterval(flushHeld, 10000);
