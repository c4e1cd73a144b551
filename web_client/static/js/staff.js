// What the staff pages (/login, /admin, /audit) share: calling the API with the login cookie,
// turning its problem documents into sentences, where to go after logging in, the
// "log out" / "log out everywhere" controls, and a confirmation dialog.
//
// The session is an HttpOnly cookie (`takan_session`): the page never sees it, fetch sends it
// (same origin), and the server refuses cross-site POSTs that carry it.

import { t, lang, onLangChange } from "./i18n.js";
import { dateTime } from "./format.js";

export class ApiError extends Error {
  constructor(status, code, detail, errors = []) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail ?? "";
    this.errors = Array.isArray(errors) ? errors : [];
  }
}

/** Call the API as the logged-in staff member; returns the JSON body, throws ApiError. */
export async function staffApi(path, { method = "GET", json } = {}) {
  const init = { method, credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", String(err?.message ?? err));
  }
  let body = null;
  try { body = await response.json(); } catch { /* empty or not JSON */ }
  if (!response.ok) {
    const code = typeof body?.type === "string" ? body.type.split("/").pop() : `http_${response.status}`;
    throw new ApiError(response.status, code, body?.detail || response.statusText, body?.errors);
  }
  return body;
}

/** `{user, permissions}` of the logged-in staff member, or null if nobody is logged in. */
export async function currentStaff() {
  try {
    return await staffApi("/api/v1/auth/me");
  } catch (err) {
    if (err.status === 401 || err.status === 403) return null;
    throw err;
  }
}

/**
 * A server message in the page's language. The password rules come as "中文 (English)";
 * a few English-only messages have a translation; anything else is shown as sent.
 */
export function serverMessage(message) {
  const text = String(message ?? "");
  const pair = text.match(/^([^()]*[\u3400-\u9fff][^()]*?)\s*\(([^()]+)\)\s*$/);
  if (pair) return lang() === "zh" ? pair[1].trim() : pair[2].trim();
  const known = {
    "must differ from the current password": "staff.msg.mustDiffer",
    "is required": "staff.msg.required",
    "must be 3-32 characters of a-z 0-9 '.' '_' '-'": "staff.msg.userIdFormat",
    "'admin' and 'auditor' together": "staff.msg.adminAuditor",
    "is empty": "staff.msg.noRole",
  };
  return known[text] ? t(known[text]) : text;
}

const FIELD_KEYS = {
  user_id: "staff.field.user_id",
  real_name: "staff.field.real_name",
  password: "staff.field.password",
  new_password: "staff.field.password",
  roles: "staff.field.roles",
  id_number: "staff.field.id_number",
  phone: "staff.field.phone",
};

/** The field-by-field messages of a 422 (`errors[]`), as lines to show. */
export function problemLines(err) {
  return (err?.errors ?? []).map((e) => {
    const field = FIELD_KEYS[e.field] ? t(FIELD_KEYS[e.field]) : e.field && e.field !== "$" ? e.field : "";
    const message = serverMessage(e.message);
    return field && e.field !== "password" && e.field !== "new_password" ? `${field}：${message}` : message;
  });
}

/** One sentence for an ApiError (or anything thrown). */
export function errorText(err) {
  if (err?.code === "network") return t("staff.networkError");
  if (err?.status === 401) return t("staff.sessionExpired");
  if (err?.status === 403) return t("staff.forbidden");
  if (err?.status === 429) {
    const until = err.errors?.find((e) => e.locked_until)?.locked_until;
    return until ? t("login.locked", { time: dateTime(until) }) : t("login.tooMany");
  }
  if (err?.errors?.length) return problemLines(err).join("；");
  const detail = String(err?.detail ?? "");
  const taken = detail.match(/^user id '([^']+)' is taken/);
  if (taken) return t("staff.msg.taken", { id: taken[1] });
  const last = detail.match(/^'([^']+)' is the last enabled admin/);
  if (last) return t("staff.msg.lastAdmin", { id: last[1] });
  if (err?.status === 404 && /^no account/.test(detail)) return t("staff.msg.noAccount");
  return t("staff.serverError", { message: err?.detail || err?.message || String(err) });
}

/**
 * Put `lines` (strings) into a `.form-error` element, as a list when there are several (under
 * `lead`, if given), or hide it when there are none.
 */
