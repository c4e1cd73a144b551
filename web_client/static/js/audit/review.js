// The verdict and review card (5.6): the rules' verdict and reasons, a review already made,
// and for a judged inspection the form to pass or fail it with a comment.

import { t, has, lang } from "../i18n.js";
import { dateTime } from "../format.js";
import { apiPost, inspectionPath } from "./api.js";
import { outcomeName } from "./record.js";
import { $, ui } from "./state.js";
import { actorName } from "./timeline.js";

// error: "" or a function giving the message in the current language
const review = { forId: null, busy: false, error: "" };
let reviewed = () => {};

/** Call `fn(detail)` once a review of `detail` is recorded (its record is updated already). */
export function whenReviewed(fn) {
  reviewed = fn;
}

export function renderReview() {
  const d = ui.detail;
  const r = d?.record;
  const verdict = r?.verdict;
  const card = $("review");
  card.hidden = !verdict || !["judged", "reviewed"].includes(r.status);
  if (card.hidden) return;
  if (review.forId !== d.id) {
    // another inspection: a fresh form
    Object.assign(review, { forId: d.id, busy: false, error: "" });
    $("review-form").reset();
  }
  const judged = r.status === "judged";
  const needed = judged && verdict.outcome === "manual_review";
  card.dataset.needed = String(needed);
  $("review-outcome").dataset.outcome = verdict.outcome ?? "";
  $("review-outcome").textContent = outcomeName(verdict.outcome);
  $("review-meta").textContent = verdict.rules_version || verdict.decided_at
    ? t("review.rulesVersion", { version: verdict.rules_version ?? "—", time: dateTime(verdict.decided_at) }) : "";
  $("review-note").hidden = !judged;
  $("review-note").dataset.needed = String(needed);
  $("review-note").textContent = judged ? t(needed ? "review.needed" : "review.optional") : "";

  const reasons = Array.isArray(verdict.reasons) ? verdict.reasons : [];
  $("review-reasons").replaceChildren(...(reasons.length ? reasons.map((reason) => {
    const li = document.createElement("li");
    li.className = "reason";
    li.dataset.severity = reason?.severity ?? "";
    const sev = document.createElement("span");
    sev.className = "reason-sev";
    const sevKey = `review.severity.${reason?.severity}`;
    sev.textContent = has(sevKey) ? t(sevKey) : String(reason?.severity ?? "—");
    const msg = document.createElement("span");
    msg.className = "reason-msg";
    msg.textContent = (lang() === "en" ? reason?.message_en || reason?.message : reason?.message || reason?.message_en) ?? String(reason);
    const rule = document.createElement("span");
    rule.className = "reason-rule mono";
    rule.textContent = reason?.rule ?? "";
    li.append(sev, msg, rule);
    return li;
  }) : [Object.assign(document.createElement("li"), { className: "reasons-empty", textContent: t("review.noReasons") })]));

  const done = verdict.review;
  $("review-result").hidden = !done;
  if (done) {
    $("review-result").dataset.outcome = done.outcome ?? "";
    $("review-result-title").textContent = t("review.done", { outcome: outcomeName(done.outcome) });
    $("review-result-meta").textContent = t("review.by", { reviewer: actorName(done.reviewer ?? ""), time: dateTime(done.at) });
    $("review-result-comment").textContent = done.comment ?? "";
    $("review-result-comment").hidden = !done.comment;
  }
  $("review-form").hidden = !judged;
  $("review-submit").disabled = review.busy;
  $("review-submit").classList.toggle("busy", review.busy);
  $("review-submit-text").textContent = t(review.busy ? "review.submitting" : "review.submit");
  $("review-error").textContent = review.error ? review.error() : "";
  $("review-error").hidden = !review.error;
}

$("review-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = ui.detail;
  if (!d?.record || review.busy) return;
  const outcome = $("review-form").querySelector("input[name='review-outcome']:checked")?.value;
  if (!outcome) {
    review.error = () => t("review.pick");
    renderReview();
    return;
  }
  const comment = $("review-comment").value.trim();
  Object.assign(review, { busy: true, error: "" });
  renderReview();
  try {
    const result = await apiPost(`${inspectionPath(d.id)}/review`, { outcome, comment });
    if (ui.detail !== d) return;
    d.record = { ...d.record, status: result.status ?? "reviewed", verdict: result.verdict ?? d.record.verdict };
    review.busy = false;
    reviewed(d);
  } catch (err) {
    review.busy = false;
    review.error = () => (err.status === 403 ? t("review.forbidden", { message: err.message })
      : err.code === "network" ? t("audit.networkError") : t("review.failed", { message: err.message }));
    renderReview();
  }
});
