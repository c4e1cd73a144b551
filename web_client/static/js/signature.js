// Hand signatures (standard clause 5.5): a canvas pad that records strokes from finger, mouse
// or pen (Pointer Events), and the sheet both pages open it in. Submitting sends
// `signature {strokes, png, width, height}`; the ack's `code` (the evidence log's head at
// that moment, e.g. "AB12-CD34") is shown beside the signature.
//
// Strokes are [[{x, y, t}, ...], ...]: x and y in canvas pixels, t in ms since the pad opened.

import { t, applyI18n, onLangChange } from "./i18n.js";
import { actionError, timeOfDay } from "./format.js";

const INK = "#0f172a";
const PAPER = "#ffffff";
/** The server takes at most 20000 points; keep well below so the event stays under 1 MiB. */
const MAX_POINTS = 12000;
/** Backing store limit (pixels on the long side): a sharp PNG that stays small. */
const MAX_CANVAS_SIDE = 1600;

export class SignaturePad {
  /** `canvas` is sized to its CSS box; call `resize()` when that box changes. */
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.strokes = [];
    this.current = null;
    this.openedAt = performance.now();
    this.enabled = true;
    this.onchange = null;
    canvas.style.touchAction = "none";
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#up(e));
    canvas.addEventListener("lostpointercapture", (e) => this.#up(e));
  }

  get points() {
    return this.strokes.reduce((n, s) => n + s.length, 0);
  }

  get isEmpty() {
    return this.strokes.length === 0;
  }

  /** Start over: no strokes, the clock restarts. */
  reset() {
    this.strokes = [];
    this.current = null;
    this.openedAt = performance.now();
    this.resize(true);
    this.onchange?.();
  }

  /** Fit the backing store to the CSS box; existing strokes are scaled to the new size. */
  resize(force = false) {
    const rect = this.canvas.getBoundingClientRect();
    if (!rect.width || !rect.height) return;
    const scale = Math.min(window.devicePixelRatio || 1, MAX_CANVAS_SIDE / Math.max(rect.width, rect.height));
    const width = Math.max(1, Math.round(rect.width * scale));
    const height = Math.max(1, Math.round(rect.height * scale));
    if (!force && width === this.canvas.width && height === this.canvas.height) return;
    const old = { width: this.canvas.width, height: this.canvas.height };
    this.canvas.width = width;
    this.canvas.height = height;
    if (this.strokes.length && old.width > 1) {
      const k = Math.min(width / old.width, height / old.height);
      for (const stroke of this.strokes) {
        for (const p of stroke) {
          p.x = round1(p.x * k);
          p.y = round1(p.y * k);
        }
      }
    }
    this.redraw();
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.redraw();
    this.onchange?.();
  }

  undo() {
    this.strokes.pop();
    this.current = null;
    this.redraw();
    this.onchange?.();
  }

