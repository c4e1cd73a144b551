// The admin page (/admin): staff accounts (list, create with the TOTP enrolment shown once,
// disable/enable, unlock, reset password, roles) and the webhook deliveries to the approval
// core (counts, attempts, re-send of failed ones). Works with the login cookie only.

import { t, has, bindLangToggles, onLangChange } from "./i18n.js";
import { dateTime } from "./format.js";
import {
  alertDialog, confirmDialog, copyText, currentStaff, errorText, loginUrl, mountStaffBar, showError, staffApi,
} from "./staff.js";
import { qrSvg } from "./qr.js";
import { PROTOCOL } from "./protocol.js";

const $ = (id) => document.getElementById(id);
/** Staff roles in the order the server lists them (identity/permissions.py ROLES). */
const ROLES = PROTOCOL.roles.staff;
/** At most this many deliveries are drawn (newest first). */
const MAX_HOOKS = 200;

const ui = {
  me: null,
  tab: null,
  accounts: [],
  accountsLoaded: false,
  hooks: null,
  rolesFor: null,
  resetFor: null,
  totp: null, // {uri, title}: the enrolment on screen, forgotten when its dialog closes
};
window.takanAdmin = ui;

bindLangToggles();

// ---- the API ---------------------------------------------------------------------------------

/** staffApi, but a session that ended sends the admin to the login page. */
async function call(path, options) {
  try {
    return await staffApi(path, options);
  } catch (err) {
    if (err.status === 401) location.assign(loginUrl());
    throw err;
  }
}

const accountPath = (id, action) => `/api/v1/admin/accounts/${encodeURIComponent(id)}/${action}`;

let noticeTimer = null;
/** Say that an action worked (the string `key` with `params`; none hides the notice). */
function notice(key, params = {}) {
  clearTimeout(noticeTimer);
  ui.notice = key ? { key, params } : null;
  renderNotice();
  if (key) noticeTimer = setTimeout(() => notice(null), 10000);
}

function renderNotice() {
  $("admin-notice").textContent = ui.notice ? t(ui.notice.key, ui.notice.params) : "";
  $("admin-notice").hidden = !ui.notice;
}

const isSelf = (id) => id === ui.me?.user.user_id;
const isLocked = (a) => !!a.locked_until && Date.parse(a.locked_until) > Date.now();

// ---- tabs -------------------------------------------------------------------------------------

function route() {
  const tab = location.hash === "#webhooks" ? "webhooks" : "accounts";
  if (ui.tab && ui.tab !== tab) notice(null);
  ui.tab = tab;
  $("view-accounts").hidden = tab !== "accounts";
  $("view-webhooks").hidden = tab !== "webhooks";
  $("tab-accounts").classList.toggle("active", tab === "accounts");
  $("tab-webhooks").classList.toggle("active", tab === "webhooks");
  $("tab-accounts").setAttribute("aria-current", tab === "accounts" ? "page" : "false");
  $("tab-webhooks").setAttribute("aria-current", tab === "webhooks" ? "page" : "false");
  if (tab === "accounts") loadAccounts();
  else loadHooks();
}
addEventListener("hashchange", route);

// ---- accounts ---------------------------------------------------------------------------------

async function loadAccounts() {
  $("accounts-refresh").disabled = true;
  try {
    const page = await call("/api/v1/admin/accounts");
    ui.accounts = page.items ?? [];
    ui.accountsLoaded = true;
    showError($("accounts-error"), []);
  } catch (err) {
    showError($("accounts-error"), errorText(err));
  } finally {
    $("accounts-refresh").disabled = false;
  }
  renderAccounts();
}

function chip(text, tone) {
  const span = document.createElement("span");
  span.className = `chip${tone ? ` chip-${tone}` : ""}`;
  span.textContent = text;
  return span;
}

