// The auditor's replay page (/audit): a staff login (the session cookie) or an API key (kept
// in sessionStorage only), finding inspections, and for one inspection its verification
// report, the recorded video with the event timeline beside it (clicking an event seeks
// there), and the sealed manifest and its signature to download. A logged-in staff member's
// requests carry the cookie; otherwise every request carries `Authorization: Bearer <key>`.

import { t, lang, bindLangToggles, onLangChange, applyI18n } from "./i18n.js";
import { bytes, clock, coords, count, dateTime, distance, timeOfDay } from "./format.js";
import { Replay, segmentAt } from "./replay.js";
import { currentStaff, loginUrl, mountStaffBar } from "./staff.js";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "takan.auditKey";
const PAGE_SIZE = 50;

/** Event types hidden unless "show all" is ticked (many, and of little interest alone). */
const QUIET = new Set(["media.segment", "participant.media", "signature.strokes"]);
/** Event types with an image object to show as a thumbnail. */
const IMAGES = new Set(["still.captured", "photo.uploaded", "signature.signed"]);
/** Event types marked on the scrubber. */
const MARKS = { "still.captured": "still", "photo.uploaded": "photo", "signature.signed": "signature", note: "note", "timer.warning": "timer", "timer.final_warning": "timer", "timer.limit": "timer" };

const ui = {
  view: null,
  staff: null, // {user, permissions} when a staff member is logged in (the cookie is used)
  list: { items: [], cursor: null, query: null },
  detail: null, // {id, record, manifest, events, report, tracks}
  replay: null,
  thumbs: new Map(), // key -> Promise<objectURL>
};
window.takanAudit = ui;

bindLangToggles();

// ---- the API -------------------------------------------------------------------------------

function apiKey() {
  try { return sessionStorage.getItem(KEY_STORAGE); } catch { return null; }
}

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function api(path, as = "json") {
  const key = apiKey();
  if (!ui.staff && !key) throw new ApiError(401, "unauthorized", "no API key");
  // Logged in: the session cookie goes along (same origin) and no key is sent.
  const init = ui.staff
    ? { credentials: "same-origin", cache: "no-store" }
    : { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", String(err?.message ?? err));
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not a problem document */ }
    const code = typeof body?.type === "string" ? body.type.split("/").pop() : `http_${response.status}`;
    const error = new ApiError(response.status, code, body?.detail || response.statusText);
    if (response.status === 401) {
      if (ui.staff) staffEnded(t("staff.sessionExpired"));
      else logout(t("audit.keyRejected"));
    }
    throw error;
  }
  if (as === "json") return response.json();
  if (as === "text") return response.text();
  return response.blob();
}

const inspectionPath = (id) => `/api/v1/inspections/${encodeURIComponent(id)}`;
const objectPath = (id, key) => `${inspectionPath(id)}/objects/${key.split("/").map(encodeURIComponent).join("/")}`;

function errorText(err) {
  if (err?.code === "network") return t("audit.networkError");
  return t("audit.apiError", { message: err?.message ?? String(err) });
}

// ---- views and routing -----------------------------------------------------------------------

function show(view) {
  ui.view = view;
  for (const name of ["login", "list", "detail"]) $(`view-${name}`).hidden = name !== view;
  const key = ui.staff ? null : apiKey();
  $("key-state").hidden = !key;
  $("btn-logout").hidden = !key;
  if (key) $("key-hint").textContent = `••••${key.slice(-4)}`;
  if (view !== "detail") $("audit-case-top").textContent = "";
}

function route() {
  if (!ui.staff && !apiKey()) {
    stopReplay();
    show("login");
    $("staff-login").href = loginUrl();
    return;
  }
  const m = location.hash.match(/^#\/i\/(.+)$/);
  if (m) openInspection(decodeURIComponent(m[1]));
  else {
    stopReplay();
    show("list");
    if (!ui.list.query) search();
  }
}

function logout(message) {
  try { sessionStorage.removeItem(KEY_STORAGE); } catch { /* ignore */ }
  ui.list = { items: [], cursor: null, query: null };
  stopReplay();
  show("login");
  $("staff-login").href = loginUrl();
  $("login-error").textContent = message ?? "";
  $("login-error").hidden = !message;
}

/** The staff session ended (logged out, expired): back to the choice of login or key. */
function staffEnded(message) {
  ui.staff = null;
  $("staff-bar").hidden = true;
  $("staff-bar").replaceChildren();
  logout(message);
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  try { sessionStorage.setItem(KEY_STORAGE, key); } catch { /* private mode: the key lives for this page only */ }
  $("login-error").hidden = true;
  $("api-key").value = "";
  route();
});
$("btn-logout").addEventListener("click", () => {
  logout(null);
  location.hash = "";
});
addEventListener("hashchange", route);

