// The inspector's drawing tool on the console: freeze the applicant's video (its current
// frame onto a canvas), draw arrows, circles and short texts with a mouse or a finger, and
// every finished mark goes out at once (`draw` with the whole list: the server replaces the
// marks); one tap clears them (`draw_clear`), and unfreezing returns to the live video. The
// marks stay on both sides until cleared: the applicant may be walking to the spot.
//
// What is shown is what the room was told: the confirmed marks come back in the server's
// `drawing` event (the console's DrawingOverlay draws them); only the mark being dragged is
// drawn here.
import { t } from "./i18n.js";
import { actionError } from "./format.js";
import { PROTOCOL } from "./protocol.js";
import { followPicture, renderShapes, shapeLayer } from "./drawing.js";

const MIN_DRAG = 0.01; // a press that moves less than this is a tap, not an arrow or circle
const TOOLS = ["arrow", "circle", "text"];

const clamp = (v) => Math.min(1, Math.max(0, v));
const round = (v) => Math.round(v * 10000) / 10000; // fractions, to 0.01 % of the picture

export class DrawingTool extends EventTarget {
  /**
   * `video` is the applicant's <video>; `overlay` the DrawingOverlay over it (the marks the
   * room was shown); `els` the tool's elements of the page: frame (<canvas>), surface (the
   * pointer layer over the picture), text (<input> of the text tool), status (errors).
   */
  constructor(session, video, overlay, els) {
    super();
    this.session = session;
    this.video = video;
    this.overlay = overlay;
    this.els = els;
    this.frozen = false;
    this.tool = "arrow";
    this.draft = null; // {kind, points} while a pointer is down
    this.pending = null; // the marks sent and not yet acknowledged
    this.acked = null; // {shapes, at} of the last acknowledged draw or clear
    this.sketch = shapeLayer("drawing-draft");
    els.surface.append(this.sketch);
    this.aspect = 9 / 16;
    followPicture(video, els.surface);
    // The phone switched to a camera of another shape: the frozen frame no longer lines up
    // with the marks' layer (it follows the live picture), so return to live video.
    video.addEventListener("resize", () => {
      const { videoWidth: w, videoHeight: h } = video;
      if (this.frozen && w && Math.abs(h / w - this.aspect) > 0.01) this.unfreeze();
    });
    els.surface.addEventListener("pointerdown", (e) => this.#down(e));
    els.surface.addEventListener("pointermove", (e) => this.#move(e));
    els.surface.addEventListener("pointerup", (e) => this.#up(e));
    els.surface.addEventListener("pointercancel", () => this.#cancel());
  }

  /** The marks the applicant sees now, or is about to: those sent and not yet acknowledged,
   * else the last acknowledged until the room's `drawing` of that moment (same `at`) is here
   * (through Redis it may come after the ack), else the room's. A second mark builds on these. */
  get shapes() {
    if (this.pending) return this.pending;
    const { acked, overlay } = this;
    if (acked && !(overlay.at && overlay.at >= acked.at)) return acked.shapes;
    return overlay.shapes;
  }

  get full() {
    return this.shapes.length >= PROTOCOL.limits.drawing_shapes;
  }

  /** Grab the video's current frame and draw over it; false when there is no picture yet. */
  freeze() {
    const { video, els } = this;
    if (!video.videoWidth || video.readyState < 2) return false;
    els.frame.width = video.videoWidth;
    els.frame.height = video.videoHeight;
    els.frame.getContext("2d").drawImage(video, 0, 0);
    this.aspect = video.videoHeight / video.videoWidth;
    this.frozen = true;
    this.#changed();
    return true;
  }

  unfreeze() {
    this.#cancel();
    this.frozen = false;
    this.#changed();
  }

  select(tool) {
    if (TOOLS.includes(tool)) this.tool = tool;
    this.#changed();
  }

  async clear() {
    this.#cancel();
    this.pending = [];
    const ack = await this.session.request("draw_clear", {});
    this.pending = null;
    if (ack.ok) this.acked = { shapes: [], at: ack.at };
    this.#report(ack);
    return ack;
  }

  /** Take back the last mark (the rest is sent again; none left is a clear). */
  async undo() {
    const rest = this.shapes.slice(0, -1);
    return rest.length ? this.#send(rest) : this.clear();
  }

  // ---- pointer: mouse, pen and touch alike ------------------------------------------------

  #point(e) {
    const box = this.els.surface.getBoundingClientRect();
    return [round(clamp((e.clientX - box.left) / box.width)), round(clamp((e.clientY - box.top) / box.height))];
  }

  #down(e) {
    if (!this.frozen || this.full || e.button > 0) return;
    e.preventDefault();
    const at = this.#point(e);
    if (this.tool === "text") {
      const text = this.els.text.value.trim();
      if (!text) {
        this.#status(t("draw.textFirst"), "warn");
        this.els.text.focus();
        return;
      }
      this.#send([...this.shapes, { kind: "text", points: [at], text }]).then((ack) => {
        if (ack.ok) this.els.text.value = "";
      });
      return;
    }
    this.els.surface.setPointerCapture?.(e.pointerId);
    this.draft = { kind: this.tool, points: [at, at], pointer: e.pointerId };
    this.#drawDraft();
  }

  #move(e) {
    if (!this.draft || e.pointerId !== this.draft.pointer) return;
    this.draft.points[1] = this.#point(e);
    this.#drawDraft();
  }

  #up(e) {
    if (!this.draft || e.pointerId !== this.draft.pointer) return;
    const { kind, points } = this.draft;
    points[1] = this.#point(e);
    this.#cancel();
    const [[x0, y0], [x1, y1]] = points;
    if (Math.hypot(x1 - x0, (y1 - y0) * this.aspect) < MIN_DRAG) return; // a tap: nothing drawn
    this.#send([...this.shapes, { kind, points }]);
  }

  #cancel() {
    this.draft = null;
    this.#drawDraft();
  }

  #drawDraft() {
    renderShapes(this.sketch, this.draft ? [this.draft] : [], { aspect: this.aspect });
  }

  // ---- to the server -----------------------------------------------------------------------

  async #send(shapes) {
    this.pending = shapes;
    this.#changed();
    const ack = await this.session.request("draw", { shapes: shapes.map(({ kind, points, text }) => (text ? { kind, points, text } : { kind, points })) });
    if (this.pending === shapes) this.pending = null; // else a later send is still out
    if (ack.ok && !(this.acked?.at > ack.at)) this.acked = { shapes, at: ack.at };
    this.#report(ack);
    return ack;
  }

  #report(ack) {
    if (ack.ok) this.#status("", "");
    else this.#status(actionError(ack.error), "bad");
    this.#changed();
  }

  #status(text, tone) {
    this.els.status.textContent = text;
    this.els.status.dataset.tone = tone;
    this.els.status.hidden = !text;
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}
