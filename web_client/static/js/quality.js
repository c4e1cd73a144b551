// Audio first: when a link cannot carry video, the server says so (`quality` events) and both
// pages show it plainly until video is back (issue 10). The notice sits over everything,
// stays while the call is audio only, and says briefly when video returns.

import { t } from "./i18n.js";

let notice = null;
let hideTimer = null;
const audioOnly = new Set(); // "<id>/<link>" of the links that are audio only now

function element() {
  if (notice) return notice;
  notice = document.createElement("p");
  notice.id = "quality-notice";
  notice.className = "quality-notice";
  notice.setAttribute("role", "status");
  notice.hidden = true;
  document.body.append(notice);
  return notice;
}

function show(text, tone) {
  const el = element();
  clearTimeout(hideTimer);
  el.textContent = text;
  el.dataset.tone = tone;
  el.hidden = false;
}

/** Follow `session`'s `quality` events; call once per page. */
export function watchQuality(session) {
  session.addEventListener("server", (e) => {
    const { name, payload: p } = e.detail;
    if (name !== "quality" || !p) return;
    const key = `${p.id}/${p.link}`;
    // whose link it is: mine if I publish on it (uplink) or receive on it (downlink)
    const mine = p.role === session.state.role;
    if (p.audio_only) {
      audioOnly.add(key);
      show(t(mine ? "quality.selfAudioOnly" : "quality.otherAudioOnly"), "warn");
    } else {
      audioOnly.delete(key);
      if (audioOnly.size === 0) {
        show(t("quality.videoBack"), "ok");
        hideTimer = setTimeout(() => { element().hidden = true; }, 4000);
      }
    }
  });
}
