// The inspector's workbench (/workbench): my inspections today and upcoming, with status,
// applicant (ID and phone masked), site and time; start or resume one (the console opens
// with the inspector link, and the staff login the page already holds); send the applicant
// their link (copy, QR code, or an SMS through the server's sender, whose failure is shown);
// cancel with a reason; search by case number. The server shows an inspector only the
// inspections assigned to them (a supervisor sees all).

import { t, bindLangToggles, onLangChange, applyI18n } from "./i18n.js";
import { copyText, currentStaff, errorText, loginUrl, mountStaffBar, showError, staffApi } from "./staff.js";

const $ = (id) => document.getElementById(id);
const OPEN = "scheduled,live,interrupted";
const state = { me: null, items: [], current: null };
window.takanWorkbench = state;

bindLangToggles();

/** When it is (was) due, in China time as the staff read and type it (see chinaTime below). */
function when(record) {
  const value = record.scheduled_at || record.created_at;
  if (!value) return "";
  const at = new Date(value);
  return at.toLocaleString(document.documentElement.lang || undefined, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZone: "Asia/Shanghai" });
}

function applicantText(applicant) {
  const phone = applicant?.contact_phone ? ` ${applicant.contact_phone}` : "";
  return `${applicant?.name ?? ""}${phone}`;
}

function button(key, run, primary = false) {
  const el = Object.assign(document.createElement("button"), { type: "button", className: `btn btn-small${primary ? " btn-primary" : ""}`, textContent: t(key) });
  el.dataset.action = key;
  el.addEventListener("click", run);
  return el;
}