// ---- the list ------------------------------------------------------------------------------

function localDay(value, addDays = 0) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + addDays).toISOString();
}

function currentQuery() {
  const q = new URLSearchParams();
  const caseNo = $("f-case").value.trim();
  if (caseNo) q.set("case_no", caseNo);
  if ($("f-status").value) q.set("status", $("f-status").value);
  if ($("f-from").value) q.set("from", localDay($("f-from").value));
  if ($("f-to").value) q.set("to", localDay($("f-to").value, 1));
  q.set("limit", String(PAGE_SIZE));
  return q;
}

async function search(more = false) {
  const q = more ? new URLSearchParams(ui.list.query) : currentQuery();
  if (more && ui.list.cursor) q.set("cursor", ui.list.cursor);
  if (!more) ui.list = { items: [], cursor: null, query: q.toString() };
  $("list-error").hidden = true;
  $("f-search").disabled = true;
  $("list-more").disabled = true;
  try {
    const page = await api(`/api/v1/inspections?${q}`);
    ui.list.items.push(...(page.items ?? []));
    ui.list.cursor = page.next_cursor ?? null;
  } catch (err) {
    if (err.status !== 401) {
      $("list-error").textContent = errorText(err);
      $("list-error").hidden = false;
    }
  } finally {
    $("f-search").disabled = false;
    $("list-more").disabled = false;
  }
  renderList();
}

function renderList() {
  const body = $("list-body");
  body.replaceChildren(...ui.list.items.map((r) => {
    const tr = document.createElement("tr");
    tr.className = "list-row";
    tr.dataset.id = r.id;
    tr.tabIndex = 0;
    const cells = [
      r.case_no ?? "—",
      r.item_name ?? "—",
      null,
      dateTime(r.started_at),
      dateTime(r.ended_at),
      typeof r.duration_s === "number" ? clock(r.duration_s * 1000) : "—",
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 2) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.dataset.status = r.status;
        badge.textContent = t(`status.${r.status}`);
        td.append(badge);
      } else {
        td.textContent = text;
      }
      if (i === 0) td.className = "mono";
      tr.append(td);
    });
    const open = () => { location.hash = `#/i/${encodeURIComponent(r.id)}`; };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return tr;
  }));
  $("list-empty").hidden = ui.list.items.length > 0;
  $("list-empty").textContent = t("audit.noResults");
  $("list-more").hidden = !ui.list.cursor;
}

$("filter-form").addEventListener("submit", (e) => {
  e.preventDefault();
  search();
});
$("f-reset").addEventListener("click", () => {
  $("filter-form").reset();
  search();
});
$("list-more").addEventListener("click", () => search(true));

// ---- one inspection --------------------------------------------------------------------------

function stopReplay() {
  ui.replay?.destroy();
  ui.replay = null;
  for (const url of ui.thumbs.values()) url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  ui.thumbs.clear();
}

async function openInspection(id) {
  if (ui.detail?.id === id && ui.view === "detail") return;
  stopReplay();
  show("detail");
  ui.detail = { id, record: null, manifest: null, events: [], report: null, tracks: {} };
  $("detail-error").hidden = true;
  $("timeline").replaceChildren();
  $("d-facts").replaceChildren();
  $("d-checkpoints").replaceChildren();
  $("objects-body").replaceChildren();
  $("player-main").replaceChildren();
  $("player-pip").replaceChildren($("player-pip").firstElementChild);
  setVerify("pending");
  renderHead();
  const detail = ui.detail;
  const [record, manifest, log, report] = await Promise.allSettled([
    api(inspectionPath(id)),
    api(`${inspectionPath(id)}/manifest`),
    api(objectPath(id, "events.jsonl"), "text"),
    api(`${inspectionPath(id)}/verification`),
  ]);
  if (ui.detail !== detail) return; // another inspection was opened meanwhile
  if (record.status === "rejected") {
    $("detail-error").textContent = errorText(record.reason);
    $("detail-error").hidden = false;
    setVerify("error");
    return;
  }
  detail.record = record.value;
  detail.manifest = manifest.status === "fulfilled" ? manifest.value : null;
  detail.events = log.status === "fulfilled" ? parseLog(log.value) : [];
  detail.report = report.status === "fulfilled" ? report.value : null;
  if (report.status === "rejected") detail.reportError = report.reason;
  const open = ["scheduled", "live"].includes(detail.record.status);
  if (log.status === "rejected" && !(open && log.reason?.status === 404)) {
    $("detail-error").textContent = t("audit.noLog", { message: errorText(log.reason) });
    $("detail-error").hidden = false;
  }
  detail.tracks = tracksOf(detail.manifest, detail.events);
  detail.origin = Date.parse(detail.record.started_at ?? "") || (detail.events[0] ? Date.parse(detail.events[0].at) : 0);
  renderHead();
  renderVerify();
  renderFacts();
  renderObjects();
  startReplay();
  renderTimeline();
}