export function showError(el, lines, lead = "") {
  const list = (Array.isArray(lines) ? lines : [lines]).filter(Boolean);
  el.replaceChildren();
  if (list.length === 1 && !lead) el.textContent = list[0];
  else if (list.length) {
    if (lead) el.append(Object.assign(document.createElement("span"), { className: "form-error-lead", textContent: lead }));
    const ul = document.createElement("ul");
    ul.append(...list.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
    el.append(ul);
  }
  el.hidden = list.length === 0;
}

// ---- where to go ----------------------------------------------------------------------------

/** `raw` if it is a path on this site (not //host, not a scheme, not the login page), else null. */
export function safeNext(raw) {
  if (typeof raw !== "string" || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return null;
  try {
    const url = new URL(raw, location.origin);
    if (url.origin !== location.origin || url.pathname === "/login") return null;
    return url.pathname + url.search + url.hash;
  } catch {
    return null;
  }
}

/** Where a staff member goes after logging in when no `?next=` says otherwise. */
export function landingFor(user) {
  const roles = user?.roles ?? [];
  if (roles.includes("admin")) return "/admin";
  return roles.includes("inspector") || roles.includes("supervisor") ? "/workbench" : "/audit";
}

/** The login page, coming back to this page afterwards. */
export function loginUrl(extra = "") {
  const here = location.pathname + location.hash;
  return `/login?next=${encodeURIComponent(here)}${extra}`;
}

// ---- logging out -------------------------------------------------------------------------------

export async function logout() {
  await staffApi("/api/v1/auth/logout", { method: "POST" });
}

export async function logoutEverywhere() {
  await staffApi("/api/v1/auth/logout-all", { method: "POST" });
}

/**
 * Fill `container` (in the top bar) with who is logged in and the buttons to change the
 * password (unless `changeLink` is false), log out and log out everywhere. `onLoggedOut()` runs after either logout
 * (default: go to the login page).
 */
export function mountStaffBar(container, me, { onLoggedOut, changeLink = true } = {}) {
  const done = onLoggedOut ?? (() => location.assign("/login"));
  const who = document.createElement("span");
  who.className = "staff-who";
  who.id = "staff-who";
  const change = document.createElement("a");
  change.className = "btn-sm";
  change.id = "btn-change-password";
  const out = document.createElement("button");
  out.type = "button";
  out.className = "btn-sm";
  out.id = "btn-staff-logout";
  const outAll = document.createElement("button");
  outAll.type = "button";
  outAll.className = "btn-sm";
  outAll.id = "btn-staff-logout-all";
  const render = () => {
    who.textContent = t("staff.loggedInAs", { name: me.user.real_name, id: me.user.user_id });
    who.title = (me.user.roles ?? []).map((r) => t(`staffRole.${r}`)).join("、");
    change.textContent = t("staff.changePassword");
    change.href = loginUrl("&change=1");
    out.textContent = t("staff.logout");
    outAll.textContent = t("staff.logoutAll");
  };
  const run = async (button, action) => {
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      // A session that already ended is as good as logged out.
      if (err.status !== 401) {
        button.disabled = false;
        alertDialog(t("staff.logoutFailed", { message: errorText(err) }));
        return;
      }
    }
    done();
  };
  out.addEventListener("click", () => run(out, logout));
  outAll.addEventListener("click", async () => {
    const ok = await confirmDialog({ title: t("staff.logoutAllTitle"), body: t("staff.logoutAllBody"), confirm: t("staff.logoutAll"), danger: true });
    if (ok) run(outAll, logoutEverywhere);
  });
  render();
  onLangChange(render);
  container.replaceChildren(...[who, changeLink ? change : null, out, outAll].filter(Boolean));
  container.hidden = false;
}

// ---- dialogs -------------------------------------------------------------------------------------

function dialogShell(id) {
  document.getElementById(id)?.remove();
  const dialog = document.createElement("dialog");
  dialog.className = "dialog";
  dialog.id = id;
  const form = document.createElement("form");
  form.method = "dialog";
  dialog.append(form);
  document.body.append(dialog);
  return { dialog, form };
}

/** Ask "are you sure?"; resolves true if the user confirms. */
export function confirmDialog({ title, body, confirm, danger = false }) {
  const { dialog, form } = dialogShell("confirm-dialog");
  const h = Object.assign(document.createElement("h2"), { textContent: title });
  const p = Object.assign(document.createElement("p"), { textContent: body ?? "" });
  const actions = document.createElement("div");
  actions.className = "dialog-actions";
  const no = Object.assign(document.createElement("button"), { type: "submit", value: "no", className: "btn", textContent: t("staff.cancel") });
  const yes = Object.assign(document.createElement("button"), {
    type: "submit", value: "yes", className: `btn ${danger ? "btn-danger" : "btn-primary"}`, textContent: confirm ?? t("staff.confirm"),
  });
  yes.id = "confirm-yes";
  no.id = "confirm-no";
  actions.append(no, yes);
  form.append(h, p, actions);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    dialog.showModal();
    no.focus();
  });
}

/** Show a message with one OK button. */
export function alertDialog(message) {
  const { dialog, form } = dialogShell("alert-dialog");
  const p = Object.assign(document.createElement("p"), { textContent: message });
  const actions = document.createElement("div");
  actions.className = "dialog-actions";
  actions.append(Object.assign(document.createElement("button"), { type: "submit", className: "btn btn-primary", textContent: t("staff.ok") }));
  form.append(p, actions);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
}

/** Copy `text` to the clipboard; falls back to selecting `field` (an input) for Ctrl+C. */
export async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (field) {
      field.focus();
      field.select();
      try { return document.execCommand("copy"); } catch { return false; }
    }
    return false;
  }
}
