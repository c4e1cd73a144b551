// The replay of one inspection's recording: the main picture with the other side in a corner,
// the transport (play, position, speed, sound), and the scrubber with the recorded spans and the
// marks of stills, photos, signatures, notes and timer warnings.

import { t } from "../i18n.js";
import { timeOfDay } from "../format.js";
import { Replay, segmentAt } from "../replay.js";
import { api, objectPath } from "./api.js";
import { $, ui } from "./state.js";
import { eventTime, highlightCurrent, selectEvent, sinceStart } from "./timeline.js";

/** Event types marked on the scrubber. */
const MARKS = { "still.captured": "still", "photo.uploaded": "photo", "signature.signed": "signature", note: "note", "timer.warning": "timer", "timer.final_warning": "timer", "timer.limit": "timer" };

/** Build the replay of `ui.detail`'s tracks and show it at the start of the main picture. */
export function startReplay() {
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

export function stopReplay() {
  ui.replay?.destroy();
  ui.replay = null;
}

function trackLabel(name) {
  return t(`track.${name.replace(/-(\w)/g, (_, c) => c.toUpperCase())}`);
}

export function renderTracksNote() {
  const names = ui.detail?.trackNames;
  if (!names) return;
  const label = trackLabel;
  const parts = [];
  if (names.main) parts.push(t("audit.trackMain", { track: label(names.main) }));
  if (names.pip) parts.push(t("audit.trackPip", { track: label(names.pip) }));
  parts.push(names.audio.length ? t("audit.trackAudio", { tracks: names.audio.map(label).join("、") }) : t("audit.noAudio"));
  $("tracks-note").textContent = parts.join(" · ");
}

export function renderTransport() {
  const r = ui.replay;
  if (!r) return;
  $("btn-play").classList.toggle("playing", r.playing);
  $("btn-play").disabled = !r.players.length;
  $("btn-play").setAttribute("aria-label", t(r.playing ? "audit.pause" : "audit.play"));
  // Times count from the session's start, like the timeline's.
  $("t-pos").textContent = sinceStart(r.position).replace("+", "");
  $("t-total").textContent = sinceStart(r.end).replace("+", "");
  const main = r.mainPlayer;
  const gap = !main || main.index < 0 && segmentAt(main.segments, r.position) < 0;
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
export function renderScrub() {
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