function parseLog(text) {
  const events = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try { events.push(JSON.parse(line)); } catch { /* a broken line: verification names it */ }
  }
  return events;
}

/** {track: [{key, start, end}]} from the manifest's media objects (or the log before sealing). */
function tracksOf(manifest, events) {
  const tracks = {};
  const add = (key, start, end) => {
    const m = key.match(/^media\/([^/]+)\/[^/]+$/);
    const s = Date.parse(start);
    const e = Date.parse(end);
    if (!m || Number.isNaN(s) || Number.isNaN(e) || e <= s) return;
    (tracks[m[1]] ??= []).push({ key, start: s, end: e });
  };
  if (manifest?.objects) {
    for (const o of manifest.objects) if (o.kind === "media") add(o.key, o.start, o.end);
  } else {
    for (const ev of events) if (ev.type === "media.segment") add(ev.data?.key ?? "", ev.data?.wall_start, ev.data?.wall_end);
  }
  return tracks;
}

function renderHead() {
  const r = ui.detail?.record;
  $("d-case").textContent = r?.case_no ?? "…";
  $("d-item").textContent = r?.item_name ?? "";
  $("d-status").dataset.status = r?.status ?? "";
  $("d-status").textContent = r ? t(`status.${r.status}`) : "";
  $("d-status").hidden = !r;
  $("audit-case-top").textContent = r ? `${t("info.caseNo")} ${r.case_no}` : "";
  renderReview();
}

function setVerify(state) {
  $("verify").dataset.state = state;
  if (state === "pending") {
    $("verify-title").textContent = t("ver.pending");
    $("verify-detail").textContent = "";
    $("verify-problems").hidden = true;
  }
}

function renderVerify() {
  const d = ui.detail;
  const report = d?.report;
  const problems = $("verify-problems");
  problems.hidden = true;
  if (report && !report.ok && !d.manifest && ["scheduled", "live", "interrupted"].includes(d.record?.status)) {
    // Not sealed yet: nothing is wrong, there is just nothing to verify before the end.
    setVerify("open");
    $("verify-title").textContent = t("ver.open");
    $("verify-detail").textContent = t("ver.openDetail", { status: t(`status.${d.record.status}`) });
  } else if (!report) {
    setVerify("error");
    $("verify-title").textContent = t("ver.unavailable");
    $("verify-detail").textContent = d?.reportError ? errorText(d.reportError) : "";
  } else if (report.ok) {
    setVerify("ok");
    $("verify-title").textContent = t("ver.ok");
    const extra = [];
    if (report.sm2_key_id) extra.push(t("ver.sm2", { kid: report.sm2_key_id }));
    if (report.timestamp === "pending") extra.push(t("ver.tsaPending"));
    else if (report.timestamp) extra.push(t("ver.tsaAt", { at: report.timestamp }));
    $("verify-detail").textContent = [t("ver.okDetail", {
      kid: report.key_id ?? "—",
      objects: count(report.objects_checked ?? 0),
      events: count(report.events_checked ?? 0),
    }), ...extra].join(" · ");
  } else {
    setVerify("bad");
    $("verify-title").textContent = t("ver.bad");
    $("verify-detail").textContent = t("ver.firstProblem", { problem: report.first_problem ?? "?" });
    const list = report.problems ?? [];
    if (list.length > 1) {
      problems.replaceChildren(...list.slice(1, 21).map((p) => {
        const li = document.createElement("li");
        li.textContent = `${p.where}: ${p.message}`;
        return li;
      }));
      problems.hidden = false;
    }
  }
  const sealed = !!d?.manifest;
  $("dl-manifest").disabled = !sealed;
  $("dl-signature").disabled = !sealed;
  $("dl-events").disabled = !d?.events.length;
}

