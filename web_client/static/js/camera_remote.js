// The console's buttons for the applicant's camera: ask the phone (event `camera`) to turn
// its torch on or off, zoom, or take a full-resolution photo; the phone's answer (server
// event `camera_result`) is shown plainly: done, or that this phone's browser cannot.
import { t } from "./i18n.js";
import { actionError } from "./format.js";
import { PROTOCOL } from "./protocol.js";

const ZOOM_STEPS = [1, 1.5, 2, 3, 4, 6, 8, 12, 20];
// A phone that never answers (page closed, no camera code) must not leave "waiting" up.
const ANSWER_TIMEOUT_MS = 15000;

export class RemoteCamera extends EventTarget {
  /** `status` is the element that says what happened. */
  constructor(session, status) {
    super();
    this.session = session;
    this.status = status;
    this.torch = false; // as the phone last confirmed
    this.zoom = 1;
    this.waiting = new Map(); // request_id -> {action, zoom, timer}
    this.hideTimer = null;
    session.addEventListener("server", (e) => {
      const { name, payload } = e.detail;
      if (name === "camera_result" && payload) this.#answer(payload);
    });
  }

  get busy() {
    return this.waiting.size > 0;
  }

  toggleTorch() {
    return this.ask(this.torch ? "torch_off" : "torch_on");
  }

  /** One step further in (`+1`) or out (`-1`) from the zoom the phone last confirmed. */
  step(direction) {
    const steps = ZOOM_STEPS.filter((z) => z <= PROTOCOL.limits.camera_zoom_max);
    const next = direction > 0 ? steps.find((z) => z > this.zoom) : [...steps].reverse().find((z) => z < this.zoom);
    return next === undefined ? null : this.ask("zoom", next);
  }

  photo() {
    return this.ask("photo");
  }

  async ask(action, zoom) {
    const ack = await this.session.request("camera", zoom === undefined ? { action } : { action, zoom });
    if (!ack.ok) {
      this.#show(actionError(ack.error), "bad", { action });
      return ack;
    }
    const timer = setTimeout(() => {
      if (!this.waiting.delete(ack.request_id)) return;
      this.#show(t("cam.noAnswer"), "warn", { action });
      this.#changed();
    }, ANSWER_TIMEOUT_MS);
    this.waiting.set(ack.request_id, { action, zoom, timer });
    this.#show(t(`cam.asked.${action}`), "busy", { action });
    this.#changed();
    return ack;
  }

  #answer(p) {
    const asked = this.waiting.get(p.request_id);
    if (asked) {
      clearTimeout(asked.timer);
      this.waiting.delete(p.request_id);
    }
    const action = p.action;
    if (p.ok) {
      if (action === "torch_on" || action === "torch_off") this.torch = action === "torch_on";
      if (action === "zoom") {
        // The phone clamps to what its camera offers and says what it set ("zoom 4").
        const applied = Number(/zoom\s+([\d.]+)/.exec(p.detail ?? "")?.[1]);
        this.zoom = Number.isFinite(applied) ? applied : asked?.zoom ?? this.zoom;
      }
      this.#show(t(`cam.done.${action}`, { zoom: this.zoom }), "ok", { action });
    } else {
      const text = p.reason === "unsupported" ? t(`cam.unsupported.${action}`)
        : p.reason === "no_camera" ? t("cam.noCamera")
        : t("cam.failed", { detail: p.detail || "?" });
      this.#show(text, "bad", { action, reason: p.reason ?? "failed" });
    }
    this.#changed();
  }

  #show(text, tone, { action, reason = "" }) {
    const el = this.status;
    el.textContent = text;
    Object.assign(el.dataset, { tone, action, reason });
    el.hidden = false;
    clearTimeout(this.hideTimer);
    // A plain answer stays long enough to be read; "waiting" stays until the answer.
    if (tone !== "busy") this.hideTimer = setTimeout(() => { el.hidden = true; }, 9000);
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}