/** China's civil date (UTC+8) of a moment, as "YYYY-MM-DD". */
function chinaDate(moment) {
  return new Date(new Date(moment).getTime() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

/** "today" (live, interrupted, or due today), "upcoming" (a later day) or "earlier" (overdue). */
function groupOf(record) {
  if (record.status === "live" || record.status === "interrupted") return "today";
  const day = chinaDate(record.scheduled_at ?? record.created_at);
  const today = chinaDate(Date.now());
  return day === today ? "today" : day > today ? "upcoming" : "earlier";
}

const GROUPS = ["today", "upcoming", "earlier"];

function render() {
  const body = $("wb-body");
  body.replaceChildren();
  const ordered = [...state.items].sort((a, b) => GROUPS.indexOf(groupOf(a)) - GROUPS.indexOf(groupOf(b)));
  let group = null;
  for (const record of ordered) {
    if (groupOf(record) !== group) {
      group = groupOf(record);
      const head = document.createElement("tr");
      head.className = "wb-group";
      head.dataset.group = group;
      head.append(Object.assign(document.createElement("th"), { colSpan: 6, scope: "colgroup", textContent: t(`wb.group.${group}`) }));
      body.append(head);
    }
    const tr = document.createElement("tr");
    tr.dataset.id = record.id;
    tr.dataset.case = record.case_no;
    const cells = [when(record), record.case_no, t(`wb.status.${record.status}`), applicantText(record.applicant), record.site?.address ?? ""];
    for (const text of cells) tr.append(Object.assign(document.createElement("td"), { textContent: text }));
    const actions = document.createElement("td");
    actions.className = "wb-actions";
    actions.append(
      button(record.status === "interrupted" ? "wb.resume" : "wb.start", () => start(record), true),
      button("wb.sendLink", () => openLink(record)),
      ...(record.status === "scheduled" ? [button("wb.reschedule", () => reschedule(record))] : []),
      button("wb.cancel", () => cancel(record)),
      ...(canAssign() ? [button("wb.assign", () => assign(record))] : []),
    );
    tr.append(actions);
    body.append(tr);
  }
  $("wb-empty").hidden = state.items.length > 0;
}

async function load() {
  const caseNo = $("wb-case").value.trim();
  const query = new URLSearchParams({ status: OPEN });
  if (caseNo) query.set("case_no", caseNo);
  try {
    const page = await staffApi(`/api/v1/inspections?${query}`);
    state.items = page.items.sort((a, b) => String(a.scheduled_at ?? a.created_at).localeCompare(String(b.scheduled_at ?? b.created_at)));
    $("wb-error").hidden = true;
  } catch (err) {
    showError($("wb-error"), errorText(err));
    state.items = [];
  }
  render();
}

async function links(record) {
  return staffApi(`/api/v1/inspections/${encodeURIComponent(record.id)}/links`);
}

async function start(record) {
  try {
    location.assign((await links(record)).inspector_url);
  } catch (err) {
    showError($("wb-error"), errorText(err));
  }
}

async function openLink(record) {
  state.current = record;
  $("wb-link-status").textContent = "";
  try {
    const got = await links(record);
    $("wb-link").value = got.applicant_url;
    $("wb-qr").src = got.applicant_qr_png;
    $("wb-link-dialog").showModal();
  } catch (err) {
    showError($("wb-error"), errorText(err));
  }
}

async function sendSms() {
  const status = $("wb-link-status");
  status.textContent = t("wb.sending");
  try {
    const sent = await staffApi(`/api/v1/inspections/${encodeURIComponent(state.current.id)}/invite`, { method: "POST", json: {} });
    status.textContent = t("wb.smsSent", { phone: sent.sent_to });
    status.dataset.result = "sent";
  } catch (err) {
    status.textContent = t("wb.smsFailed", { message: err.detail || err.message });
    status.dataset.result = "failed";
  }
}

/** "2026-12-02 09:30" (China time, as the staff type it) -> RFC 3339 with +08:00. */
export function chinaTime(text) {
  const m = String(text ?? "").trim().match(/^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})$/);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:00+08:00` : null;
}

async function reschedule(record) {
  const answer = window.prompt(t("wb.rescheduleAsk", { case: record.case_no }), "");
  if (answer === null) return;
  const when = chinaTime(answer);
  if (!when) {
    showError($("wb-error"), t("wb.rescheduleBad"));
    return;
  }
  try {
    await staffApi(`/api/v1/inspections/${encodeURIComponent(record.id)}/reschedule`, { method: "POST", json: { scheduled_at: when } });
  } catch (err) {
    showError($("wb-error"), errorText(err));
  }
  await load();
}

/** A supervisor (the assign permission) names another inspector. */
function canAssign() {
  return (state.me?.permissions ?? []).includes("assign");
}

async function assign(record) {
  const userId = window.prompt(t("wb.assignAsk", { case: record.case_no, name: record.inspector_name ?? "—" }), "");
  if (!userId || !userId.trim()) return;
  try {
    await staffApi(`/api/v1/inspections/${encodeURIComponent(record.id)}/assign`, { method: "POST", json: { inspector_user_id: userId.trim() } });
  } catch (err) {
    showError($("wb-error"), errorText(err));
  }
  await load();
}

async function cancel(record) {
  const reason = window.prompt(t("wb.cancelReason", { case: record.case_no }));
  if (!reason || !reason.trim()) return;
  try {
    await staffApi(`/api/v1/inspections/${encodeURIComponent(record.id)}/cancel`, { method: "POST", json: { reason: reason.trim() } });
  } catch (err) {
    showError($("wb-error"), errorText(err));
  }
  await load();
}

$("wb-copy").addEventListener("click", async () => {
  const ok = await copyText($("wb-link").value, $("wb-link"));
  $("wb-link-status").textContent = t(ok ? "wb.copied" : "wb.copyFailed");
});
$("wb-sms").addEventListener("click", sendSms);
$("wb-search").addEventListener("submit", (event) => { event.preventDefault(); load(); });
onLangChange(() => { applyI18n(); render(); });

async function main() {
  applyI18n();
  state.me = await currentStaff();
  if (!state.me) {
    location.assign(loginUrl());
    return;
  }
  mountStaffBar($("staff-bar"), state.me);
  $("staff-bar").hidden = false;
  $("view-loading").hidden = true;
  $("view-list").hidden = false;
  await load();
}

main();