function renderFacts() {
  const r = ui.detail?.record;
  if (!r) return;
  const m = ui.detail.manifest;
  const rows = [
    ["info.caseNo", r.case_no],
    ["info.item", r.item_name],
    ["audit.applicant", [r.applicant?.name, r.applicant?.contact_name].filter(Boolean).join(" · ")],
    ["info.address", r.site?.address],
    ["audit.scheduled", dateTime(r.scheduled_at)],
    ["audit.started", dateTime(r.started_at)],
    ["audit.ended", dateTime(r.ended_at)],
    ["audit.duration", typeof r.duration_s === "number" ? clock(r.duration_s * 1000) : "—"],
    ["audit.verdict", verdictText(r.verdict)],
    ["audit.sealedAt", m ? dateTime(m.sealed_at) : t("audit.notSealed")],
    ["audit.merkleRoot", m?.merkle?.root ?? "—"],
    ["audit.logHead", m?.log?.head ?? "—"],
  ];
  $("d-facts").replaceChildren(...rows.flatMap(([key, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value || "—";
    if (key === "audit.merkleRoot" || key === "audit.logHead") dd.className = "mono small";
    return [dt, dd];
  }));
  const checkpoints = r.checkpoints ?? [];
  $("d-checkpoints").replaceChildren(...checkpoints.map((c) => {
    const li = document.createElement("li");
    li.dataset.state = c.captured ? "captured" : "pending";
    const mark = document.createElement("span");
    mark.className = "chk-mark";
    mark.textContent = c.captured ? "✓" : "";
    const title = document.createElement("span");
    title.className = "chk-title";
    title.textContent = c.title;
    const tag = document.createElement("span");
    tag.className = `chk-tag${c.required ? " required" : ""}`;
    tag.textContent = t(c.required ? "chk.required" : "chk.optional");
    const n = document.createElement("span");
    n.className = "chk-count";
    n.textContent = c.captured ? t("chk.captured", { n: (c.evidence ?? []).length }) : t("chk.pending");
    li.append(mark, title, tag, n);
    return li;
  }));
  if (!checkpoints.length) {
    const li = document.createElement("li");
    li.textContent = t("chk.empty");
    $("d-checkpoints").replaceChildren(li);
  }
}

const OUTCOMES = { pass: "audit.outcomePass", fail: "audit.outcomeFail", manual_review: "audit.outcomeManual" };

function verdictText(verdict) {
  if (!verdict) return "—";
  const key = OUTCOMES[verdict.outcome];
  const reasons = Array.isArray(verdict.reasons) ? verdict.reasons.map((r) => r?.message ?? r?.code ?? String(r)) : [];
  return [key ? t(key) : String(verdict.outcome ?? "?"), ...reasons].join(" · ");
}

function renderObjects() {
  const objects = ui.detail?.manifest?.objects ?? [];
  $("objects-summary").textContent = t("audit.objects", { n: objects.length });
  $("objects-body").replaceChildren(...objects.map((o) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[o.key, "mono"], [o.kind, ""], [bytes(o.size), "num"], [o.sha256?.slice(0, 16) + "…", "mono small"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.title = o.sha256 ?? "";
    return tr;
  }));
}

// ---- replay ----------------------------------------------------------------------------------

function startReplay() {
  const d = ui.detail;
  const audio = document.createElement("div");
  audio.hidden = true;
  $("player-main").replaceChildren(audio);
  const replay = new Replay({
    main: $("player-main"),
    pip: $("player-pip"),
    audio,
    fetchBlob: (key) => api(objectPath(d.id, key), "blob"),
  });
  ui.replay = replay;
  const names = replay.load(d.tracks);
  d.trackNames = names;
  replay.setMuted(true);
  $("player-pip").hidden = !names.pip;
  replay.addEventListener("tick", renderTransport);
  replay.addEventListener("state", renderTransport);
  renderScrub();
  renderTransport();
  renderTracksNote();
  // Start where the main picture starts (the inspector usually joins, and records, first).
  if (names.main) replay.seek(d.tracks[names.main][0].start);
  renderTransport();
}

function trackLabel(name) {
  return t(`track.${name.replace(/-(\w)/g, (_, c) => c.toUpperCase())}`);
}

function renderTracksNote() {
  const names = ui.detail?.trackNames;
  if (!names) return;
  const label = trackLabel;
  const parts = [];
  if (names.main) parts.push(t("audit.trackMain", { track: label(names.main) }));
  if (names.pip) parts.push(t("audit.trackPip", { track: label(names.pip) }));
  parts.push(names.audio.length ? t("audit.trackAudio", { tracks: names.audio.map(label).join("、") }) : t("audit.noAudio"));
  $("tracks-note").textContent = parts.join(" · ");
}

function segmentAtPos(player, pos) {
  return segmentAt(player.segments, pos);
}

/** Time of an event on the session's clock ("+mm:ss"). */
function sinceStart(ms) {
  const origin = ui.detail?.origin ?? 0;
  const d = ms - origin;
  return (d < 0 ? "−" : "+") + clock(Math.abs(d));
}

function renderTransport() {
  const r = ui.replay;
  if (!r) return;
  $("btn-play").classList.toggle("playing", r.playing);
  $("btn-play").disabled = !r.players.length;
  $("btn-play").setAttribute("aria-label", t(r.playing ? "audit.pause" : "audit.play"));
  // Times count from the session's start, like the timeline's.
  $("t-pos").textContent = sinceStart(r.position).replace("+", "");
  $("t-total").textContent = sinceStart(r.end).replace("+", "");
  const main = r.mainPlayer;
  const gap = !main || main.index < 0 && segmentAtPos(main, r.position) < 0;
  $("player-notice").hidden = !gap;
  $("player-notice").textContent = !main ? t("audit.noVideo") : t("audit.noMainNow", { track: trackLabel(main.name) });
  $("player-wall").textContent = r.players.length ? `${timeOfDay(r.position)} · ${sinceStart(r.position)}` : "";
  const input = $("scrub-input");
  if (!input.matches(":active")) input.value = String(r.duration ? Math.round(((r.position - r.start) / r.duration) * 1000) : 0);
  $("btn-sound").textContent = t(r.muted ? "audit.soundOn" : "audit.soundOff");
  $("btn-sound").setAttribute("aria-pressed", String(!r.muted));
  $("btn-sound").disabled = !ui.detail?.trackNames?.audio.length;
  highlightCurrent();
}

/** The recorded spans of the main track and the event marks, drawn under the slider. */
function renderScrub() {
  const r = ui.replay;
  const d = ui.detail;
  const frac = (ms) => `${(((ms - r.start) / (r.duration || 1)) * 100).toFixed(3)}%`;
  const main = d.trackNames?.main ? d.tracks[d.trackNames.main] : [];
  $("scrub-segments").replaceChildren(...main.map((s) => {
    const span = document.createElement("span");
    span.style.left = frac(s.start);
    span.style.width = `${(((s.end - s.start) / (r.duration || 1)) * 100).toFixed(3)}%`;
    return span;
  }));
  $("scrub-marks").replaceChildren(...d.events.filter((ev) => MARKS[ev.type]).map((ev) => {
    const mark = document.createElement("button");
    mark.type = "button";
    mark.className = `scrub-mark mark-${MARKS[ev.type]}`;
    mark.style.left = frac(Math.min(Math.max(eventTime(ev), r.start), r.end));
    mark.title = `${sinceStart(eventTime(ev))} ${t(`ev.${ev.type}`)}`;
    mark.tabIndex = -1;
    mark.addEventListener("click", () => selectEvent(ev.seq, true));
    return mark;
  }));
}

$("btn-play").addEventListener("click", () => ui.replay?.toggle());
$("scrub-input").addEventListener("input", () => {
  const r = ui.replay;
  if (r) r.seek(r.start + (Number($("scrub-input").value) / 1000) * r.duration);
});
$("speed").addEventListener("change", () => ui.replay?.setRate(Number($("speed").value)));
$("btn-sound").addEventListener("click", () => {
  const r = ui.replay;
  if (!r) return;
  r.setMuted(!r.muted);
  renderTransport();
});
addEventListener("keydown", (e) => {
  if (ui.view !== "detail" || e.target.closest("input, select, textarea, button")) return;
  if (e.key === " ") {
    e.preventDefault();
    ui.replay?.toggle();
  }
});

// ---- the event timeline ----------------------------------------------------------------------

/** The moment an event shows: a still's frame time, else when it was logged. */
function eventTime(ev) {
  const captured = ev.type === "still.captured" ? Date.parse(ev.data?.captured_at ?? "") : NaN;
  return Number.isNaN(captured) ? Date.parse(ev.at) : captured;
}

function titleOf(code) {
  return ui.detail?.record?.checkpoints?.find((c) => c.code === code)?.title ?? code ?? "";
}

function onOff(on) {
  return t(on ? "audit.on" : "audit.off");
}

function summary(ev) {
  const d = ev.data ?? {};
  switch (ev.type) {
    case "participant.joined":
    case "participant.left":
    case "participant.reconnected":
      return d.id && d.id !== ev.actor ? d.id : "";
    case "participant.media":
      return t("audit.mediaFlags", { audio: onOff(d.audio), video: onOff(d.video) });
    case "session.live":
      return d.previous && d.previous !== "scheduled" ? t("audit.resumedFrom", { status: t(`status.${d.previous}`) }) : "";
    case "session.ended":
    case "session.cancelled":
    case "session.interrupted":
      return d.reason ?? "";
    case "checkpoint.prompted":
      return titleOf(d.checkpoint);
    case "still.captured":
      return [titleOf(d.checkpoint), d.width && d.height ? `${d.width}×${d.height}` : "", bytes(d.size)].filter(Boolean).join(" · ");
    case "photo.uploaded":
      return [titleOf(d.checkpoint), bytes(d.size),
        d.taken_at ? t("audit.takenAt", { time: timeOfDay(d.taken_at) }) : "",
        typeof d.lat === "number" ? coords(d.lat, d.lon) : ""].filter(Boolean).join(" · ");
    case "note":
      return (d.checkpoint ? `[${titleOf(d.checkpoint)}] ` : "") + (d.text ?? "");
    case "chat":
      return d.text ?? "";
    case "location.updated": {
      const parts = [];
      if (typeof d.distance_m === "number") parts.push(t("loc.distance", { distance: distance(d.distance_m) }));
      if (d.within_radius === true) parts.push(t("loc.within"));
      if (d.within_radius === false) parts.push(t("loc.outside"));
      if (typeof d.accuracy_m === "number") parts.push(`±${distance(d.accuracy_m)}`);
      parts.push(coords(d.lat, d.lon));
      return parts.join(" · ");
    }
    case "signature.requested":
      return t(`role.${d.role}`);
    case "signature.strokes":
    case "signature.signed":
      return `${t(`role.${d.role}`)} · ${t("sig.code")} ${d.code ?? "—"}`;
    case "timer.warning":
    case "timer.final_warning":
    case "timer.limit":
      return t("audit.timerAt", { elapsed: clock((d.elapsed_s ?? 0) * 1000), limit: clock((d.limit_s ?? 0) * 1000) });
    case "timer.overtime_reason":
      return d.reason ?? "";
    case "media.segment":
      return `${d.track} #${d.seq} · ${((d.duration_ms ?? 0) / 1000).toFixed(1)} s${d.width ? ` · ${d.width}×${d.height}` : ""}`;
    default:
      return "";
  }
}

function renderTimeline() {
  const d = ui.detail;
  if (!d) return;
  const all = $("show-all").checked;
  const shown = d.events.filter((ev) => all || !QUIET.has(ev.type));
  const items = shown.map((ev) => {
    const li = document.createElement("li");
    li.className = "ev";
    li.dataset.type = ev.type;
    li.dataset.group = ev.type.split(".")[0];
    li.dataset.seq = String(ev.seq);
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    const time = document.createElement("time");
    time.className = "ev-time";
    time.textContent = sinceStart(eventTime(ev));
    time.title = ev.at;
    const body = document.createElement("div");
    body.className = "ev-body";
    const head = document.createElement("div");
    head.className = "ev-head";
    const type = document.createElement("span");
    type.className = "ev-type";
    type.textContent = t(`ev.${ev.type}`) !== `ev.${ev.type}` ? t(`ev.${ev.type}`) : ev.type;
    const actor = document.createElement("span");
    actor.className = "ev-actor";
    actor.textContent = actorName(ev.actor);
    head.append(type, actor);
    body.append(head);
    const text = summary(ev);
    if (text) {
      const s = document.createElement("div");
      s.className = "ev-summary";
      s.textContent = text;
      body.append(s);
    }
    if (IMAGES.has(ev.type) && ev.data?.key) {
      const img = document.createElement("img");
      img.className = "ev-thumb";
      img.alt = `${t(`ev.${ev.type}`)} ${ev.data.key}`;
      img.dataset.key = ev.data.key;
      body.append(img);
      lazyThumb(img);
    }
    li.append(time, body);
    li.addEventListener("click", () => selectEvent(ev.seq, true));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        selectEvent(ev.seq, true);
      }
    });
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "ev-empty";
    li.textContent = t("audit.noEvents");
    items.push(li);
  }
  $("timeline").replaceChildren(...items);
  ui.currentSeq = null;
  highlightCurrent();
}

