// The inspector's checklist (clause 8.2.2): one row per checkpoint of the join ack, with its
// captures (server stills and the applicant's photos) and the Prompt / Capture still actions.
//
// The console has no API key, so it cannot fetch the evidence itself: a still's thumbnail is
// this page's own grab of the applicant's video at that moment (labelled as a preview); the
// evidence is the full-resolution still the server stored. A photo shows as an icon with its
// time and size.

import { t, lang, onLangChange } from "./i18n.js";
import { actionError, bytes, timeOfDay } from "./format.js";

const CAPTURE_TIMEOUT_MS = 25000; // the server waits for a fresh keyframe, then decodes it
const THUMB_WIDTH = 240;

const PHOTO_ICON = `<svg viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="M23 19a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h4l2-3h6l2 3h4a2 2 0 0 1 2 2z"/><circle cx="12" cy="13" r="4"/></svg>`;
const STILL_ICON = `<svg viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><rect x="3" y="3" width="18" height="18" rx="2"/><circle cx="8.5" cy="8.5" r="1.5"/><polyline points="21 15 16 10 5 21"/></svg>`;

/** A JPEG data URL of the video's current frame, `THUMB_WIDTH` wide; null without a picture. */
export function grabFrame(video, width = THUMB_WIDTH) {
  if (!video || video.readyState < 2 || !video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = Math.max(1, Math.round((video.videoHeight / video.videoWidth) * width));
  try {
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.82);
  } catch {
    return null;
  }
}

export class Checklist extends EventTarget {
  /**
   * `list` is the <ol> to fill; `video` the applicant's video (for previews);
   * `onRefused(code)` hears about refusals (the console opens the overtime dialog).
   */
  constructor(session, list, { video, onRefused } = {}) {
    super();
    this.session = session;
    this.list = list;
    this.video = video;
    this.onRefused = onRefused;
    this.items = []; // {code, title, required, captures[], promptedAt, busy, error}
    this.rows = new Map();
    this.canAct = false;
    this.pendingPreview = new Map(); // checkpoint -> data URL grabbed when Capture was pressed
    session.addEventListener("joined", () => this.#load(session.inspection?.checkpoints ?? []));
    session.addEventListener("server", (e) => {
      const { name, payload } = e.detail;
      if (name === "captured") this.#onCaptured(payload ?? {});
      else if (name === "prompt") this.#onPrompt(payload ?? {});
    });
    onLangChange(() => this.render());
  }

  get requiredDone() {
    const req = this.items.filter((i) => i.required);
    return { done: req.filter((i) => i.captures.length).length, total: req.length };
  }

  item(code) {
    return this.items.find((i) => i.code === code) ?? null;
  }

  #load(checkpoints) {
    const old = new Map(this.items.map((i) => [i.code, i]));
    this.items = checkpoints.map((c) => {
      const prev = old.get(c.code);
      const item = prev ?? { code: c.code, captures: [], promptedAt: null, busy: false, error: null };
      item.title = c.title ?? c.code;
      item.required = !!c.required;
      // Evidence from before this page loaded (if the server lists it): no preview.
      for (const key of Array.isArray(c.evidence) ? c.evidence : []) {
        if (!item.captures.some((x) => x.key === key)) {
          item.captures.push({ key, kind: key.startsWith("photos/") ? "photo" : "still", earlier: true });
        }
      }
      return item;
    });
    this.render();
  }