function actionButton(action, label, account, tone = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn-sm${tone ? ` btn-sm-${tone}` : ""}`;
  b.dataset.action = action;
  b.dataset.user = account.user_id;
  b.textContent = label;
  b.addEventListener("click", () => ACTIONS[action](account, b));
  return b;
}

function renderAccounts() {
  $("accounts-body").replaceChildren(...ui.accounts.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.user = a.user_id;
    tr.dataset.enabled = String(a.enabled);
    const cells = [];
    const id = document.createElement("td");
    id.className = "mono nowrap";
    id.textContent = a.user_id;
    if (isSelf(a.user_id)) id.append(Object.assign(document.createElement("span"), { className: "self-tag", textContent: t("admin.you") }));
    cells.push(id);
    cells.push(Object.assign(document.createElement("td"), { className: "nowrap", textContent: a.real_name }));
    const roles = document.createElement("td");
    roles.className = "chips";
    roles.append(...ROLES.filter((r) => a.roles.includes(r)).map((r) => chip(t(`staffRole.${r}`), r === "admin" ? "accent" : "")));
    cells.push(roles);
    const state = document.createElement("td");
    state.className = "chips state-cell";
    state.append(a.enabled ? chip(t("admin.enabled"), "good") : chip(t("admin.disabled"), "bad"));
    if (isLocked(a)) state.append(chip(t("admin.lockedUntil", { time: dateTime(a.locked_until) }), "warn"));
    if (a.must_change_password) state.append(chip(t("admin.mustChange"), ""));
    cells.push(state);
    cells.push(Object.assign(document.createElement("td"), { className: "nowrap", textContent: a.last_login_at ? dateTime(a.last_login_at) : t("admin.never") }));
    cells.push(Object.assign(document.createElement("td"), { className: "mono small", textContent: a.id_number ?? "—" }));
    cells.push(Object.assign(document.createElement("td"), { className: "mono small", textContent: a.phone ?? "—" }));
    const actions = document.createElement("td");
    actions.className = "row-actions";
    actions.append(actionButton("roles", t("admin.actRoles"), a), actionButton("reset", t("admin.actReset"), a));
    if (isLocked(a)) actions.append(actionButton("unlock", t("admin.actUnlock"), a));
    actions.append(a.enabled ? actionButton("disable", t("admin.actDisable"), a, "danger") : actionButton("enable", t("admin.actEnable"), a));
    cells.push(actions);
    tr.append(...cells);
    return tr;
  }));
  $("accounts-empty").hidden = !ui.accountsLoaded || ui.accounts.length > 0;
  const masked = !(ui.me?.permissions ?? []).includes("personal_data");
  $("accounts-note").textContent = masked ? t("admin.masked") : "";
  $("accounts-note").hidden = !masked;
}

async function simple(account, button, action, doneKey) {
  button.disabled = true;
  try {
    await call(accountPath(account.user_id, action), { method: "POST" });
    notice(doneKey, { id: account.user_id });
    if (isSelf(account.user_id) && action === "disable") {
      location.assign(loginUrl());
      return;
    }
    await loadAccounts();
  } catch (err) {
    button.disabled = false;
    if (err.status !== 401) alertDialog(errorText(err));
  }
}

const ACTIONS = {
  async disable(account, button) {
    const body = [t("admin.disableBody"), isSelf(account.user_id) ? t("admin.disableSelf") : ""].filter(Boolean).join(" ");
    const ok = await confirmDialog({ title: t("admin.disableTitle", { id: account.user_id }), body, confirm: t("admin.actDisable"), danger: true });
    if (ok) await simple(account, button, "disable", "admin.disabledDone");
  },
  enable: (account, button) => simple(account, button, "enable", "admin.enabledDone"),
  unlock: (account, button) => simple(account, button, "unlock", "admin.unlockedDone"),
  roles: (account) => openRoles(account),
  reset: (account) => openReset(account),
};

$("accounts-refresh").addEventListener("click", loadAccounts);

// ---- role checkboxes ----------------------------------------------------------------------------

function renderRoleChecks(container, prefix, chosen) {
  const checked = new Set(chosen ?? [...container.querySelectorAll("input:checked")].map((i) => i.value));
  container.replaceChildren(...ROLES.map((role) => {
    const label = document.createElement("label");
    label.className = "check role-check";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = role;
    input.id = `${prefix}-${role}`;
    input.checked = checked.has(role);
    const text = document.createElement("span");
    text.append(
      Object.assign(document.createElement("strong"), { textContent: t(`staffRole.${role}`) }),
      Object.assign(document.createElement("small"), { textContent: t(`staffRole.${role}.desc`) }),
    );
    label.append(input, text);
    return label;
  }));
}

const checkedRoles = (container) => [...container.querySelectorAll("input:checked")].map((i) => i.value);

// ---- passwords an admin hands over ---------------------------------------------------------------

const LETTERS = "abcdefghjkmnpqrstuvwxyz";
const UPPER = "ABCDEFGHJKMNPQRSTUVWXYZ";
const DIGITS = "23456789";

/** A random password that meets the rules, easy to read out: "Kp7q-Xm3v-Rt9w-Hz2c". */
export function generatePassword() {
  const pick = (set) => set[crypto.getRandomValues(new Uint32Array(1))[0] % set.length];
  for (;;) {
    const groups = [];
    for (let g = 0; g < 4; g++) groups.push(pick(UPPER) + pick(LETTERS) + pick(DIGITS) + pick(LETTERS));
    const candidate = groups.join("-");
    if (!/(.)\1\1/.test(candidate)) return candidate;
  }
}

// ---- create -----------------------------------------------------------------------------------

function openCreate() {
  $("create-form").reset();
  renderRoleChecks($("c-roles"), "c-role", []);
  $("c-password").value = generatePassword();
  showError($("create-error"), []);
  $("create-dialog").showModal();
  $("c-user-id").focus();
}

$("btn-new-account").addEventListener("click", openCreate);
$("create-cancel").addEventListener("click", () => $("create-dialog").close());
$("c-generate").addEventListener("click", () => { $("c-password").value = generatePassword(); });

$("create-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const userId = $("c-user-id").value.trim().toLowerCase();
  const body = {
    user_id: userId,
    real_name: $("c-real-name").value.trim(),
    roles: checkedRoles($("c-roles")),
    password: $("c-password").value,
  };
  if ($("c-id-number").value.trim()) body.id_number = $("c-id-number").value.trim();
  if ($("c-phone").value.trim()) body.phone = $("c-phone").value.trim();
  if (!body.roles.length) return showError($("create-error"), t("admin.pickRole"));
  showError($("create-error"), []);
  $("create-submit").disabled = true;
  try {
    const created = await call("/api/v1/admin/accounts", { method: "POST", json: body });
    $("create-dialog").close();
    notice("admin.created", { id: created.user.user_id });
    showTotp(created.totp_uri, "admin.totpTitle", created.user);
    loadAccounts();
  } catch (err) {
    if (err.status !== 401) showError($("create-error"), errorText(err).split("；"));
  } finally {
    $("create-submit").disabled = false;
  }
});

// ---- roles --------------------------------------------------------------------------------------

function openRoles(account) {
  ui.rolesFor = account;
  $("roles-title").textContent = t("admin.rolesTitle", { id: account.user_id, name: account.real_name });
  renderRoleChecks($("r-roles"), "r-role", account.roles);
  showError($("roles-error"), []);
  $("roles-dialog").showModal();
}

$("roles-cancel").addEventListener("click", () => $("roles-dialog").close());
$("roles-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const account = ui.rolesFor;
  const roles = checkedRoles($("r-roles"));
  if (!roles.length) return showError($("roles-error"), t("admin.pickRole"));
  const dropsOwnAdmin = isSelf(account.user_id) && account.roles.includes("admin") && !roles.includes("admin");
  if (dropsOwnAdmin) {
    $("roles-dialog").close();
    const ok = await confirmDialog({ title: t("admin.dropAdminTitle"), body: t("admin.dropAdminBody"), confirm: t("admin.save"), danger: true });
    if (!ok) return;
  }
  $("roles-submit").disabled = true;
  try {
    await call(accountPath(account.user_id, "roles"), { method: "POST", json: { roles } });
    if ($("roles-dialog").open) $("roles-dialog").close();
    notice("admin.rolesSaved", { id: account.user_id });
    if (dropsOwnAdmin) location.reload();
    else loadAccounts();
  } catch (err) {
    if (err.status === 401) return;
    if ($("roles-dialog").open) showError($("roles-error"), errorText(err));
    else alertDialog(errorText(err));
  } finally {
    $("roles-submit").disabled = false;
  }
});

// ---- reset password ---------------------------------------------------------------------------------

function openReset(account) {
  ui.resetFor = account;
  $("reset-form").reset();
  $("reset-title").textContent = t("admin.resetTitle", { id: account.user_id, name: account.real_name });
  $("p-password").value = generatePassword();
  showError($("reset-error"), []);
  $("reset-dialog").showModal();
  $("p-password").focus();
}

$("reset-cancel").addEventListener("click", () => $("reset-dialog").close());
$("p-generate").addEventListener("click", () => { $("p-password").value = generatePassword(); });
$("reset-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const account = ui.resetFor;
  const body = { password: $("p-password").value };
  if ($("p-new-totp").checked) body.new_totp = true;
  $("reset-submit").disabled = true;
  try {
    const result = await call(accountPath(account.user_id, "reset-password"), { method: "POST", json: body });
    $("reset-dialog").close();
    notice("admin.resetDone", { id: account.user_id });
    if (isSelf(account.user_id)) {
      // Resetting one's own password ends one's own sessions too.
      if (result.totp_uri) showTotp(result.totp_uri, "admin.totpNewTitle", account, () => location.assign(loginUrl()));
      else location.assign(loginUrl());
      return;
    }
    if (result.totp_uri) showTotp(result.totp_uri, "admin.totpNewTitle", account);
    loadAccounts();
  } catch (err) {
    if (err.status !== 401) showError($("reset-error"), errorText(err).split("；"));
  } finally {
    $("reset-submit").disabled = false;
  }
});

// ---- the TOTP enrolment (shown once) ---------------------------------------------------------------

function secretOf(uri) {
  try {
    return new URL(uri).searchParams.get("secret") ?? "";
  } catch {
    return "";
  }
}

function renderTotp() {
  const shown = ui.totp;
  if (!shown) return;
  $("totp-title").textContent = t(shown.titleKey, { id: shown.user.user_id });
  $("totp-lead").textContent = t("admin.totpBody", { id: shown.user.user_id, name: shown.user.real_name });
}

function showTotp(uri, titleKey, user, afterwards) {
  ui.totp = { uri, titleKey, user, afterwards };
  renderTotp();
  const secret = secretOf(uri);
  $("totp-secret").value = secret.replace(/(.{4})(?=.)/g, "$1 ");
  $("totp-uri").value = uri;
  $("copy-state").textContent = "";
  try {
    const svg = qrSvg(uri, 220);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("admin.totpQr"));
    $("totp-qr").replaceChildren(svg);
  } catch {
    $("totp-qr").replaceChildren();
  }
  $("totp-dialog").showModal();
  $("totp-done").focus();
}

// Escape does not close it by accident: the code cannot be shown again.
$("totp-dialog").addEventListener("cancel", (e) => e.preventDefault());
$("totp-dialog").addEventListener("close", () => {
  const afterwards = ui.totp?.afterwards;
  ui.totp = null;
  $("totp-qr").replaceChildren();
  $("totp-secret").value = "";
  $("totp-uri").value = "";
  afterwards?.();
});

async function copyFrom(field, text) {
  const ok = await copyText(text, field);
  $("copy-state").textContent = t(ok ? "admin.copied" : "admin.copyFailed");
}
$("copy-secret").addEventListener("click", () => copyFrom($("totp-secret"), secretOf(ui.totp?.uri ?? "")));
$("copy-uri").addEventListener("click", () => copyFrom($("totp-uri"), ui.totp?.uri ?? ""));

// ---- webhook deliveries -------------------------------------------------------------------------------

async function loadHooks() {
  const state = $("hook-state").value;
  $("hooks-refresh").disabled = true;
  try {
    // the newest MAX_HOOKS; the total in the state comes with them
    ui.hooks = await call(`/api/v1/webhooks?limit=${MAX_HOOKS}${state ? `&state=${state}` : ""}`);
    showError($("hooks-error"), []);
  } catch (err) {
    showError($("hooks-error"), errorText(err));
  } finally {
    $("hooks-refresh").disabled = false;
  }
  renderHooks();
}

function ageText(seconds) {
  const s = Math.round(seconds);
  if (s < 120) return t("hook.seconds", { n: s });
  if (s < 7200) return t("hook.minutes", { n: Math.round(s / 60) });
  return t("hook.hours", { n: Math.round(s / 3600) });
}

function inspectionOf(delivery) {
  try {
    const body = JSON.parse(delivery.body);
    return body.inspection?.case_no ?? body.inspection?.id ?? "—";
  } catch {
    return "—";
  }
}

function lastAttemptText(d) {
  const last = d.attempts?.[d.attempts.length - 1];
  const parts = [];
  if (last) {
    parts.push(last.status ? `HTTP ${last.status}` : last.error || t("hook.noAnswer"));
    if (last.status && last.error && !/^HTTP/.test(last.error)) parts.push(last.error);
    parts.push(dateTime(last.at));
  }
  if (d.state === "pending" && d.next_attempt_at) parts.push(t("hook.nextAt", { time: dateTime(d.next_attempt_at) }));
  if (d.state === "delivered" && d.delivered_at) parts.push(t("hook.deliveredAt", { time: dateTime(d.delivered_at) }));
  if (d.state === "failed" && d.failed_at) parts.push(t("hook.failedAt", { time: dateTime(d.failed_at) }));
  return parts.join(" · ") || "—";
}

function renderHooks() {
  const data = ui.hooks;
  const stats = data?.stats ?? {};
  const counts = PROTOCOL.webhooks.states.map((s) => {
    const box = document.createElement("div");
    box.className = "stat";
    box.dataset.state = s;
    box.append(
      Object.assign(document.createElement("strong"), { textContent: String(stats[s] ?? 0) }),
      Object.assign(document.createElement("span"), { textContent: t(`hook.state.${s}`) }),
    );
    return box;
  });
  if (typeof stats.oldest_pending_age_s === "number") {
    const box = document.createElement("div");
    box.className = "stat stat-note";
    box.textContent = t("hook.oldest", { age: ageText(stats.oldest_pending_age_s) });
    counts.push(box);
  }
  $("hook-stats").replaceChildren(...(data ? counts : []));
  const items = [...(data?.items ?? [])].reverse();
  const shown = items.slice(0, MAX_HOOKS);
  $("hooks-body").replaceChildren(...shown.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.id = d.delivery_id;
    tr.dataset.state = d.state;
    const td = (text, cls = "") => Object.assign(document.createElement("td"), { textContent: text, className: cls });
    const eventKey = `hook.event.${d.event}`;
    const url = td(d.callback_url, "mono small url-cell");
    url.title = d.callback_url;
    const state = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge hook-badge";
    badge.dataset.state = d.state;
    badge.textContent = t(`hook.state.${d.state}`);
    state.append(badge);
    const attempts = td(String(d.attempts?.length ?? 0), "num");
    if (d.resends) attempts.title = t("hook.resends", { n: d.resends });
    const actions = document.createElement("td");
    actions.className = "row-actions";
    if (d.state === "failed") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn-sm";
      b.dataset.action = "resend";
      b.textContent = t("hook.resend");
      b.addEventListener("click", () => resend(d, b));
      actions.append(b);
    }
    const id = td(dateTime(d.occurred_at), "nowrap");
    id.title = d.delivery_id;
    tr.append(id, td(has(eventKey) ? t(eventKey) : d.event), td(inspectionOf(d), "mono"), url, state, attempts, td(lastAttemptText(d), "small"), actions);
    return tr;
  }));
  $("hooks-empty").hidden = !data || items.length > 0;
  const total = data?.total ?? items.length;
  $("hooks-note").textContent = total > shown.length ? t("hook.shown", { shown: shown.length, total }) : "";
}

async function resend(delivery, button) {
  const ok = await confirmDialog({ title: t("hook.resendTitle"), body: t("hook.resendBody", { id: delivery.delivery_id }), confirm: t("hook.resend") });
  if (!ok) return;
  button.disabled = true;
  try {
    await call(`/api/v1/webhooks/${encodeURIComponent(delivery.delivery_id)}/resend`, { method: "POST" });
    notice("hook.resent");
    await loadHooks();
  } catch (err) {
    button.disabled = false;
    if (err.status !== 401) alertDialog(errorText(err));
  }
}

$("hook-state").addEventListener("change", loadHooks);
$("hooks-refresh").addEventListener("click", loadHooks);

// ---- start ------------------------------------------------------------------------------------------

onLangChange(() => {
  renderNotice();
  renderAccounts();
  if (ui.hooks) renderHooks();
  renderTotp();
  if ($("create-dialog").open) renderRoleChecks($("c-roles"), "c-role");
  if ($("roles-dialog").open) {
    renderRoleChecks($("r-roles"), "r-role");
    $("roles-title").textContent = t("admin.rolesTitle", { id: ui.rolesFor.user_id, name: ui.rolesFor.real_name });
  }
  if ($("reset-dialog").open) $("reset-title").textContent = t("admin.resetTitle", { id: ui.resetFor.user_id, name: ui.resetFor.real_name });
  if (ui.me && !ui.me.permissions.includes("admin")) renderDenied();
});

function renderDenied() {
  $("denied-text").textContent = t("admin.deniedBody", { id: ui.me.user.user_id });
}

async function start() {
  let me;
  try {
    me = await currentStaff();
  } catch (err) {
    $("view-loading").textContent = errorText(err);
    return;
  }
  if (!me || me.user.must_change_password) {
    location.replace(loginUrl());
    return;
  }
  ui.me = me;
  mountStaffBar($("staff-bar"), me);
  $("view-loading").hidden = true;
  if (!me.permissions.includes("admin")) {
    renderDenied();
    $("view-denied").hidden = false;
    return;
  }
  $("admin-tabs").hidden = false;
  route();
}

start();