function actorName(actor) {
  if (!actor) return "";
  if (actor.startsWith("api:")) return t("audit.actorApi", { id: actor.slice(4) });
  const key = `role.${actor}`;
  const name = t(key);
  return name === key ? t(`actor.${actor}`) !== `actor.${actor}` ? t(`actor.${actor}`) : actor : name;
}

const thumbObserver = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    thumbObserver.unobserve(entry.target);
    loadThumb(entry.target);
  }
}, { rootMargin: "200px" }) : null;

function lazyThumb(img) {
  if (thumbObserver) thumbObserver.observe(img);
  else loadThumb(img);
}

function loadThumb(img) {
  const d = ui.detail;
  const key = img.dataset.key;
  let url = ui.thumbs.get(key);
  if (!url) {
    url = api(objectPath(d.id, key), "blob").then((blob) => URL.createObjectURL(blob));
    ui.thumbs.set(key, url);
  }
  url.then((u) => { img.src = u; }).catch(() => {
    img.replaceWith(Object.assign(document.createElement("span"), { className: "ev-thumb-missing", textContent: t("audit.thumbMissing") }));
  });
}

function selectEvent(seq, seek) {
  const d = ui.detail;
  const ev = d?.events.find((e) => e.seq === seq);
  if (!ev) return;
  if (seek && ui.replay) ui.replay.seek(eventTime(ev));
  ui.selectedSeq = seq;
  for (const li of $("timeline").querySelectorAll(".ev.selected")) li.classList.remove("selected");
  $("timeline").querySelector(`.ev[data-seq="${seq}"]`)?.classList.add("selected");
}

