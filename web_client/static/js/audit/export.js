// Downloads of the sealed evidence for checking elsewhere (`takan verify`, openssl, sha256sum):
// the manifest, its signature and the event log.

import { api, errorText, inspectionPath, objectPath } from "./api.js";
import { $, ui } from "./state.js";

async function download(path, name) {
  try {
    const blob = await api(path, "blob");
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    $("detail-error").textContent = errorText(err);
    $("detail-error").hidden = false;
  }
}

$("dl-manifest").addEventListener("click", () => download(`${inspectionPath(ui.detail.id)}/manifest`, `${ui.detail.id}-manifest.json`));
$("dl-signature").addEventListener("click", () => download(`${inspectionPath(ui.detail.id)}/manifest.sig`, `${ui.detail.id}-manifest.json.sig`));
$("dl-events").addEventListener("click", () => download(objectPath(ui.detail.id, "events.jsonl"), `${ui.detail.id}-events.jsonl`));
