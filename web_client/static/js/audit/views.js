// Which of the page's three views is shown: the login choice, the list, or one inspection.

import { apiKey } from "./api.js";
import { $, ui } from "./state.js";

export function show(view) {
  ui.view = view;
  for (const name of ["login", "list", "detail"]) $(`view-${name}`).hidden = name !== view;
  const key = ui.staff ? null : apiKey();
  $("key-state").hidden = !key;
  $("btn-logout").hidden = !key;
  if (key) $("key-hint").textContent = `••••${key.slice(-4)}`;
  if (view !== "detail") $("audit-case-top").textContent = "";
}