/** Mark the last shown event at or before the playback position. */
function highlightCurrent() {
  const r = ui.replay;
  const d = ui.detail;
  if (!r || !d) return;
  let current = null;
  for (const li of $("timeline").children) {
    const ev = d.events.find((e) => String(e.seq) === li.dataset.seq);
    if (!ev) continue;
    if (eventTime(ev) <= r.position + 250) current = li;
    else break;
  }
  const seq = current?.dataset.seq ?? null;
  if (seq === ui.currentSeq) return;
  ui.currentSeq = seq;
  for (const li of $("timeline").querySelectorAll(".ev.current")) li.classList.remove("current");
  if (current) {
    current.classList.add("current");
    if (r.playing) keepInView($("timeline"), current);
  }
}

/** Scroll `list` (only it, never the page) so that `item` is visible. */
function keepInView(list, item) {
  const top = item.offsetTop; // the list is positioned: offsets are within it
  if (top < list.scrollTop) list.scrollTop = top - 8;
  else if (top + item.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = top + item.offsetHeight - list.clientHeight + 8;
}

$("show-all").addEventListener("change", renderTimeline);

// ---- downloads -------------------------------------------------------------------------------

async function download(path, name) {
  try {
    const blob = await api(path, "blob");
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    $("detail-error").textContent = errorText(err);
    $("detail-error").hidden = false;
  }
}

$("dl-manifest").addEventListener("click", () => download(`${inspectionPath(ui.detail.id)}/manifest`, `${ui.detail.id}-manifest.json`));
$("dl-signature").addEventListener("click", () => download(`${inspectionPath(ui.detail.id)}/manifest.sig`, `${ui.detail.id}-manifest.json.sig`));
$("dl-events").addEventListener("click", () => download(objectPath(ui.detail.id, "events.jsonl"), `${ui.detail.id}-events.jsonl`));
$("back-link").addEventListener("click", (e) => {
  e.preventDefault();
  location.hash = "";
});

// ---- verdict and review (5.6) ---------------------------------------------------------------

// error: "" or a function giving the message in the current language
const review = { forId: null, busy: false, error: "" };

/** POST JSON with the page's credentials (the staff cookie, or the API key); throws ApiError. */
async function apiPost(path, json) {
  const key = ui.staff ? null : apiKey();
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: JSON.stringify(json), credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network", String(err?.message ?? err));
  }
  let body = null;
  try { body = await response.json(); } catch { /* empty or not JSON */ }
  if (!response.ok) {
    const code = typeof body?.type === "string" ? body.type.split("/").pop() : `http_${response.status}`;
    const fields = Array.isArray(body?.errors) ? body.errors.map((e) => `${e.field} ${e.message}`).join("; ") : "";
    throw new ApiError(response.status, code, [body?.detail || response.statusText, fields].filter(Boolean).join(": "));
  }
  return body;
}