  redraw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (const stroke of this.strokes) this.#drawStroke(stroke);
  }

  /** What the `signature` event sends. */
  payload() {
    return {
      strokes: this.strokes.map((s) => s.map((p) => ({ x: p.x, y: p.y, t: p.t }))),
      png: this.canvas.toDataURL("image/png"),
      width: this.canvas.width,
      height: this.canvas.height,
    };
  }

  get lineWidth() {
    return Math.max(2, Math.min(this.canvas.width, this.canvas.height) / 110);
  }

  #point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return {
      x: round1(((e.clientX - rect.left) / rect.width) * this.canvas.width),
      y: round1(((e.clientY - rect.top) / rect.height) * this.canvas.height),
      t: Math.round(performance.now() - this.openedAt),
    };
  }

  #down(e) {
    if (!this.enabled || (e.pointerType === "mouse" && e.button !== 0)) return;
    if (this.points >= MAX_POINTS) return;
    e.preventDefault();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.current = { id: e.pointerId, points: [this.#point(e)] };
    this.strokes.push(this.current.points);
    this.#drawDot(this.current.points[0]);
  }

  #move(e) {
    if (!this.current || e.pointerId !== this.current.id) return;
    e.preventDefault();
    const events = e.getCoalescedEvents?.() ?? [];
    for (const ev of events.length ? events : [e]) {
      const p = this.#point(ev);
      const points = this.current.points;
      const last = points[points.length - 1];
      if (Math.hypot(p.x - last.x, p.y - last.y) < 1.5) continue;
      if (this.points >= MAX_POINTS) break;
      points.push(p);
      this.#segment(points);
    }
  }

  #up(e) {
    if (!this.current || e.pointerId !== this.current.id) return;
    const points = this.current.points;
    if (points.length > 1) {
      // The live drawing stops at the last midpoint: finish the stroke at its last point.
      const b = points[points.length - 2];
      const c = points[points.length - 1];
      this.#style();
      this.ctx.beginPath();
      this.ctx.moveTo((b.x + c.x) / 2, (b.y + c.y) / 2);
      this.ctx.lineTo(c.x, c.y);
      this.ctx.stroke();
    }
    this.current = null;
    this.onchange?.();
  }

  #style() {
    const { ctx } = this;
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.lineWidth = this.lineWidth;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  #drawDot(p) {
    this.#style();
    this.ctx.beginPath();
    this.ctx.arc(p.x, p.y, this.lineWidth / 2, 0, Math.PI * 2);
    this.ctx.fill();
  }

  /** The newest piece of a stroke, smoothed through midpoints. */
  #segment(points) {
    const n = points.length;
    if (n < 2) return;
    this.#style();
    const ctx = this.ctx;
    const a = points[Math.max(0, n - 3)];
    const b = points[n - 2];
    const c = points[n - 1];
    ctx.beginPath();
    ctx.moveTo((a.x + b.x) / 2, (a.y + b.y) / 2);
    if (n === 2) ctx.moveTo(b.x, b.y);
    ctx.quadraticCurveTo(b.x, b.y, (b.x + c.x) / 2, (b.y + c.y) / 2);
    ctx.stroke();
  }

  #drawStroke(stroke) {
    if (stroke.length === 1) {
      this.#drawDot(stroke[0]);
      return;
    }
    this.#style();
    const ctx = this.ctx;
    ctx.beginPath();
    ctx.moveTo(stroke[0].x, stroke[0].y);
    for (let i = 1; i < stroke.length - 1; i++) {
      const b = stroke[i];
      const c = stroke[i + 1];
      ctx.quadraticCurveTo(b.x, b.y, (b.x + c.x) / 2, (b.y + c.y) / 2);
    }
    const last = stroke[stroke.length - 1];
    ctx.lineTo(last.x, last.y);
    ctx.stroke();
  }
}

function round1(v) {
  return Math.round(v * 10) / 10;
}

const SHEET_HTML = `
  <div class="sigpad-card">
    <div class="sigpad-head">
      <h2 class="sigpad-title" id="sigpad-title"></h2>
      <p class="sigpad-hint" id="sigpad-hint" data-i18n="sig.padHint"></p>
      <p class="sigpad-rotate" id="sigpad-rotate" data-i18n="sig.rotate"></p>
    </div>
    <div class="sigpad-paper" id="sigpad-paper">
      <canvas id="sigpad-canvas" aria-label=""></canvas>
      <span class="sigpad-baseline" aria-hidden="true"><span>✕</span></span>
    </div>
    <div class="sigpad-result" id="sigpad-result" hidden>
      <img id="sigpad-result-img" alt="">
      <p class="sigpad-code-line"><span data-i18n="sig.code"></span> <strong class="sig-code" id="sigpad-code"></strong> <span class="sigpad-time" id="sigpad-time"></span></p>
      <p class="sig-explain" data-i18n="sig.binds"></p>
    </div>
    <p class="sigpad-error" id="sigpad-error" role="alert" hidden></p>
    <div class="sigpad-actions">
      <button type="button" class="btn" id="sigpad-cancel" data-i18n="sig.cancel"></button>
      <button type="button" class="btn" id="sigpad-undo" data-i18n="sig.undo"></button>
      <button type="button" class="btn" id="sigpad-clear" data-i18n="sig.clear"></button>
      <button type="button" class="btn btn-primary" id="sigpad-submit"><span class="spinner" aria-hidden="true"></span><span id="sigpad-submit-label"></span></button>
      <button type="button" class="btn" id="sigpad-again" data-i18n="sig.again" hidden></button>
      <button type="button" class="btn btn-primary" id="sigpad-done" data-i18n="sig.done" hidden></button>
    </div>
  </div>`;

/**
 * The signature sheet: full screen on a phone, a modal card on a desktop. One per page.
 * `onsigned(result)` is called with the ack ({role, code, key, at}) plus the PNG data URL.
 */
