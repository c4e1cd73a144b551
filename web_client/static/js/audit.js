// The auditor's replay page (/audit): a staff login (the session cookie) or an API key (kept
// in sessionStorage only), finding inspections, and for one inspection its verification
// report, the recorded video with the event timeline beside it (clicking an event seeks
// there), and the sealed manifest and its signature to download. A logged-in staff member's
// requests carry the cookie; otherwise every request carries `Authorization: Bearer <key>`.
//
// This module is the page's entry: who is calling, the routing between its views, and the
// language. Each part of the page is a module of audit/:
//   state.js      what the page shows (window.takanAudit)
//   api.js        the REST calls, the key, errors
//   views.js      which view is shown
//   search.js     the filter form and the result list
//   inspection.js loading one inspection and drawing its view
//   record.js     its heading, facts, checkpoints and sealed objects
//   verify.js     the verification panel
//   player.js     the replay and its transport and scrubber
//   timeline.js   the event timeline
//   review.js     the verdict and review card
//   export.js     the downloads (manifest, signature, event log)

import { t, lang, bindLangToggles, onLangChange, applyI18n } from "./i18n.js";
import { currentStaff, loginUrl, mountStaffBar } from "./staff.js";
import { apiKey, forgetKey, saveKey, whenUnauthorized } from "./audit/api.js";
import { closeInspection, openInspection, renderInspection } from "./audit/inspection.js";
import { renderList, resetSearch, search } from "./audit/search.js";
import { $, ui } from "./audit/state.js";
import { show } from "./audit/views.js";
import "./audit/export.js";

window.takanAudit = ui;

bindLangToggles();

// ---- who is calling, and routing ---------------------------------------------------------------

function route() {
  if (!ui.staff && !apiKey()) {
    closeInspection();
    show("login");
    $("staff-login").href = loginUrl();
    return;
  }
  const m = location.hash.match(/^#\/i\/(.+)$/);
  if (m) openInspection(decodeURIComponent(m[1]));
  else {
    closeInspection();
    show("list");
    if (!ui.list.query) search();
  }
}

function logout(message) {
  forgetKey();
  resetSearch();
  closeInspection();
  show("login");
  $("staff-login").href = loginUrl();
  $("login-error").textContent = message ?? "";
  $("login-error").hidden = !message;
}

/** The staff session ended (logged out, expired): back to the choice of login or key. */
function staffEnded(message) {
  ui.staff = null;
  $("staff-bar").hidden = true;
  $("staff-bar").replaceChildren();
  logout(message);
}

whenUnauthorized(() => {
  if (ui.staff) staffEnded(t("staff.sessionExpired"));
  else logout(t("audit.keyRejected"));
});

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  saveKey(key);
  $("login-error").hidden = true;
  $("api-key").value = "";
  route();
});
$("btn-logout").addEventListener("click", () => {
  logout(null);
  location.hash = "";
});
addEventListener("hashchange", route);
$("back-link").addEventListener("click", (e) => {
  e.preventDefault();
  location.hash = "";
});

// ---- language ----------------------------------------------------------------------------------

onLangChange(() => {
  applyI18n();
  if (ui.view === "list") renderList();
  if (ui.view === "detail") renderInspection();
});

document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";

/** A logged-in staff member (auditor, reviewer, ...) uses the page without a key. */
async function start() {
  let me = null;
  try {
    me = await currentStaff();
  } catch { /* the server is unreachable: the key form still works once it is back */ }
  if (me?.user.must_change_password) {
    location.assign(loginUrl());
    return;
  }
  if (me) {
    ui.staff = me;
    mountStaffBar($("staff-bar"), me, {
      onLoggedOut: () => {
        staffEnded(null);
        location.hash = "";
      },
    });
  }
  route();
}

start();