function outcomeName(outcome) {
  return OUTCOMES[outcome] ? t(OUTCOMES[outcome]) : String(outcome ?? "?");
}

function renderReview() {
  const d = ui.detail;
  const r = d?.record;
  const verdict = r?.verdict;
  const card = $("review");
  card.hidden = !verdict || !["judged", "reviewed"].includes(r.status);
  if (card.hidden) return;
  if (review.forId !== d.id) {
    // another inspection: a fresh form
    Object.assign(review, { forId: d.id, busy: false, error: "" });
    $("review-form").reset();
  }
  const judged = r.status === "judged";
  const needed = judged && verdict.outcome === "manual_review";
  card.dataset.needed = String(needed);
  $("review-outcome").dataset.outcome = verdict.outcome ?? "";
  $("review-outcome").textContent = outcomeName(verdict.outcome);
  $("review-meta").textContent = verdict.rules_version || verdict.decided_at
    ? t("review.rulesVersion", { version: verdict.rules_version ?? "—", time: dateTime(verdict.decided_at) }) : "";
  $("review-note").hidden = !judged;
  $("review-note").dataset.needed = String(needed);
  $("review-note").textContent = judged ? t(needed ? "review.needed" : "review.optional") : "";

  const reasons = Array.isArray(verdict.reasons) ? verdict.reasons : [];
  $("review-reasons").replaceChildren(...(reasons.length ? reasons.map((reason) => {
    const li = document.createElement("li");
    li.className = "reason";
    li.dataset.severity = reason?.severity ?? "";
    const sev = document.createElement("span");
    sev.className = "reason-sev";
    const sevKey = `review.severity.${reason?.severity}`;
    sev.textContent = t(sevKey) === sevKey ? String(reason?.severity ?? "—") : t(sevKey);
    const msg = document.createElement("span");
    msg.className = "reason-msg";
    msg.textContent = (lang() === "en" ? reason?.message_en || reason?.message : reason?.message || reason?.message_en) ?? String(reason);
    const rule = document.createElement("span");
    rule.className = "reason-rule mono";
    rule.textContent = reason?.rule ?? "";
    li.append(sev, msg, rule);
    return li;
  }) : [Object.assign(document.createElement("li"), { className: "reasons-empty", textContent: t("review.noReasons") })]));

  const done = verdict.review;
  $("review-result").hidden = !done;
  if (done) {
    $("review-result").dataset.outcome = done.outcome ?? "";
    $("review-result-title").textContent = t("review.done", { outcome: outcomeName(done.outcome) });
    $("review-result-meta").textContent = t("review.by", { reviewer: actorName(done.reviewer ?? ""), time: dateTime(done.at) });
    $("review-result-comment").textContent = done.comment ?? "";
    $("review-result-comment").hidden = !done.comment;
  }
  $("review-form").hidden = !judged;
  $("review-submit").disabled = review.busy;
  $("review-submit").classList.toggle("busy", review.busy);
  $("review-submit-text").textContent = t(review.busy ? "review.submitting" : "review.submit");
  $("review-error").textContent = review.error ? review.error() : "";
  $("review-error").hidden = !review.error;
}

