// The applicant's own photo, full resolution from the phone's camera app, uploaded over HTTP:
// POST /api/v1/session/photos, multipart/form-data (file, checkpoint, taken_at, lat, lon,
// accuracy_m, held, upload_id), authorised by the link token in X-Takan-Token (docs/protocol.md).

import { PROTOCOL } from "./protocol.js";

export const MAX_PHOTO_BYTES = PROTOCOL.limits.photo_bytes;
const TIMEOUT_MS = 5 * 60000; // a large photo over a slow mobile uplink

/**
 * Resolves to {ok: true, body} (201) or {ok: false, code, message, status}; never rejects.
 * `onprogress(fraction)` follows the upload.
 */
export function uploadPhoto({ token, file, checkpoint, fix, onprogress, takenAt, held = false, uploadId }) {
  return new Promise((resolve) => {
    if (file.size > MAX_PHOTO_BYTES) {
      resolve({ ok: false, code: "too_large", message: `photo over ${Math.round(MAX_PHOTO_BYTES / (1024 * 1024))} MB`, status: 0 });
      return;
    }
    const form = new FormData();
    form.append("checkpoint", checkpoint);
    // the device's capture time: the camera app's file time, else now
    form.append("taken_at", takenAt || new Date(file.lastModified || Date.now()).toISOString());
    if (held) form.append("held", "1"); // it waited on the phone for the network
    // the same for every try of this photo: a retry after a lost answer is not stored twice
    if (uploadId) form.append("upload_id", uploadId);
    if (fix) {
      form.append("lat", String(fix.lat));
      form.append("lon", String(fix.lon));
      if (typeof fix.accuracy_m === "number") form.append("accuracy_m", String(fix.accuracy_m));
    }
    form.append("file", file, file.name || "photo.jpg");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/session/photos");
    xhr.setRequestHeader("X-Takan-Token", token);
    xhr.timeout = TIMEOUT_MS;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onprogress?.(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 201) {
        resolve({ ok: true, body });
        return;
      }
      // RFC 9457 problem: the code is the last part of its type URI.
      const code = typeof body?.type === "string" ? body.type.split("/").pop() : `http_${xhr.status}`;
      resolve({ ok: false, code, message: body?.detail || xhr.statusText || `HTTP ${xhr.status}`, status: xhr.status });
    };
    xhr.onerror = () => resolve({ ok: false, code: "network", message: "network error", status: 0 });
    xhr.ontimeout = () => resolve({ ok: false, code: "network", message: "timeout", status: 0 });
    xhr.send(form);
  });
}

/** A new photo's upload id (crypto.randomUUID needs a secure context; plain-HTTP labs lack one). */
export function newUploadId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
