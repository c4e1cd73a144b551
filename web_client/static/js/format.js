// Small formatters shared by the pages: clock times, durations, sizes, distances, and the
// text for an action's error ack.

import { t, lang } from "./i18n.js";

const pad = (n) => String(n).padStart(2, "0");

/** "mm:ss" (or "h:mm:ss" past an hour) for a duration in ms; negative counts as 0. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

/** Local "HH:MM:SS" of an RFC 3339 time (or a ms timestamp). */
export function timeOfDay(at) {
  const d = typeof at === "number" ? new Date(at) : new Date(at ?? NaN);
  if (Number.isNaN(d.getTime())) return "—";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local "YYYY-MM-DD HH:MM" of an RFC 3339 time. */
export function dateTime(at) {
  if (!at) return "—";
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return "—";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Local "YYYY-MM-DD HH:MM:SS" of an ASN.1 GeneralizedTime in UTC ("20261203131719Z", a
 * timestamp token's genTime, maybe with a fraction); the text itself if it is not one. */
export function generalizedTime(text) {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:[.,]\d+)?Z$/.exec(text ?? "");
  if (!m) return text ?? "—";
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${timeOfDay(d.getTime())}`;
}

/** "25 分钟" / "45 s": a whole number of minutes when it is one, else seconds. */
export function minutes(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 60 && s % 60 === 0) return t("timer.minutes", { n: s / 60 });
  if (s >= 120) return t("timer.minutes", { n: Math.round(s / 60) });
  return t("timer.seconds", { n: s });
}

export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export function distance(m) {
  if (typeof m !== "number" || !Number.isFinite(m)) return "—";
  if (m < 1000) return `${Math.round(m)} m`;
  return `${(m / 1000).toFixed(m < 10000 ? 2 : 1)} km`;
}

export function coords(lat, lon) {
  if (typeof lat !== "number" || typeof lon !== "number") return "—";
  return `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
}

/** Number formatting that follows the page language. */
export function count(n) {
  return new Intl.NumberFormat(lang() === "zh" ? "zh-CN" : "en").format(n);
}

/** The text for a failed action ack `{ok: false, error: {code, message}}`. */
export function actionError(error) {
  const code = error?.code ?? "internal";
  const message = error?.message || code;
  if (code === "conflict" && /no picture/i.test(message)) return t("act.noPicture");
  if (["overtime_reason_required", "unavailable", "not_connected", "timeout", "forbidden"].includes(code)) {
    return t(`act.${code}`);
  }
  return t("act.failed", { message });
}
