// What the pages say about the people in the session and the state of the connection:
// participant list, the notice over the other side's video, the one-line status, elapsed time.

import { t } from "./i18n.js";
import { CONNECT_CODES } from "./session.js";

const KNOWN_ERRORS = [...CONNECT_CODES, "no_token", "join_failed"];

export function findRole(participants, role) {
  return participants.find((p) => p.role === role) ?? null;
}

/** mm:ss (minutes keep counting past 59) since the page saw the session go live. */
export function elapsedText(session, now = Date.now()) {
  if (session.liveSince === null) return "00:00";
  const total = Math.max(0, Math.floor((now - session.liveSince) / 1000));
  const mm = String(Math.floor(total / 60)).padStart(2, "0");
  const ss = String(total % 60).padStart(2, "0");
  return `${mm}:${ss}`;
}

export function connText(state) {
  return t(`conn.${state || "none"}`);
}

const ROLE_ORDER = { inspector: 0, applicant: 1, observer: 2 };

/** Fill `ul` with one row per participant: role, connection state, mic / camera flags. */
export function renderParticipants(ul, participants, meId) {
  const rows = [...participants]
    .sort((a, b) => (ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9))
    .map((p) => {
      const li = document.createElement("li");
      li.className = "participant";
      li.dataset.role = p.role;
      li.dataset.connection = p.connection ?? "new";
      const dot = document.createElement("span");
      dot.className = `dot dot-${toneOf(p.connection)}`;
      const name = document.createElement("span");
      name.className = "participant-name";
      name.textContent = t(`role.${p.role}`) + (p.id === meId ? t("role.you") : "");
      const conn = document.createElement("span");
      conn.className = "participant-conn";
      conn.textContent = connText(p.connection ?? "new");
      const flags = document.createElement("span");
      flags.className = "participant-media";
      if (p.role !== "observer") {
        flags.append(flag("mic", p.media?.audio !== false, "participants.micOff"));
        flags.append(flag("cam", p.media?.video !== false, "participants.camOff"));
      }
      li.append(dot, name, flags, conn);
      return li;
    });
  if (!participants.some((p) => p.id !== meId)) {
    const li = document.createElement("li");
    li.className = "participant participant-empty";
    li.textContent = t("participants.alone");
    rows.push(li);
  }
  ul.replaceChildren(...rows);
}

function flag(kind, on, offKey) {
  const el = document.createElement("span");
  el.className = `flag flag-${kind} ${on ? "on" : "off"}`;
  el.innerHTML = on ? ICONS[kind] : ICONS[`${kind}Off`];
  el.title = on ? "" : t(offKey);
  if (!on) el.setAttribute("aria-label", t(offKey));
  else el.setAttribute("aria-hidden", "true");
  return el;
}

const svg = (body) => `<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${body}</svg>`;
const ICONS = {
  mic: svg('<path d="M12 2a3 3 0 0 0-3 3v7a3 3 0 0 0 6 0V5a3 3 0 0 0-3-3z"/><path d="M19 10v2a7 7 0 0 1-14 0v-2"/><line x1="12" y1="19" x2="12" y2="23"/>'),
  micOff: svg('<line x1="1" y1="1" x2="23" y2="23"/><path d="M9 9v3a3 3 0 0 0 5.12 2.12M15 9.34V4a3 3 0 0 0-5.94-.6"/><path d="M17 16.95A7 7 0 0 1 5 12v-2m14 0v2a7 7 0 0 1-.11 1.23"/><line x1="12" y1="19" x2="12" y2="23"/>'),
  cam: svg('<polygon points="23 7 16 12 23 17 23 7"/><rect x="1" y="5" width="15" height="14" rx="2" ry="2"/>'),
  camOff: svg('<path d="M16 16v1a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2h2m5.66 0H14a2 2 0 0 1 2 2v3.34l1 1L23 7v10"/><line x1="1" y1="1" x2="23" y2="23"/>'),
};

/** "ok" | "warn" | "bad" | "idle" for a connection state. */
export function toneOf(state) {
  if (state === "connected") return "ok";
  if (state === "connecting" || state === "new") return "idle";
  if (state === "disconnected") return "warn";
  if (state === "failed" || state === "closed" || state === "error") return "bad";
  return "idle";
}

/**
 * The notice to lay over the other side's video (`peerRole` = whose video it is), or null
 * when the video should be visible. `short` selects the compact keys of the join page's PiP.
 */
export function remoteNotice(session, peerRole, { short = false } = {}) {
  if (session.final || session.state.error) return null;
  if (!session.state.joined) {
    // Signaling is down but media may still flow: keep showing the picture while it does.
    if (session.pcState === "connected" && session.remoteVideoFlowing) return null;
    return session.me ? "remote.reconnecting" : "line.connecting";
  }
  const peer = findRole(session.participants, peerRole);
  if (!peer) return peerRole === "applicant" ? "remote.waitingApplicant" : "remote.waitingInspector";
  if (peer.media?.video === false) return peerRole === "applicant" ? "remote.applicantCamOff" : "remote.inspectorCamOff";
  const pc = session.pcState;
  if (pc === "failed" || pc === "disconnected") return "remote.reconnecting";
  if (!session.remoteVideoFlowing) return short ? "remote.inspector" : "remote.waitingVideo";
  return null;
}

/** The page's one-line status: {key, params, tone}. `peerRole` is the other side we wait for. */
export function statusLine(session, peerRole) {
  const { state } = session;
  if (session.final) return { key: `line.${session.final === "kicked" ? "ended" : session.final}`, tone: "idle" };
  if (state.error) return { key: KNOWN_ERRORS.includes(state.error) ? `err.${state.error}.title` : "err.unknown.title", tone: "bad" };
  if (state.socket !== "connected" || !state.joined) {
    return { key: session.me ? "line.reconnecting" : "line.connecting", tone: session.me ? "warn" : "idle" };
  }
  if (session.mediaError) return { key: "line.camera", tone: "bad" };
  const pc = session.pcState;
  if (pc === "failed" || pc === "disconnected") return { key: "line.reconnecting", tone: "warn" };
  if (pc !== "connected") return { key: "line.media", tone: "idle" };
  if (state.status === "live") return { key: "line.live", tone: "ok", elapsed: true };
  if (peerRole && !findRole(session.participants, peerRole)) {
    return { key: peerRole === "inspector" ? "line.waitingInspector" : "line.waitingApplicant", tone: "ok" };
  }
  if (state.status === "scheduled") return { key: "line.scheduled", tone: "ok" };
  return { key: "conn.connected", tone: "ok" };
}
