// The staff login page (/login): user id, password and the 6-digit code of an authenticator
// app (clause 9.3.3). A first login (or one after an admin's reset, or with a password past
// its age) goes on to the change-password form; changing the password ends every session of
// the account, so the page then logs in again with the new password and the next code.
// Afterwards it goes to `?next=` (a path on this site) or the staff member's usual page.
// `?change=1` opens the change form for someone already logged in.

import { t, bindLangToggles, onLangChange } from "./i18n.js";
import { dateTime } from "./format.js";
import {
  ApiError, currentStaff, errorText, landingFor, mountStaffBar, problemLines, safeNext, showError, staffApi,
} from "./staff.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next"));

const state = {
  view: "loading",
  me: null, // {user, permissions} once logged in
  userId: "",
  newPassword: "", // kept only for the log-in-again step after a change
  forced: false, // the server requires the change (not the user's own choice)
};
window.takanLogin = state;

bindLangToggles();

function show(view) {
  state.view = view;
  $("view-loading").hidden = view !== "loading";
  $("signin-form").hidden = view !== "signin";
  $("change-form").hidden = view !== "change";
  $("relogin-form").hidden = view !== "relogin";
  $("view-signed-in").hidden = view !== "signed-in";
  const first = { signin: $("user-id").value ? "password" : "user-id", change: "old-password", relogin: "relogin-totp" }[view];
  if (first) $(first).focus();
}

function destination(user) {
  return next ?? landingFor(user);
}

function go(user) {
  location.assign(destination(user));
}

/** A code as typed ("123 456" from the app's display is fine) or null if it is not 6 digits. */
function codeOf(input) {
  const code = input.value.replace(/\s+/g, "");
  return /^\d{6}$/.test(code) ? code : null;
}

/** What a failed login means to the person at the keyboard. */
function loginError(err) {
  if (err.status === 401) return t("login.badCredentials");
  if (err.status === 403) return t("login.disabled");
  if (err.status === 429) {
    const until = err.errors?.find((e) => e.locked_until)?.locked_until;
    return until ? t("login.locked", { time: dateTime(until) }) : t("login.tooMany");
  }
  if (err.status === 422 && err.errors?.length) return problemLines(err);
  return errorText(err);
}

async function login(userId, password, code) {
  return staffApi("/api/v1/auth/login", { method: "POST", json: { user_id: userId, password, totp: code } });
}

function busy(button, on) {
  button.disabled = on;
  button.classList.toggle("busy", on);
}

// ---- 1. log in -------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const userId = $("user-id").value.trim().toLowerCase();
  const password = $("password").value;
  const code = codeOf($("totp"));
  if (!userId || !password) return showError($("signin-error"), t("login.missing"));
  if (!code) {
    showError($("signin-error"), t("login.totpFormat"));
    $("totp").focus();
    return;
  }
  showError($("signin-error"), []);
  busy($("signin-submit"), true);
  try {
    const result = await login(userId, password, code);
    state.userId = result.user.user_id;
    if (result.must_change_password) {
      state.forced = true;
      state.me = { user: result.user };
      mountStaffBar($("staff-bar"), state.me, { onLoggedOut: loggedOut, changeLink: false });
      $("password").value = "";
      $("totp").value = "";
      openChange();
      return;
    }
    go(result.user);
  } catch (err) {
    showError($("signin-error"), loginError(err));
    $("password").value = "";
    $("totp").value = "";
    $("password").focus();
  } finally {
    busy($("signin-submit"), false);
  }
});

// ---- 2. change the password --------------------------------------------------------------------

function openChange() {
  for (const id of ["old-password", "new-password", "repeat-password"]) $(id).value = "";
  $("change-username").value = state.userId;
  $("change-why").textContent = t(state.forced ? "login.changeBody" : "login.changeOwn");
  $("change-cancel").hidden = state.forced;
  $("change-cancel").href = destination(state.me?.user);
  showError($("change-error"), []);
  show("change");
}

$("change-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const oldPassword = $("old-password").value;
  const newPassword = $("new-password").value;
  if (!oldPassword || !newPassword) return showError($("change-error"), t("login.missing"));
  if (newPassword !== $("repeat-password").value) {
    showError($("change-error"), t("login.mismatch"));
    $("repeat-password").focus();
    return;
  }
  showError($("change-error"), []);
  busy($("change-submit"), true);
  try {
    await staffApi("/api/v1/auth/password", { method: "POST", json: { old_password: oldPassword, new_password: newPassword } });
    state.newPassword = newPassword;
    $("staff-bar").hidden = true; // the change ended this session too
    for (const id of ["old-password", "new-password", "repeat-password"]) $(id).value = "";
    showError($("relogin-error"), []);
    $("relogin-totp").value = "";
    show("relogin");
  } catch (err) {
    if (err.status === 401 && /session expired/i.test(err.detail)) {
      showError($("signin-error"), t("staff.sessionExpired"));
      show("signin");
    } else if (err.status === 401) {
      showError($("change-error"), t("login.wrongOld"));
      $("old-password").value = "";
      $("old-password").focus();
    } else if (err.status === 422 && err.errors?.length) {
      showError($("change-error"), problemLines(err), t("login.rejected"));
      $("new-password").focus();
    } else {
      showError($("change-error"), loginError(err));
    }
  } finally {
    busy($("change-submit"), false);
  }
});

// ---- 3. log in again with the new password ------------------------------------------------------

$("relogin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const code = codeOf($("relogin-totp"));
  if (!code) return showError($("relogin-error"), t("login.totpFormat"));
  showError($("relogin-error"), []);
  busy($("relogin-submit"), true);
  try {
    const result = await login(state.userId, state.newPassword, code);
    state.newPassword = "";
    go(result.user);
  } catch (err) {
    showError($("relogin-error"), err.status === 401 ? t("login.nextCode") : loginError(err));
    $("relogin-totp").value = "";
    $("relogin-totp").focus();
  } finally {
    busy($("relogin-submit"), false);
  }
});

// ---- 4. already logged in -------------------------------------------------------------------------

function renderSignedIn() {
  const user = state.me?.user;
  if (!user) return;
  $("signed-in-text").textContent = t("login.signedInBody", { name: user.real_name, id: user.user_id });
  $("continue").href = destination(user);
  $("signed-in-change").href = `/login?change=1${next ? `&next=${encodeURIComponent(next)}` : ""}`;
}

onLangChange(() => {
  renderSignedIn();
  if (state.view === "change") $("change-why").textContent = t(state.forced ? "login.changeBody" : "login.changeOwn");
});

function loggedOut() {
  location.assign(`/login${next ? `?next=${encodeURIComponent(next)}` : ""}`);
}

$("relogin-restart").href = `/login${next ? `?next=${encodeURIComponent(next)}` : ""}`;

async function start() {
  let me = null;
  try {
    me = await currentStaff();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    showError($("signin-error"), errorText(err));
  }
  if (!me) {
    show("signin");
    return;
  }
  state.me = me;
  state.userId = me.user.user_id;
  mountStaffBar($("staff-bar"), me, { onLoggedOut: loggedOut, changeLink: false });
  if (me.user.must_change_password || params.get("change") === "1") {
    state.forced = !!me.user.must_change_password;
    openChange();
    return;
  }
  renderSignedIn();
  show("signed-in");
}

start();