export class SignatureSheet {
  constructor(session, { onsigned } = {}) {
    this.session = session;
    this.onsigned = onsigned;
    this.titleKey = "sig.padTitle";
    this.busy = false;
    this.result = null;
    const el = document.createElement("div");
    el.className = "sigpad";
    el.id = "sigpad";
    el.hidden = true;
    el.setAttribute("role", "dialog");
    el.setAttribute("aria-modal", "true");
    el.setAttribute("aria-labelledby", "sigpad-title");
    el.innerHTML = SHEET_HTML;
    document.body.append(el);
    applyI18n(el);
    this.el = el;
    const $ = (id) => el.querySelector(`#${id}`);
    this.$ = $;
    this.pad = new SignaturePad($("sigpad-canvas"));
    this.pad.onchange = () => {
      if (!this.pad.isEmpty) this.#error(null);
      this.#render();
    };
    $("sigpad-cancel").addEventListener("click", () => this.close());
    $("sigpad-done").addEventListener("click", () => this.close());
    $("sigpad-undo").addEventListener("click", () => this.pad.undo());
    $("sigpad-clear").addEventListener("click", () => this.pad.clear());
    $("sigpad-again").addEventListener("click", () => this.#fresh());
    $("sigpad-submit").addEventListener("click", () => this.submit());
    addEventListener("resize", () => { if (this.open) this.pad.resize(); });
    addEventListener("keydown", (e) => { if (e.key === "Escape" && this.open && !this.busy) this.close(); });
    onLangChange(() => this.#render());
    session.addEventListener("final", () => this.close());
  }

  get open() {
    return !this.el.hidden;
  }

  /** Open the pad (a fresh one unless it is already open). `titleKey` explains who asked. */
  show(titleKey = "sig.padTitle") {
    this.titleKey = titleKey;
    if (this.open && !this.result) {
      this.#render();
      return;
    }
    this.el.hidden = false;
    document.body.classList.add("sigpad-open");
    this.#fresh();
  }

  close() {
    if (this.busy) return;
    this.el.hidden = true;
    document.body.classList.remove("sigpad-open");
  }

  #fresh() {
    this.result = null;
    this.pad.strokes = [];
    this.#error(null);
    this.#render();
    // The paper's size is known only once the sheet is laid out.
    requestAnimationFrame(() => this.pad.reset());
  }

  async submit() {
    if (this.busy || this.result) return;
    if (this.pad.isEmpty) {
      this.#error(t("sig.emptyError"));
      return;
    }
    const payload = this.pad.payload();
    this.busy = true;
    this.pad.enabled = false;
    this.#error(null);
    this.#render();
    const ack = await this.session.request("signature", payload, 20000);
    this.busy = false;
    this.pad.enabled = true;
    if (ack.ok) {
      this.result = { ...ack, png: payload.png };
      this.onsigned?.(this.result);
    } else {
      this.#error(t("sig.failed", { message: actionError(ack.error) }), ack.error?.code);
    }
    this.#render();
  }

  #error(text, code = null) {
    const el = this.$("sigpad-error");
    el.textContent = text ?? "";
    el.hidden = !text;
    el.dataset.code = code ?? "";
  }

  #render() {
    const $ = this.$;
    const done = !!this.result;
    this.el.dataset.state = done ? "signed" : this.busy ? "submitting" : this.pad.isEmpty ? "empty" : "drawn";
    $("sigpad-title").textContent = t(done ? "sig.successTitle" : this.titleKey);
    $("sigpad-hint").hidden = done;
    $("sigpad-rotate").hidden = done;
    $("sigpad-paper").hidden = done;
    $("sigpad-result").hidden = !done;
    if (done) {
      $("sigpad-result-img").src = this.result.png;
      $("sigpad-result-img").alt = t("sig.title");
      $("sigpad-code").textContent = this.result.code;
      $("sigpad-time").textContent = timeOfDay(this.result.at);
    }
    $("sigpad-canvas").setAttribute("aria-label", t("sig.padHint"));
    for (const id of ["sigpad-cancel", "sigpad-undo", "sigpad-clear", "sigpad-submit"]) $(id).hidden = done;
    $("sigpad-again").hidden = !done;
    $("sigpad-done").hidden = !done;
    $("sigpad-undo").disabled = this.busy || this.pad.isEmpty;
    $("sigpad-clear").disabled = this.busy || this.pad.isEmpty;
    $("sigpad-cancel").disabled = this.busy;
    $("sigpad-submit").disabled = this.busy;
    $("sigpad-submit").classList.toggle("busy", this.busy);
    $("sigpad-submit-label").textContent = t(this.busy ? "sig.submitting" : "sig.submit");
  }
}
