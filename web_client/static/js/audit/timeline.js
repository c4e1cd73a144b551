// The event timeline beside the player: every logged event (quiet ones on request) on the
// session's clock, with a line of detail and the image of stills, photos and signatures;
// clicking an event seeks the replay there, and the event at the playback position is marked.

import { t, has } from "../i18n.js";
import { bytes, clock, coords, distance, timeOfDay } from "../format.js";
import { api, objectPath } from "./api.js";
import { $, ui } from "./state.js";

/** Event types hidden unless "show all" is ticked (many, and of little interest alone). */
const QUIET = new Set(["media.segment", "participant.media", "signature.strokes"]);
/** Event types with an image object to show as a thumbnail. */
const IMAGES = new Set(["still.captured", "photo.uploaded", "signature.signed"]);

/** Time of an event on the session's clock ("+mm:ss"). */
export function sinceStart(ms) {
  const origin = ui.detail?.origin ?? 0;
  const d = ms - origin;
  return (d < 0 ? "−" : "+") + clock(Math.abs(d));
}

/** The moment an event shows: a still's frame time, else when it was logged. */
export function eventTime(ev) {
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

export function renderTimeline() {
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
    type.textContent = has(`ev.${ev.type}`) ? t(`ev.${ev.type}`) : ev.type;
    const actor = document.createElement("span");
    actor.className = "ev-actor";
    actor.textContent = actorName(ev.actor);
    const staff = ev.data?.staff;
    if (staff?.user_id) actor.textContent += ` · ${staff.name ?? ""} (${staff.user_id})`;  // the person behind the role
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

export function actorName(actor) {
  if (!actor) return "";
  if (actor.startsWith("api:")) return t("audit.actorApi", { id: actor.slice(4) });
  if (has(`role.${actor}`)) return t(`role.${actor}`);
  return has(`actor.${actor}`) ? t(`actor.${actor}`) : actor;
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

export function selectEvent(seq, seek) {
  const d = ui.detail;
  const ev = d?.events.find((e) => e.seq === seq);
  if (!ev) return;
  if (seek && ui.replay) ui.replay.seek(eventTime(ev));
  ui.selectedSeq = seq;
  for (const li of $("timeline").querySelectorAll(".ev.selected")) li.classList.remove("selected");
  $("timeline").querySelector(`.ev[data-seq="${seq}"]`)?.classList.add("selected");
}

/** Mark the last shown event at or before the playback position. */
export function highlightCurrent() {
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

/** Let go of the thumbnails' object URLs (another inspection, or none, is shown). */
export function clearThumbs() {
  for (const url of ui.thumbs.values()) url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  ui.thumbs.clear();
}