  #onPrompt(p) {
    const item = this.item(p.checkpoint);
    if (!item) return;
    item.promptedAt = Date.now();
    this.render();
  }

  #onCaptured(p) {
    const item = this.item(p.checkpoint);
    if (!item || !p.key) return;
    let capture = item.captures.find((c) => c.key === p.key);
    if (!capture) {
      capture = { key: p.key };
      item.captures.push(capture);
    }
    Object.assign(capture, {
      kind: p.kind === "photo" ? "photo" : "still",
      at: p.at ?? capture.at,
      width: p.width ?? capture.width,
      height: p.height ?? capture.height,
      size: p.size_original ?? p.size ?? capture.size,
      takenAt: p.taken_at ?? capture.takenAt,
      lat: p.lat ?? capture.lat,
      lon: p.lon ?? capture.lon,
      earlier: false,
    });
    if (capture.kind === "still" && !capture.preview) {
      capture.preview = this.pendingPreview.get(p.checkpoint) ?? grabFrame(this.video);
      this.pendingPreview.delete(p.checkpoint);
    }
    if (capture.kind === "photo") item.error = null;
    this.render();
    this.dispatchEvent(new CustomEvent("captured", { detail: { item, capture } }));
  }

  async prompt(code) {
    const item = this.item(code);
    if (!item || item.prompting) return;
    item.prompting = true;
    item.error = null;
    this.render();
    const ack = await this.session.request("prompt", { checkpoint: code });
    item.prompting = false;
    if (!ack.ok) this.#fail(item, ack.error);
    this.render();
  }

  async capture(code) {
    const item = this.item(code);
    if (!item || item.busy) return;
    item.busy = true;
    item.error = null;
    // The server takes its still from the next keyframe: grab the preview now, as pressed.
    const preview = grabFrame(this.video);
    if (preview) this.pendingPreview.set(code, preview);
    this.render();
    const ack = await this.session.request("capture", { checkpoint: code }, CAPTURE_TIMEOUT_MS);
    item.busy = false;
    if (ack.ok) {
      this.#onCaptured(ack);
    } else {
      this.pendingPreview.delete(code);
      this.#fail(item, ack.error);
    }
    this.render();
  }

  #fail(item, error) {
    item.error = { code: error?.code ?? "internal", text: actionError(error) };
    this.onRefused?.(error?.code);
  }

  /** Clear errors that said "give the overtime reason first" once it is given. */
  clearOvertimeErrors() {
    for (const item of this.items) if (item.error?.code === "overtime_reason_required") item.error = null;
    this.render();
  }

  render() {
    if (!this.items.length) {
      const li = document.createElement("li");
      li.className = "chk-empty";
      li.textContent = t(this.session.state.joined || this.session.inspection ? "chk.empty" : "chk.loading");
      this.list.replaceChildren(li);
      this.rows.clear();
      this.dispatchEvent(new CustomEvent("change"));
      return;
    }
    const rows = this.items.map((item) => this.#row(item));
    if (rows.some((r, i) => this.list.children[i] !== r) || this.list.children.length !== rows.length) {
      this.list.replaceChildren(...rows);
    }
    this.dispatchEvent(new CustomEvent("change"));
  }

  #row(item) {
    let row = this.rows.get(item.code);
    if (!row) {
      row = document.createElement("li");
      row.className = "chk";
      row.dataset.code = item.code;
      row.innerHTML = `
        <div class="chk-head">
          <span class="chk-mark" aria-hidden="true"></span>
          <span class="chk-title"></span>
          <span class="chk-tag"></span>
          <span class="chk-count"></span>
        </div>
        <div class="chk-thumbs"></div>
        <div class="chk-actions">
          <button type="button" class="btn-sm chk-prompt"></button>
          <button type="button" class="btn-sm btn-sm-primary chk-capture"><span class="spinner" aria-hidden="true"></span><span class="chk-capture-label"></span></button>
        </div>
        <p class="chk-status" hidden></p>
        <p class="chk-error" role="alert" hidden></p>`;
      row.querySelector(".chk-prompt").addEventListener("click", () => this.prompt(item.code));
      row.querySelector(".chk-capture").addEventListener("click", () => this.capture(item.code));
      this.rows.set(item.code, row);
    }
    const captured = item.captures.length > 0;
    row.dataset.state = captured ? "captured" : "pending";
    row.dataset.required = String(item.required);
    row.dataset.busy = String(!!item.busy);
    row.querySelector(".chk-mark").textContent = captured ? "✓" : "";
    row.querySelector(".chk-title").textContent = item.title;
    const tag = row.querySelector(".chk-tag");
    tag.textContent = t(item.required ? "chk.required" : "chk.optional");
    tag.classList.toggle("required", item.required);
    row.querySelector(".chk-count").textContent = captured ? t("chk.captured", { n: item.captures.length }) : t("chk.pending");

    const thumbs = row.querySelector(".chk-thumbs");
    thumbs.hidden = !captured;
    // Rebuild the thumbnails only when they change (the console re-renders often).
    const shown = JSON.stringify([lang(), item.captures.map((c) => [c.key, !!c.preview, c.at, c.size])]);
    if (thumbs.dataset.shown !== shown) {
      thumbs.dataset.shown = shown;
      thumbs.replaceChildren(...item.captures.map((c) => thumb(c)));
    }

    const joined = this.session.state.joined && !this.session.final;
    row.querySelector(".chk-actions").hidden = !this.canAct;
    const promptBtn = row.querySelector(".chk-prompt");
    promptBtn.textContent = t("chk.prompt");
    promptBtn.disabled = !joined || !!item.prompting;
    const capBtn = row.querySelector(".chk-capture");
    capBtn.classList.toggle("busy", !!item.busy);
    capBtn.disabled = !joined || !!item.busy;
    capBtn.querySelector(".chk-capture-label").textContent = t(item.busy ? "chk.capturing" : "chk.capture");

    const status = row.querySelector(".chk-status");
    status.hidden = !item.promptedAt;
    if (item.promptedAt) status.textContent = t("chk.prompted", { time: timeOfDay(item.promptedAt) });
    const error = row.querySelector(".chk-error");
    error.hidden = !item.error;
    error.textContent = item.error?.text ?? "";
    error.dataset.code = item.error?.code ?? "";
    return row;
  }
}

function thumb(c) {
  const fig = document.createElement("figure");
  fig.className = `thumb thumb-${c.kind}`;
  fig.dataset.kind = c.kind;
  fig.dataset.key = c.key;
  const cap = document.createElement("figcaption");
  if (c.kind === "still") {
    if (c.preview) {
      const img = document.createElement("img");
      img.src = c.preview;
      img.alt = t("chk.stillAlt");
      fig.append(img);
    } else {
      const icon = document.createElement("span");
      icon.className = "thumb-icon";
      icon.innerHTML = STILL_ICON;
      fig.append(icon);
    }
    const badge = document.createElement("span");
    badge.className = "thumb-badge";
    badge.textContent = t(c.preview ? "chk.preview" : "chk.still");
    fig.append(badge);
    cap.textContent = c.earlier ? t("chk.earlier") : timeOfDay(c.at);
    fig.title = c.earlier ? t("chk.earlier")
      : t("chk.stillTitle", { w: c.width ?? "?", h: c.height ?? "?", time: timeOfDay(c.at) });
  } else {
    const icon = document.createElement("span");
    icon.className = "thumb-icon";
    icon.innerHTML = PHOTO_ICON;
    const label = document.createElement("span");
    label.className = "thumb-photo-label";
    label.textContent = t("chk.photo");
    const size = document.createElement("span");
    size.className = "thumb-photo-size";
    size.textContent = c.size ? bytes(c.size) : "";
    fig.append(icon, label, size);
    cap.textContent = c.earlier ? t("chk.earlier") : timeOfDay(c.at);
    fig.title = c.earlier ? t("chk.earlier")
      : t("chk.photoTitle", { time: timeOfDay(c.takenAt ?? c.at), size: c.size ? bytes(c.size) : "—" });
  }
  fig.append(cap);
  return fig;
}
