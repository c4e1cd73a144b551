// One inspection's record as the auditor reads it: the heading, the facts (case, applicant, site,
// times, verdict, seal), the checkpoints and the sealed objects.

import { t } from "../i18n.js";
import { bytes, clock, dateTime } from "../format.js";
import { $, ui } from "./state.js";

const OUTCOMES = { pass: "audit.outcomePass", fail: "audit.outcomeFail", manual_review: "audit.outcomeManual" };

export function outcomeName(outcome) {
  return OUTCOMES[outcome] ? t(OUTCOMES[outcome]) : String(outcome ?? "?");
}

function verdictText(verdict) {
  if (!verdict) return "—";
  const key = OUTCOMES[verdict.outcome];
  const reasons = Array.isArray(verdict.reasons) ? verdict.reasons.map((r) => r?.message ?? r?.code ?? String(r)) : [];
  return [key ? t(key) : String(verdict.outcome ?? "?"), ...reasons].join(" · ");
}

export function renderHead() {
  const r = ui.detail?.record;
  $("d-case").textContent = r?.case_no ?? "…";
  $("d-item").textContent = r?.item_name ?? "";
  $("d-status").dataset.status = r?.status ?? "";
  $("d-status").textContent = r ? t(`status.${r.status}`) : "";
  $("d-status").hidden = !r;
  $("audit-case-top").textContent = r ? `${t("info.caseNo")} ${r.case_no}` : "";
}

export function renderFacts() {
  const r = ui.detail?.record;
  if (!r) return;
  const m = ui.detail.manifest;
  const rows = [
    ["info.caseNo", r.case_no],
    ["info.item", r.item_name],
    ["audit.applicant", [r.applicant?.name, r.applicant?.contact_name].filter(Boolean).join(" · ")],
    ["info.address", r.site?.address],
    ["audit.scheduled", dateTime(r.scheduled_at)],
    ["audit.started", dateTime(r.started_at)],
    ["audit.ended", dateTime(r.ended_at)],
    ["audit.duration", typeof r.duration_s === "number" ? clock(r.duration_s * 1000) : "—"],
    ["audit.verdict", verdictText(r.verdict)],
    ["audit.sealedAt", m ? dateTime(m.sealed_at) : t("audit.notSealed")],
    ["audit.merkleRoot", m?.merkle?.root ?? "—"],
    ["audit.logHead", m?.log?.head ?? "—"],
  ];
  $("d-facts").replaceChildren(...rows.flatMap(([key, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value || "—";
    if (key === "audit.merkleRoot" || key === "audit.logHead") dd.className = "mono small";
    return [dt, dd];
  }));
  const checkpoints = r.checkpoints ?? [];
  $("d-checkpoints").replaceChildren(...checkpoints.map((c) => {
    const li = document.createElement("li");
    li.dataset.state = c.captured ? "captured" : "pending";
    const mark = document.createElement("span");
    mark.className = "chk-mark";
    mark.textContent = c.captured ? "✓" : "";
    const title = document.createElement("span");
    title.className = "chk-title";
    title.textContent = c.title;
    const tag = document.createElement("span");
    tag.className = `chk-tag${c.required ? " required" : ""}`;
    tag.textContent = t(c.required ? "chk.required" : "chk.optional");
    const n = document.createElement("span");
    n.className = "chk-count";
    n.textContent = c.captured ? t("chk.captured", { n: (c.evidence ?? []).length }) : t("chk.pending");
    li.append(mark, title, tag, n);
    return li;
  }));
  if (!checkpoints.length) {
    const li = document.createElement("li");
    li.textContent = t("chk.empty");
    $("d-checkpoints").replaceChildren(li);
  }
}

export function renderObjects() {
  const objects = ui.detail?.manifest?.objects ?? [];
  $("objects-summary").textContent = t("audit.objects", { n: objects.length });
  $("objects-body").replaceChildren(...objects.map((o) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[o.key, "mono"], [o.kind, ""], [bytes(o.size), "num"], [o.sha256?.slice(0, 16) + "…", "mono small"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.title = o.sha256 ?? "";
    return tr;
  }));
}
