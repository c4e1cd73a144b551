// The full-page message view both pages use for refused links, camera problems and the end
// of a session, plus the view specs for each case. Re-renders itself on a language change.

import { t, onLangChange } from "./i18n.js";
import { CONNECT_CODES, markTakeover } from "./session.js";

export class Overlay {
  /** `el` is the page's `#overlay` element (see console.html / join.html). */
  constructor(el) {
    this.el = el;
    this.spec = null;
    onLangChange(() => this.spec && this.#render());
  }

  /**
   * spec: {id, tone: "error"|"final"|"info", title, body, params, steps, actions: [{key, primary, run}]}
   * (title/body/steps are i18n keys; steps is one string split on "|").
   */
  show(spec) {
    this.spec = spec;
    this.#render();
    this.el.hidden = false;
  }

  hide() {
    this.spec = null;
    this.el.hidden = true;
  }

  get visible() {
    return !this.el.hidden;
  }

  #render() {
    const { id, tone = "error", title, body, params = {}, steps, actions = [] } = this.spec;
    this.el.dataset.view = id ?? "";
    this.el.dataset.tone = tone;
    this.el.querySelector(".overlay-icon").textContent = tone === "final" ? "✓" : tone === "info" ? "i" : "!";
    this.el.querySelector(".overlay-title").textContent = t(title, params);
    this.el.querySelector(".overlay-body").textContent = t(body, params);
    const list = this.el.querySelector(".overlay-steps");
    list.replaceChildren(...(steps ? t(steps).split("|").map((line) => li(line)) : []));
    list.hidden = !steps;
    const box = this.el.querySelector(".overlay-actions");
    box.replaceChildren(...actions.map((a) => {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = a.primary ? "btn btn-primary" : "btn";
      btn.dataset.action = a.key;
      btn.textContent = t(a.key);
      btn.addEventListener("click", a.run);
      return btn;
    }));
  }
}

function li(text) {
  const el = document.createElement("li");
  el.textContent = text;
  return el;
}

const reload = () => location.reload();

/** Refusals of an inspector link for want of the right staff login (docs/protocol.md, "Refusals"). */
export const STAFF_CODES = ["login_required", "not_your_inspection", "account_disabled", "not_an_inspector"];

/** To the login page, and back to this very link (its token is in the hash) afterwards. */
const toLogin = () => location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);

/** The server refused the connection or the join (codes of docs/protocol.md, plus no_token / join_failed). */
export function refusalView(code, message, session) {
  const known = CONNECT_CODES.includes(code) || STAFF_CODES.includes(code) || code === "no_token" || code === "join_failed";
  const key = known ? code : "unknown";
  const actions = [];
  if (code === "login_required" || code === "not_your_inspection") actions.push({ key: "btn.login", primary: code === "login_required", run: toLogin });
  if (code === "rate_limited") actions.push({ key: "btn.retry", primary: true, run: () => session.retryConnect() });
  if (code === "join_failed" || !known) actions.push({ key: "btn.reload", primary: true, run: reload });
  const tone = code === "inspection_ended" || code === "inspection_cancelled" ? "final" : "error";
  return {
    id: `error-${code}`,
    tone,
    title: `err.${key}.title`,
    body: `err.${key}.body`,
    params: { message: message || code },
    actions,
  };
}

/** getUserMedia failed: kind is one of mediaErrorKind()'s values. */
export function mediaErrorView(error, session, { allowWithout = true } = {}) {
  const retry = { key: "btn.retry", primary: true, run: () => session.retryMedia() };
  const without = { key: "btn.continueNoCam", run: () => session.continueWithoutMedia() };
  const actions = error.kind === "insecure" ? [] : [retry];
  if (allowWithout && error.kind !== "denied") actions.push(without);
  return {
    id: `media-${error.kind}`,
    tone: "error",
    title: `err.media_${error.kind}.title`,
    body: `err.media_${error.kind}.body`,
    params: { message: `${error.name}: ${error.message}` },
    steps: error.kind === "denied" ? "err.media_denied.steps" : null,
    actions,
  };
}

/** The inspection is over for this page (status ended / cancelled, or kicked by another tab). */
export function finalView(kind, role) {
  const staff = role === "inspector" || role === "observer";
  return {
    id: `final-${kind}`,
    tone: kind === "kicked" ? "info" : "final",
    title: `final.${kind}.title`,
    body: kind === "ended" && staff ? "final.ended.staffBody" : `final.${kind}.body`,
    // The body already says the other one will be disconnected: the reload takes over at once.
    actions: kind === "kicked" ? [{ key: "btn.here", primary: true, run: () => { markTakeover(); reload(); } }] : [],
  };
}

/** The role is held by another device: continue here (the other is disconnected) or not. */
export function inUseView(session, overlay) {
  return {
    id: "inuse",
    tone: "info",
    title: "inuse.title",
    body: "inuse.body",
    actions: [
      { key: "inuse.cancel", run: () => { session.declineTakeover(); overlay.show(inUseDeclinedView(session)); } },
      { key: "inuse.continue", primary: true, run: () => session.takeOver() },
    ],
  };
}

/** The user left the session on the other device; they may still change their mind. */
export function inUseDeclinedView(session) {
  return {
    id: "inuse-declined",
    tone: "info",
    title: "inuse.declinedTitle",
    body: "inuse.declinedBody",
    actions: [{ key: "inuse.continue", primary: true, run: () => session.takeOver() }],
  };
}

/** Show the right view for the session's refusal / media / final events. */
export function bindOverlay(overlay, session, opts = {}) {
  session.addEventListener("fatal", (e) => overlay.show(refusalView(e.detail.code, e.detail.message, session)));
  session.addEventListener("mediaerror", (e) => overlay.show(mediaErrorView(e.detail, session, opts)));
  session.addEventListener("final", (e) => overlay.show(finalView(e.detail.kind, session.state.role)));
  session.addEventListener("inuse", () => overlay.show(inUseView(session, overlay)));
  session.addEventListener("change", () => {
    // A retried connection or camera that now works clears its error view.
    const id = overlay.spec?.id ?? "";
    if (id.startsWith("inuse") && session.state.joined && !session.final) overlay.hide();
    if (id.startsWith("media-") && !session.mediaError) overlay.hide();
    if (id.startsWith("error-") && !session.state.error && !session.final) overlay.hide();
  });
}
