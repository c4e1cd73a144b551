// Finding inspections: the filter form (case number, status, period), the result list and
// "more" (cursor paging). A row opens the inspection (#/i/<id>).

import { t } from "../i18n.js";
import { clock, dateTime } from "../format.js";
import { api, errorText } from "./api.js";
import { $, ui } from "./state.js";

const PAGE_SIZE = 50;

function localDay(value, addDays = 0) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + addDays).toISOString();
}

function currentQuery() {
  const q = new URLSearchParams();
  const caseNo = $("f-case").value.trim();
  if (caseNo) q.set("case_no", caseNo);
  if ($("f-status").value) q.set("status", $("f-status").value);
  if ($("f-from").value) q.set("from", localDay($("f-from").value));
  if ($("f-to").value) q.set("to", localDay($("f-to").value, 1));
  q.set("limit", String(PAGE_SIZE));
  return q;
}

/** Run the form's query (or fetch its next page, `more`) and show the results. */
export async function search(more = false) {
  const q = more ? new URLSearchParams(ui.list.query) : currentQuery();
  if (more && ui.list.cursor) q.set("cursor", ui.list.cursor);
  if (!more) ui.list = { items: [], cursor: null, query: q.toString() };
  $("list-error").hidden = true;
  $("f-search").disabled = true;
  $("list-more").disabled = true;
  try {
    const page = await api(`/api/v1/inspections?${q}`);
    ui.list.items.push(...(page.items ?? []));
    ui.list.cursor = page.next_cursor ?? null;
  } catch (err) {
    if (err.status !== 401) {
      $("list-error").textContent = errorText(err);
      $("list-error").hidden = false;
    }
  } finally {
    $("f-search").disabled = false;
    $("list-more").disabled = false;
  }
  renderList();
}

export function resetSearch() {
  ui.list = { items: [], cursor: null, query: null };
}

export function renderList() {
  const body = $("list-body");
  body.replaceChildren(...ui.list.items.map((r) => {
    const tr = document.createElement("tr");
    tr.className = "list-row";
    tr.dataset.id = r.id;
    tr.tabIndex = 0;
    const cells = [
      r.case_no ?? "—",
      r.item_name ?? "—",
      null,
      dateTime(r.started_at),
      dateTime(r.ended_at),
      typeof r.duration_s === "number" ? clock(r.duration_s * 1000) : "—",
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 2) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.dataset.status = r.status;
        badge.textContent = t(`status.${r.status}`);
        td.append(badge);
      } else {
        td.textContent = text;
      }
      if (i === 0) td.className = "mono";
      tr.append(td);
    });
    const open = () => { location.hash = `#/i/${encodeURIComponent(r.id)}`; };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return tr;
  }));
  $("list-empty").hidden = ui.list.items.length > 0;
  $("list-empty").textContent = t("audit.noResults");
  $("list-more").hidden = !ui.list.cursor;
}

$("filter-form").addEventListener("submit", (e) => {
  e.preventDefault();
  search();
});
$("f-reset").addEventListener("click", () => {
  $("filter-form").reset();
  search();
});
$("list-more").addEventListener("click", () => search(true));
