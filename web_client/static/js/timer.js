// The session clock of clause 8.2.3 as the pages see it: the server's `timer` events
// (warning at 25 min, final_warning at 29, limit at 30, then overtime once the inspector gave
// a reason) and the banner both pages show for them.

import { t } from "./i18n.js";
import { minutes } from "./format.js";

export class TimerWatch extends EventTarget {
  constructor(session) {
    super();
    this.session = session;
    this.phase = null; // null | "warning" | "final_warning" | "limit" | "overtime"
    this.limitS = null;
    this.elapsedS = null;
    this.reason = null;
    this.dismissed = null; // the phase whose banner the user closed
    session.addEventListener("server", (e) => {
      if (e.detail.name === "timer") this.#onTimer(e.detail.payload ?? {});
    });
  }

  get overLimit() {
    return this.phase === "limit";
  }

  /** An action was refused with overtime_reason_required (e.g. after a reload missed the event). */
  noteRefused() {
    if (this.phase === "limit") return;
    this.phase = "limit";
    this.dismissed = null;
    this.#changed();
  }

  dismiss() {
    if (this.phase === "warning" || this.phase === "final_warning") {
      this.dismissed = this.phase;
      this.#changed();
    }
  }

  #onTimer(p) {
    if (typeof p.limit_s === "number") this.limitS = p.limit_s;
    if (typeof p.elapsed_s === "number") {
      this.elapsedS = p.elapsed_s;
      this.session.noteElapsed(p.elapsed_s);
    }
    if (p.phase === "overtime") {
      this.reason = p.reason ?? null;
      this.phase = "overtime";
    } else if (["warning", "final_warning", "limit"].includes(p.phase)) {
      // A later warning never replaces "overtime" (the reason stays given).
      if (this.phase !== "overtime") this.phase = p.phase;
    }
    this.#changed();
  }

  /** {show, phase, text} for the banner. */
  banner(role) {
    const phase = this.phase;
    if (!phase || phase === "overtime" || this.dismissed === phase) return { show: false, phase: phase ?? "" };
    const params = {
      limit: this.limitS ? minutes(this.limitS) : "",
      elapsed: this.elapsedS !== null ? minutes(this.elapsedS) : "",
      left: this.limitS && this.elapsedS !== null ? minutes(Math.max(0, this.limitS - this.elapsedS)) : "",
    };
    let key = `timer.${phase}`;
    if (phase === "limit") key = role === "applicant" ? "timer.limitApplicant" : this.limitS ? "timer.limit" : "timer.limitPlain";
    if (phase === "warning" && (!this.limitS || this.elapsedS === null)) key = "timer.warningPlain";
    return { show: true, phase, text: t(key, params), dismissible: phase !== "limit" };
  }

  #changed() {
    this.dispatchEvent(new CustomEvent("change"));
  }
}

/** Show `watch`'s banner in `el` (with `.timer-banner-text` and `.timer-banner-close` inside). */
export function renderBanner(el, watch, role) {
  const b = watch.banner(role);
  el.hidden = !b.show;
  el.dataset.phase = b.phase;
  if (!b.show) return;
  el.querySelector(".timer-banner-text").textContent = b.text;
  el.querySelector(".timer-banner-close").hidden = !b.dismissible;
}
