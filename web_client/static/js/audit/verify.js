// The verification panel: the server's report on the sealed evidence (signature, hashes, log
// chain, the trusted timestamp and whether its TSA is trusted), "open" before the end, and the
// downloads it enables.

import { t } from "../i18n.js";
import { count, generalizedTime } from "../format.js";
import { PROTOCOL } from "../protocol.js";
import { errorText } from "./api.js";
import { $, ui } from "./state.js";

/** Statuses of an inspection that is not over yet (nothing final to verify before the end). */
const UNSEALED = PROTOCOL.open_statuses;

export function setVerify(state) {
  $("verify").dataset.state = state;
  if (state === "pending") {
    $("verify-title").textContent = t("ver.pending");
    $("verify-detail").textContent = "";
    $("verify-problems").hidden = true;
  }
}

export function renderVerify() {
  const d = ui.detail;
  const report = d?.report;
  const problems = $("verify-problems");
  problems.hidden = true;
  if (report && !report.ok && !d.manifest && UNSEALED.includes(d.record?.status)) {
    // Not sealed yet: nothing is wrong, there is just nothing to verify before the end.
    setVerify("open");
    $("verify-title").textContent = t("ver.open");
    $("verify-detail").textContent = t("ver.openDetail", { status: t(`status.${d.record.status}`) });
  } else if (!report) {
    setVerify("error");
    $("verify-title").textContent = t("ver.unavailable");
    $("verify-detail").textContent = d?.reportError ? errorText(d.reportError) : "";
  } else if (report.ok) {
    setVerify("ok");
    $("verify-title").textContent = t("ver.ok");
    const extra = [];
    if (report.sm2_key_id) extra.push(t("ver.sm2", { kid: report.sm2_key_id }));
    if (report.timestamp === "pending") extra.push(t("ver.tsaPending"));
    else if (report.timestamp_trust === "trusted") extra.push(t("ver.tsaTrusted", { at: generalizedTime(report.timestamp), ca: report.timestamp_ca ?? "—" }));
    // sound, but nothing configured says the TSA is a real one: said plainly, not as a failure
    else if (report.timestamp) extra.push(t("ver.tsaUntrusted", { at: generalizedTime(report.timestamp) }));
    $("verify-detail").textContent = [t("ver.okDetail", {
      kid: report.key_id ?? "—",
      objects: count(report.objects_checked ?? 0),
      events: count(report.events_checked ?? 0),
    }), ...extra].join(" · ");
  } else {
    setVerify("bad");
    $("verify-title").textContent = t("ver.bad");
    const lead = report.timestamp_trust === "failed" ? [t("ver.tsaFailed")] : [];
    $("verify-detail").textContent = [...lead, t("ver.firstProblem", { problem: report.first_problem ?? "?" })].join(" · ");
    const list = report.problems ?? [];
    if (list.length > 1) {
      problems.replaceChildren(...list.slice(1, 21).map((p) => {
        const li = document.createElement("li");
        li.textContent = `${p.where}: ${p.message}`;
        return li;
      }));
      problems.hidden = false;
    }
  }
  const sealed = !!d?.manifest;
  $("dl-manifest").disabled = !sealed;
  $("dl-signature").disabled = !sealed;
  $("dl-events").disabled = !d?.events.length;
}