$("review-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = ui.detail;
  if (!d?.record || review.busy) return;
  const outcome = $("review-form").querySelector("input[name='review-outcome']:checked")?.value;
  if (!outcome) {
    review.error = () => t("review.pick");
    renderReview();
    return;
  }
  const comment = $("review-comment").value.trim();
  Object.assign(review, { busy: true, error: "" });
  renderReview();
  try {
    const result = await apiPost(`${inspectionPath(d.id)}/review`, { outcome, comment });
    if (ui.detail !== d) return;
    d.record = { ...d.record, status: result.status ?? "reviewed", verdict: result.verdict ?? d.record.verdict };
    review.busy = false;
    renderHead();
    renderFacts();
    refreshSealed(d);
  } catch (err) {
    review.busy = false;
    review.error = () => (err.status === 403 ? t("review.forbidden", { message: err.message })
      : err.code === "network" ? t("audit.networkError") : t("review.failed", { message: err.message }));
    renderReview();
  }
});

/** A review is logged and re-sealed: fetch the log, the manifest and the verification again. */
async function refreshSealed(d) {
  const [manifest, log, report] = await Promise.allSettled([
    api(`${inspectionPath(d.id)}/manifest`),
    api(objectPath(d.id, "events.jsonl"), "text"),
    api(`${inspectionPath(d.id)}/verification`),
  ]);
  if (ui.detail !== d) return;
  if (manifest.status === "fulfilled") d.manifest = manifest.value;
  if (log.status === "fulfilled") d.events = parseLog(log.value);
  if (report.status === "fulfilled") d.report = report.value;
  renderVerify();
  renderFacts();
  renderObjects();
  renderTimeline();
  if (ui.replay) renderScrub();
}

// ---- language ----------------------------------------------------------------------------------

onLangChange(() => {
  applyI18n();
  if (ui.view === "list") renderList();
  if (ui.view === "detail" && ui.detail?.record) {
    renderHead();
    renderVerify();
    renderFacts();
    renderObjects();
    renderTracksNote();
    renderTransport();
    renderTimeline();
    renderScrub();
  }
});

document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";

/** A logged-in staff member (auditor, reviewer, ...) uses the page without a key. */
async function start() {
  let me = null;
  try {
    me = await currentStaff();
  } catch { /* the server is unreachable: the key form still works once it is back */ }
  if (me?.user.must_change_password) {
    location.assign(loginUrl());
    return;
  }
  if (me) {
    ui.staff = me;
    mountStaffBar($("staff-bar"), me, {
      onLoggedOut: () => {
        staffEnded(null);
        location.hash = "";
      },
    });
  }
  route();
}

start();
