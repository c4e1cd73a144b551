// One inspection on the auditor's page (#/i/<id>): fetching its record, manifest, event log and
// verification together, deriving the recorded tracks, and drawing every panel of the view.

import { t } from "../i18n.js";
import { PROTOCOL } from "../protocol.js";
import { api, errorText, inspectionPath, objectPath } from "./api.js";
import { renderScrub, renderTracksNote, renderTransport, startReplay, stopReplay } from "./player.js";
import { renderFacts, renderHead, renderObjects } from "./record.js";
import { renderReview, whenReviewed } from "./review.js";
import { $, ui } from "./state.js";
import { clearThumbs, renderTimeline } from "./timeline.js";
import { renderVerify, setVerify } from "./verify.js";
import { show } from "./views.js";

/** Statuses in which the event log may not exist yet (the session has not started). */
const OPEN = PROTOCOL.open_statuses;

export function closeInspection() {
  stopReplay();
  clearThumbs();
}

export async function openInspection(id) {
  if (ui.detail?.id === id && ui.view === "detail") return;
  closeInspection();
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
  renderReview();
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
  const open = OPEN.includes(detail.record.status);
  if (log.status === "rejected" && !(open && log.reason?.status === 404)) {
    $("detail-error").textContent = t("audit.noLog", { message: errorText(log.reason) });
    $("detail-error").hidden = false;
  }
  detail.tracks = tracksOf(detail.manifest, detail.events);
  detail.origin = Date.parse(detail.record.started_at ?? "") || (detail.events[0] ? Date.parse(detail.events[0].at) : 0);
  renderHead();
  renderReview();
  renderVerify();
  renderFacts();
  renderObjects();
  startReplay();
  renderTimeline();
}

/** Draw the open inspection again (the language changed). */
export function renderInspection() {
  if (!ui.detail?.record) return;
  renderHead();
  renderReview();
  renderVerify();
  renderFacts();
  renderObjects();
  renderTracksNote();
  renderTransport();
  renderTimeline();
  renderScrub();
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

whenReviewed((d) => {
  renderHead();
  renderReview();
  renderFacts();
  refreshSealed(d);
});
