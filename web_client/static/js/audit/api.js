// The auditor page's calls to the REST API: with the staff session cookie when a staff member is
// logged in, otherwise with `Authorization: Bearer <key>` (the key kept in sessionStorage only).

import { t } from "../i18n.js";
import { ui } from "./state.js";

const KEY_STORAGE = "takan.auditKey";
let onUnauthorized = () => {};

export function apiKey() {
  try { return sessionStorage.getItem(KEY_STORAGE); } catch { return null; }
}

export function saveKey(key) {
  try { sessionStorage.setItem(KEY_STORAGE, key); } catch { /* private mode: the key lives for this page only */ }
}

export function forgetKey() {
  try { sessionStorage.removeItem(KEY_STORAGE); } catch { /* ignore */ }
}

/** Call `fn()` when the server answers 401 (the key was rejected or the staff session ended). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

const problemCode = (body, response) => (typeof body?.type === "string" ? body.type.split("/").pop() : `http_${response.status}`);

/** GET `path` as "json", "text" or "blob"; throws ApiError. */
export async function api(path, as = "json") {
  const key = apiKey();
  if (!ui.staff && !key) throw new ApiError(401, "unauthorized", "no API key");
  // Logged in: the session cookie goes along (same origin) and no key is sent.
  const init = ui.staff
    ? { credentials: "same-origin", cache: "no-store" }
    : { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", String(err?.message ?? err));
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not a problem document */ }
    const error = new ApiError(response.status, problemCode(body, response), body?.detail || response.statusText);
    if (response.status === 401) onUnauthorized();
    throw error;
  }
  if (as === "json") return response.json();
  if (as === "text") return response.text();
  return response.blob();
}

/** POST JSON with the page's credentials (the staff cookie, or the API key); throws ApiError. */
export async function apiPost(path, json) {
  const key = ui.staff ? null : apiKey();
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: JSON.stringify(json), credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network", String(err?.message ?? err));
  }
  let body = null;
  try { body = await response.json(); } catch { /* empty or not JSON */ }
  if (!response.ok) {
    const fields = Array.isArray(body?.errors) ? body.errors.map((e) => `${e.field} ${e.message}`).join("; ") : "";
    throw new ApiError(response.status, problemCode(body, response), [body?.detail || response.statusText, fields].filter(Boolean).join(": "));
  }
  return body;
}

export const inspectionPath = (id) => `/api/v1/inspections/${encodeURIComponent(id)}`;
export const objectPath = (id, key) => `${inspectionPath(id)}/objects/${key.split("/").map(encodeURIComponent).join("/")}`;

export function errorText(err) {
  if (err?.code === "network") return t("audit.networkError");
  return t("audit.apiError", { message: err?.message ?? String(err) });
}
