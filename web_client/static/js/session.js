// One participant's live session, shared by the console and join pages: the Socket.IO
// connection (docs/protocol.md), `join`, local media, the RTCPeerConnection to Takan's media
// relay (offer/answer, trickle ICE), recovery after drops, stats, and the window.takan hook.
//
// The page listens for these events (EventTarget, detail in brackets):
//   "change"       anything in state / participants / pc / local media changed
//   "joined"       join ack arrived (me, inspection, participants)
//   "remotestream" a new peer connection was built; session.remoteStream is the new stream
//   "localstream"  local media opened or the camera changed
//   "mediaerror"   getUserMedia failed; session.mediaError = {kind, name, message}
//   "fatal"        the connection was refused for good; {code, message}
//   "inuse"        the role is held by another device: session.inUse = {message}; the page asks,
//                  then calls takeOver() or declineTakeover()
//   "otp"          the applicant must enter the code sent to the phone: session.otp =
//                  {sentTo, message}; the page calls verifyOtp(code) / resendOtp()
//   "final"        ended / cancelled / kicked: media stopped; {kind}
//   "notice"       a transient warning for the status line; {key, params}
//   "server"       any event from the server (after the session's own handling); {name, payload}

import { io } from "/vendor/socket.io.esm.min.js";
import { LocalMedia, mediaErrorKind } from "./local_media.js";
import { PathWatch } from "./path_watch.js";
import { PROTOCOL } from "./protocol.js";

const ACK_TIMEOUT_MS = 10000;
const OFFER_TIMEOUT_MS = 30000; // the server gathers its ICE candidates before answering
// ICE that went `disconnected` (no packets for ~2.5 s: a tunnel, a lift, a weak cell) usually
// recovers by itself once packets flow again, keeping the server's relay state and the
// encoder's estimate; aiortc has no ICE restart, so a rebuild costs a new offer over Socket.IO.
// The pc is rebuilt only on `failed`, when the server reports its peer failed, or after this
// long still disconnected (Chromium takes ~30 s to declare `failed`).
const DISCONNECTED_REBUILD_MS = 15000;
// While media is silent, a Socket.IO ping still unanswered this long after the server
// answered a plain HTTP request means the socket is half-open (a dead TCP path that Engine.IO's own ping would take up to
// 45 s to notice): the phone's network path changed.
const SOCKET_PROBE_MS = 350;
const HTTP_PROBE_MS = 1500;
// Right after an outage ICE recovers in about a second while TCP may still be backing off:
// give the pc that long before calling a socket dead that lived through the outage.
const AFTER_OUTAGE_MS = 2000;
// Reconnection (bench/field_media.py, address change): the defaults (1 s doubling to 5 s,
// +-50 %) wait up to 5 s per attempt after the path is back, and a connect attempt that
// went out during the outage hangs for its 20 s timeout; these retry within 2 s.
const SOCKET_OPTIONS = { reconnectionDelay: 250, reconnectionDelayMax: 2000, randomizationFactor: 0.3, timeout: 5000 };
/** Trickle ICE alone stays within the server's events-per-second limit (20 ms at 50/s). */
const ICE_SEND_GAP_MS = 1000 / PROTOCOL.limits.events_per_second;
const FREEZE_CHECK_MS = 2000;
const KEYFRAME_MIN_GAP_MS = 5000;
const MAX_EVENTS = 500;

/** Server events whose `at` is the moment they were sent (a sample of the server's clock). */
const TIMESTAMPED = new Set(["chat", "captured", "location", "signed"]);

/** Whose media each role receives (docs/protocol.md, "Media routing"). */
const SOURCE_ROLE = PROTOCOL.source_role;

/** Connect-refusal codes of docs/protocol.md (each has its own message on the page). */
export const CONNECT_CODES = [
  "token_invalid", "token_expired", "inspection_unknown",
  "inspection_cancelled", "inspection_ended", "rate_limited",
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Several nodes (docs/nodes.md): the page runs on the node that hosts its room. It asks
// which one before connecting (the token stays in the body, never in a URL), follows an
// `elsewhere` refusal, and while its node does not answer asks the deployment's entry URL
// (the load balancer) again every second: once that node's heartbeat lapses, another node
// takes the room and the page moves there. It moves only to a node that just answered, so a
// dead node never leaves the tab on a browser error page.
const NODE_PATH = "/api/v1/session/node";
const REDISCOVER_EVERY_MS = 1000;

async function askNode(base, token) {
  try {
    // text/plain: a cross-origin POST without a preflight (the entry URL is another origin)
    const response = await fetch(base + NODE_PATH, { method: "POST", body: token, cache: "no-store", credentials: "omit" });
    return response.ok ? await response.json() : null;
  } catch {
    return null; // that URL is unreachable (or this network is down): ask again later
  }
}

const DEVICE_KEY = "takan.device";
const TAKEOVER_KEY = "takan.takeover";
let memoryDevice = null;

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * This tab's device id, sent with `join`: random, kept in sessionStorage, so a reload of the
 * same tab is recognised by the server (no "open on another device" question), while another
 * tab, browser or phone gets its own.
 */
export function deviceId() {
  try {
    let id = sessionStorage.getItem(DEVICE_KEY);
    if (!id || !/^[0-9a-f]{8,64}$/.test(id)) {
      id = randomId();
      sessionStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  } catch {
    memoryDevice ??= randomId(); // storage blocked: stable for this page at least
    return memoryDevice;
  }
}

/** The next page load of this tab joins with `takeover: true` (the user already chose to). */
export function markTakeover() {
  try { sessionStorage.setItem(TAKEOVER_KEY, "1"); } catch { /* ignore: the page will ask */ }
}

function takeTakeoverMark() {
  try {
    const marked = sessionStorage.getItem(TAKEOVER_KEY) === "1";
    sessionStorage.removeItem(TAKEOVER_KEY);
    return marked;
  } catch {
    return false;
  }
}

export class Session extends EventTarget {
  constructor({ token, lang }) {
    super();
    this.token = token;
    this.lang = lang;
    /** Mutated in place, never replaced: window.takan.state is this object. */
    this.state = { socket: "new", peer: "new", status: null, role: null, joined: false, error: null };
    /** Received server events, oldest first: {name, payload, at}. */
    this.events = [];
    this.me = null;
    this.inspection = null;
    this.participants = [];
    this.iceServers = [];
    this.liveSince = null; // local ms time the session went live (from started_at when known)
    this.startedAt = null; // the server's started_at (RFC 3339) once known
    this.clockOffset = null; // server clock minus this page's clock, ms (estimated)
    this.final = null; // "ended" | "cancelled" | "kicked" once the session is over for this page
    this.warnings = []; // prudent-warning list matches (8.1.8) of the join ack (inspector only)
    this.device = deviceId();
    this.takeover = takeTakeoverMark(); // the next join takes the role over from another device
    this.inUse = null; // {message} while the role is held by another device and the user decides
    this.declined = false; // the user chose to leave the session on the other device
    this.otp = null; // {sentTo, message} while the applicant must enter a one-time code

    this.local = new LocalMedia();
    this.mediaReady = false; // local media open (or not wanted): a peer connection may be built
    this.mediaStarting = false;
    this.mediaError = null;

    this.socket = null;
    this.entryUrl = null; // the deployment's entry URL (the load balancer), from the node's answer
    this.moving = false; // leaving for the node that hosts the room
    this.rediscovering = false;
    this.pc = null;
    this.remoteStream = null;
    this.remoteVideoFlowing = false;
    this.peerGen = 0;
    this.answeredGen = 0;
    this.iceQueue = [];
    this.iceDraining = false;
    this.recoverAttempts = 0;
    this.recoverTimer = null;
    this.disconnectedTimer = null;
    this.probing = false;
    this.pathWatch = null;
    this.pathChanged = false; // the next join builds a new pc even if the server kept our peer
    this.freezeTimer = null;
    this.freeze = { frames: 0, ticks: 0, lastRequest: 0 };

    this.local.addEventListener("videotrack", (e) => this.#onLocalVideoTrack(e.detail.track));
    this.local.addEventListener("change", () => this.#emit("change"));
  }

  get pcState() {
    return this.pc ? this.pc.connectionState : "none";
  }

  get sendsMedia() {
    return this.state.role === "inspector" || this.state.role === "applicant";
  }

  // ---- connection --------------------------------------------------------------------------

  start() {
    if (!this.token) {
      this.#fatal("no_token", "");
      return;
    }
    this.state.socket = "connecting";
    this.#emit("change");
    // which node serves this session? (an old server without the route: connect here)
    askNode("", this.token).then((answer) => {
      if (answer?.entry_url) this.entryUrl = answer.entry_url;
      if (!this.#moveTo(answer?.node_url)) this.#connect();
    });
  }

  /** Go to the same page on ``nodeUrl`` if that is another origin; true if leaving. */
  #moveTo(nodeUrl) {
    let target;
    try {
      target = new URL(nodeUrl);
    } catch {
      return false;
    }
    if (this.moving) return true;
    if (target.origin === location.origin) return false;
    this.moving = true;
    console.info(`takan: this session is served by ${target.origin}; moving there`);
    this.#teardownPeer();
    this.socket?.disconnect();
    location.replace(new URL(location.pathname + location.search + location.hash, target.origin).href);
    return true;
  }

  /** While the socket is down, ask the entry URL where the room is (it may have moved). */
  #rediscover() {
    const entry = this.entryUrl;
    if (this.rediscovering || !entry || this.final || this.moving) return;
    try {
      if (new URL(entry).origin === location.origin) return; // one node, or the entry itself: Socket.IO retries
    } catch {
      return;
    }
    this.rediscovering = true;
    console.info(`takan: this node does not answer; asking ${entry} where the session is`);
    const ask = async () => {
      if (this.socket?.connected || this.final || this.moving) {
        this.rediscovering = false;
        return;
      }
      const answer = await askNode(entry.replace(/\/$/, ""), this.token);
      if (!this.#moveTo(answer?.node_url)) setTimeout(ask, REDISCOVER_EVERY_MS);
    };
    setTimeout(ask, REDISCOVER_EVERY_MS);
  }

  #connect() {
    const socket = io({ auth: { token: this.token, lang: this.lang }, ...SOCKET_OPTIONS });
    this.socket = socket;
    socket.onAny((name, payload) => this.#record(name, payload));
    // onAny runs before the handlers below: the microtask lets them apply their state first.
    socket.onAny((name, payload) => queueMicrotask(() => {
      if (TIMESTAMPED.has(name)) this.noteServerTime(payload?.at);
      this.#emit("server", { name, payload });
    }));
    socket.on("connect", () => this.#onConnect());
    socket.on("connect_error", (err) => this.#onConnectError(err));
    socket.on("disconnect", (reason) => this.#onDisconnect(reason));
    socket.on("presence", (p) => this.#onPresence(p));
    socket.on("status", (p) => this.#onStatus(p));
    socket.on("peer", (p) => {
      this.state.peer = p?.state ?? "new";
      // The server's end failed (ICE consent expired): this pc cannot recover. A "closed" is the
      // old peer replaced by our own new offer, or the socket's end: nothing to do for it.
      if (this.state.peer === "failed" && this.pc && this.answeredGen === this.peerGen) this.#recover("server peer failed");
      this.#emit("change");
    });
    socket.on("kicked", () => this.#finish("kicked"));
    // A server still is being taken: full resolution for it, then back to a moving picture.
    socket.on("sharpen", (p) => {
      const sender = this.videoTransceiver?.sender;
      if (this.sendsMedia && sender) setDegradation(sender, p?.on ? "maintain-resolution" : DEGRADATION);
    });
    addEventListener("pagehide", () => this.close());
    // Back/forward cache restores a page whose connection was closed: just join again.
    addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
    document.addEventListener("visibilitychange", () => this.#onVisible());
    this.#emit("change");
  }

  /** After a rate_limited refusal (or any fatal refusal the user wants to retry). */
  retryConnect() {
    if (!this.socket || this.final) return;
    this.state.error = null;
    this.state.socket = "connecting";
    this.#emit("change");
    this.socket.connect();
  }

  setLang(lang) {
    this.lang = lang;
    if (this.socket) this.socket.auth.lang = lang;
  }

  close() {
    this.#teardownPeer();
    this.socket?.disconnect();
  }

  #record(name, payload) {
    this.events.push({ name, payload, at: Date.now() });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
  }

  #onConnectError(err) {
    const data = err?.data;
    this.#record("connect_error", data ?? { message: String(err?.message ?? err) });
    if (data?.code === "elsewhere" && this.#moveTo(data.node_url)) return;
    if (data?.code === "node_fenced") {
      // This node lost its lease (docs/nodes.md, "Fencing"): another takes the room in a
      // few seconds. Ask the entry URL where, and knock here again meanwhile.
      this.state.socket = "connecting";
      this.#rediscover();
      this.#emit("change");
      setTimeout(() => { if (!this.final && !this.moving && !this.socket.connected) this.socket.connect(); }, 2000);
      return;
    }
    if (data?.code) {
      // Refused by the server: socket.io does not retry these.
      this.state.socket = "error";
      this.#fatal(data.code, data.message ?? "");
    } else {
      // Network or server unreachable: socket.io keeps retrying; the room may have moved.
      this.state.socket = "connecting";
      this.#rediscover();
      this.#emit("change");
    }
  }

  #onDisconnect(reason) {
    this.state.joined = false;
    if (reason !== "io client disconnect") this.#rediscover();
    if (this.state.socket !== "error") this.state.socket = "disconnected";
    this.#emit("change");
    if (reason === "io server disconnect" && !this.final && !this.state.error) {
      // The server closed this socket without a kick (e.g. event flood): come back shortly.
      setTimeout(() => { if (!this.final && !this.socket.connected) this.socket.connect(); }, 2000);
    }
  }

  async #onConnect() {
    if (this.final) return;
    this.state.socket = "connected";
    this.state.error = null;
    this.#emit("change");
    if (this.declined) return; // the other device keeps the session until the user says otherwise
    const socketId = this.socket.id;
    const payload = { device: this.device };
    if (this.takeover) payload.takeover = true;
    const ack = await this.#request("join", payload);
    if (this.final || this.socket.id !== socketId || !this.socket.connected) return;
    if (!ack?.ok) {
      const code = ack?.error?.code;
      if (code === "in_use") {
        // Another device holds this role: nothing starts here until the user decides.
        this.takeover = false;
        this.otp = null;
        this.inUse = { message: ack.error.message ?? "" };
        this.#teardownPeer();
        this.#emit("inuse", this.inUse);
        this.#emit("change");
        return;
      }
      if (code === "otp_required") {
        // The camera starts only after the code is verified and the join succeeds.
        this.otp = { sentTo: ack.error.sent_to ?? null, message: ack.error.message ?? "" };
        this.#emit("otp", this.otp);
        this.#emit("change");
        return;
      }
      if (code === "timeout" || code === "internal") {
        // Transient: ask again on this socket (a reconnect would ask anyway).
        setTimeout(() => { if (this.socket.id === socketId && this.socket.connected) this.#onConnect(); }, 3000);
        return;
      }
      if (code === "not_connected") return; // the next "connect" joins
      if (code === "node_fenced") return; // this node is stepping aside: the disconnect follows
      if (CONNECT_CODES.includes(code)) this.#fatal(code, ack.error.message ?? "");
      else this.#fatal("join_failed", ack?.error?.message || code || "");
      return;
    }
    this.takeover = false;
    this.inUse = null;
    this.otp = null;
    this.me = ack.me;
    this.inspection = ack.inspection;
    this.participants = ack.participants ?? [];
    this.warnings = Array.isArray(ack.warnings) ? ack.warnings : [];
    this.drawing = ack.drawing ?? null; // the inspector's marks shown now (then `drawing` events)
    this.iceServers = ack.ice_servers ?? [];
    this.state.role = ack.me?.role ?? null;
    this.state.joined = true;
    this.#noteStartedAt(ack.inspection?.started_at);
    this.#setStatus(ack.inspection?.status ?? null);
    this.#emit("joined");
    this.#emit("change");
    if (this.final) return;
    // A kept pc whose media is silent at the rejoin is on a dead path (the phone changed
    // networks, and Socket.IO noticed before #probePath did): build a new one.
    const pathChanged = this.pathChanged || Boolean(this.pathWatch?.silent);
    this.pathChanged = false;
    if (ack.peer_kept && !pathChanged && this.pc && this.answeredGen === this.peerGen && this.pc.connectionState !== "failed") {
      // The server kept our media peer while the socket was away: the pc carries on.
      console.info("takan: media peer kept across the reconnection");
      this.#sendMediaFlags();
      return;
    }
    await this.#startMedia();
  }

  // ---- another device, one-time code ------------------------------------------------------

  /** "Continue here": join with `takeover: true` (the other device is disconnected). */
  takeOver() {
    if (this.final) return;
    this.takeover = true;
    this.declined = false;
    this.inUse = null;
    this.#emit("change");
    if (this.socket?.connected) this.#onConnect();
    else this.socket?.connect();
  }

  /** "Cancel": leave the session to the other device; this page stops and disconnects. */
  declineTakeover() {
    this.inUse = null;
    this.declined = true;
    this.takeover = false;
    this.#teardownPeer();
    this.local.stop();
    this.mediaReady = false;
    this.socket?.disconnect();
    this.#emit("change");
  }

  /** Send the applicant's one-time code; on success the join is sent again. */
  async verifyOtp(code) {
    const ack = await this.#request("otp_verify", { code });
    if (ack.ok) {
      this.otp = null;
      this.#emit("change");
      if (!this.final && this.socket?.connected) this.#onConnect();
    }
    return ack;
  }

  /** Ask the server to send a new code (it rate-limits this). */
  async resendOtp() {
    const ack = await this.#request("otp_send", {});
    if (ack.ok && this.otp) this.otp.sentTo = ack.sent_to ?? this.otp.sentTo;
    return ack;
  }

  /** Emit with an ack; never throws: failures come back as {ok:false, error}. */
  async #request(name, payload, timeout = ACK_TIMEOUT_MS) {
    if (!this.socket?.connected) return { ok: false, error: { code: "not_connected", message: "not connected" } };
    try {
      const ack = await this.socket.timeout(timeout).emitWithAck(name, payload);
      return ack ?? { ok: false, error: { code: "internal", message: "empty ack" } };
    } catch (err) {
      return { ok: false, error: { code: "timeout", message: String(err?.message ?? err) } };
    }
  }

  #fatal(code, message) {
    this.state.error = code;
    this.#teardownPeer();
    this.#emit("fatal", { code, message });
    this.#emit("change");
  }

  #onPresence(payload) {
    this.participants = payload?.participants ?? [];
    this.#emit("change");
  }

  #onStatus(payload) {
    this.#noteStartedAt(payload?.started_at);
    this.#setStatus(payload?.status ?? null);
    this.#emit("change");
  }

  /** The elapsed time counts from the server's started_at, so a reload does not reset it. */
  #noteStartedAt(startedAt) {
    if (typeof startedAt !== "string") return;
    const ms = Date.parse(startedAt);
    if (Number.isNaN(ms)) return;
    this.startedAt = startedAt;
    this.liveSince = ms - (this.clockOffset ?? 0);
  }

  /** A server timestamp (`at` of an event that just happened): corrects a skewed local clock. */
  noteServerTime(at) {
    const ms = typeof at === "string" ? Date.parse(at) : NaN;
    if (Number.isNaN(ms)) return;
    const sample = ms - Date.now();
    // Delivery delay makes every sample a little low: keep the largest of recent ones.
    this.clockOffset = this.clockOffset === null ? sample : Math.max(sample, this.clockOffset - 50);
    if (this.startedAt) this.liveSince = Date.parse(this.startedAt) - this.clockOffset;
  }

  /** The server's session clock (a `timer` event's elapsed_s) is the authority on elapsed time. */
  noteElapsed(elapsedS) {
    if (typeof elapsedS !== "number" || !Number.isFinite(elapsedS)) return;
    this.liveSince = Date.now() - elapsedS * 1000;
    if (this.startedAt) this.clockOffset = Date.parse(this.startedAt) - this.liveSince;
  }

  #setStatus(status) {
    this.state.status = status;
    if (status === "live" && this.liveSince === null) this.liveSince = Date.now();
    if (status === "ended" || status === "cancelled") this.#finish(status);
  }

  /** The session is over for this page: stop media, drop the connection, show `kind`. */
  #finish(kind) {
    if (this.final) return;
    this.final = kind;
    this.state.peer = "closed";
    this.local.stop();
    this.#teardownPeer();
    this.socket?.disconnect();
    this.#emit("final", { kind });
    this.#emit("change");
  }

  // ---- local media -------------------------------------------------------------------------

  async #startMedia() {
    if (this.sendsMedia && !this.mediaReady) {
      if (this.mediaStarting || this.mediaError) return; // a pending prompt builds the pc when answered
      this.mediaStarting = true;
      try {
        await this.local.start({ preferRear: this.state.role === "applicant" });
        this.mediaReady = true;
        this.#emit("localstream");
        for (const key of this.local.warnings) this.#emit("notice", { key });
      } catch (err) {
        this.mediaError = { kind: mediaErrorKind(err), name: err?.name ?? "Error", message: err?.message ?? String(err) };
        this.#emit("mediaerror", this.mediaError);
        this.#emit("change");
        return;
      } finally {
        this.mediaStarting = false;
      }
    }
    if (!this.sendsMedia) this.mediaReady = true;
    if (this.final || !this.state.joined || !this.socket?.connected) return; // the next join continues
    this.#sendMediaFlags();
    await this.#buildPeer("join");
  }

  /** The "Retry" button of the camera error view. */
  retryMedia() {
    this.mediaError = null;
    this.#emit("change");
    return this.#startMedia();
  }

  /** Join without camera or microphone (the pc still offers sendrecv, with no tracks). */
  continueWithoutMedia() {
    this.local.stop();
    this.mediaError = null;
    this.mediaReady = true;
    this.#emit("localstream");
    return this.#startMedia();
  }

  setAudio(on) {
    this.local.setAudio(on);
    this.#sendMediaFlags();
  }

  setVideo(on) {
    this.local.setVideo(on);
    this.#sendMediaFlags();
  }

  /** Returns false when there is no other camera; throws when opening it failed. */
  async switchCamera() {
    return this.local.switchCamera();
  }

  #sendMediaFlags() {
    if (!this.sendsMedia || !this.state.joined) return;
    this.#request("media", this.local.flags);
  }

  #onLocalVideoTrack(track) {
    const sender = this.videoTransceiver?.sender;
    if (sender && this.pc && this.pc.signalingState !== "closed") {
      sender.replaceTrack(track).catch((err) => console.warn("replaceTrack failed", err));
    }
    this.#emit("localstream");
    this.#sendMediaFlags();
  }

  async #onVisible() {
    // Phones may end the camera track while the page is in the background.
    if (document.visibilityState !== "visible" || this.final || !this.mediaReady) return;
    const track = this.local.videoTrack;
    if (track && track.readyState === "ended") {
      const id = track.getSettings?.().deviceId;
      try { await this.local.useCamera(id); } catch (err) { console.warn("camera reopen failed", err); }
    }
  }

  // ---- peer connection ---------------------------------------------------------------------

  async #buildPeer(reason) {
    this.#teardownPeer();
    const gen = ++this.peerGen;
    console.info(`takan: new peer connection #${gen} (${reason})`);
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    const direction = this.sendsMedia ? "sendrecv" : "recvonly";
    const streams = this.local.stream ? [this.local.stream] : [];
    const audioTx = pc.addTransceiver(this.sendsMedia && this.local.audioTrack ? this.local.audioTrack : "audio", { direction, streams });
    const videoTx = pc.addTransceiver(this.sendsMedia && this.local.videoTrack ? this.local.videoTrack : "video", { direction, streams });
    this.audioTransceiver = audioTx;
    this.videoTransceiver = videoTx;
    if (this.sendsMedia) await setDegradation(videoTx.sender);

    this.remoteStream = new MediaStream([audioTx.receiver.track, videoTx.receiver.track]);
    this.remoteVideoFlowing = false;
    const remoteVideo = videoTx.receiver.track;
    remoteVideo.onunmute = () => { if (gen === this.peerGen) { this.remoteVideoFlowing = true; this.#emit("change"); } };
    remoteVideo.onmute = () => { if (gen === this.peerGen) { this.remoteVideoFlowing = false; this.#emit("change"); } };
    this.#emit("remotestream");

    pc.onicecandidate = (e) => this.#queueIce(gen, e.candidate);
    pc.onconnectionstatechange = () => this.#onPcState(gen);
    this.#emit("change");

    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (gen !== this.peerGen) return;
      const ack = await this.#request("offer", { sdp: offer.sdp, type: "offer" }, OFFER_TIMEOUT_MS);
      if (gen !== this.peerGen) return;
      if (!ack.ok) throw Object.assign(new Error(ack.error?.message || ack.error?.code || "offer refused"), { ack });
      await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
      if (gen !== this.peerGen) return;
      if (this.sendsMedia) await setDegradation(videoTx.sender);
      this.answeredGen = gen;
      this.#drainIce();
      this.#startFreezeWatch(gen);
      this.#startPathWatch(gen, pc);
    } catch (err) {
      if (gen !== this.peerGen) return;
      console.warn("takan: offer/answer failed", err);
      this.#emit("notice", { key: "warn.offerFailed", params: { message: err.message } });
      this.#recover("offer failed");
    }
  }

  #teardownPeer() {
    clearTimeout(this.disconnectedTimer);
    clearTimeout(this.recoverTimer);
    clearInterval(this.freezeTimer);
    this.pathWatch?.stop();
    this.pathWatch = null;
    this.recoverTimer = null;
    this.iceQueue = [];
    const pc = this.pc;
    if (!pc) return;
    this.peerGen++; // late callbacks of the old pc see a stale generation
    this.pc = null;
    pc.onicecandidate = null;
    pc.onconnectionstatechange = null;
    try { pc.close(); } catch { /* already closed */ }
    this.remoteVideoFlowing = false;
    this.#emit("change");
  }

  #onPcState(gen) {
    if (gen !== this.peerGen || !this.pc) return;
    const state = this.pc.connectionState;
    clearTimeout(this.disconnectedTimer);
    if (state === "connected") {
      this.recoverAttempts = 0;
    } else if (state === "disconnected") {
      this.#probePath(gen);
      this.disconnectedTimer = setTimeout(() => {
        if (gen === this.peerGen && this.pc?.connectionState === "disconnected") this.#recover("disconnected");
      }, DISCONNECTED_REBUILD_MS);
    } else if (state === "failed") {
      this.#recover("failed");
    }
    this.#emit("change");
  }

  /** Watch for media silence: the earliest sign of a dead path (path_watch.js). */
  #startPathWatch(gen, pc) {
    this.pathWatch?.stop();
    const sendsVideo = () => this.sendsMedia && this.local.videoTrack?.readyState === "live";
    this.pathWatch = new PathWatch(pc, sendsVideo, () => this.#probePath(gen));
    this.pathWatch.start();
  }

  /**
   * Media stopped: which case is it? A plain HTTP request to the server and a Socket.IO
   * ping, side by side, tell them apart:
   * - HTTP fails: the whole network is down (an outage). Keep the socket, whose TCP
   *   connection survives it, and the pc, whose ICE recovers by itself; ask again.
   * - HTTP works, the ping is answered: only UDP is affected; ICE may recover, and the
   *   `disconnected` timer rebuilds the pc if it does not.
   * - HTTP works, the ping is not answered: the socket's path is dead while a new
   *   connection works, so the phone changed networks (its old address is gone, with every
   *   socket bound to it). Drop the socket so that Socket.IO reconnects at once, and build a
   *   new pc on the join (the server's kept peer is bound to the dead path too).
   */
  async #probePath(gen) {
    if (this.probing) return;
    this.probing = true;
    let downSeen = false;
    let reachableSince = null;
    const stillDown = () => gen === this.peerGen && this.pc && (this.pathWatch?.silent || this.pc.connectionState !== "connected");
    try {
      while (!this.final && stillDown()) {
        const socket = this.socket;
        if (!socket?.connected) return; // reconnecting already: the join takes over
        // The ping must answer within SOCKET_PROBE_MS of the HTTP answer: a server that is
        // merely slow (its loop busy) answers both late, but close together.
        const ping = new Promise((resolve) => socket.timeout(HTTP_PROBE_MS + SOCKET_PROBE_MS).emit("ping", {}, (err) => resolve(!err)));
        const reachable = await serverReachable(HTTP_PROBE_MS);
        const acked = await Promise.race([ping, sleep(reachable ? SOCKET_PROBE_MS : 0).then(() => false)]);
        if (socket !== this.socket || !stillDown()) return;
        if (!reachable) {
          downSeen = true;
          reachableSince = null;
        } else {
          reachableSince ??= Date.now();
          const settled = !downSeen || Date.now() - reachableSince >= AFTER_OUTAGE_MS;
          if (!acked && settled && socket.connected && !this.final) {
            console.info("takan: network path changed (media and socket silent, the server answers); reconnecting");
            this.pathChanged = true;
            // The new path is up (HTTP answered on it): reconnect at once, not after the
            // first back-off step; later attempts, if this one fails, back off as usual.
            socket.io.reconnectionDelay(0);
            socket.io.once("reconnect_attempt", () => socket.io.reconnectionDelay(SOCKET_OPTIONS.reconnectionDelay));
            socket.io.engine?.close();
            return;
          }
        }
        await sleep(500);
      }
    } finally {
      this.probing = false;
    }
  }

  /** Build a new pc with a new offer (the server replaces the old one); backs off on repeats. */
  #recover(reason) {
    if (this.final || this.state.error || !this.state.joined || !this.socket?.connected) return;
    if (this.recoverTimer) return;
    const delay = this.recoverAttempts === 0 ? 0 : Math.min(1000 * 2 ** (this.recoverAttempts - 1), 10000);
    this.recoverAttempts++;
    this.recoverTimer = setTimeout(() => {
      this.recoverTimer = null;
      if (!this.final && this.state.joined && this.socket?.connected) this.#buildPeer(reason);
    }, delay);
  }

  #queueIce(gen, candidate) {
    if (gen !== this.peerGen) return;
    if (candidate && !candidate.candidate) return; // per-section end marker: we send one null at the end
    const msg = candidate
      ? { candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? "0", sdpMLineIndex: candidate.sdpMLineIndex ?? 0 }
      : { candidate: null };
    this.iceQueue.push({ gen, msg });
    this.#drainIce();
  }

  /** Candidates go out in order, one ack at a time, only after this pc's answer arrived. */
  async #drainIce() {
    if (this.iceDraining) return;
    this.iceDraining = true;
    try {
      while (this.iceQueue.length && this.answeredGen === this.peerGen) {
        const { gen, msg } = this.iceQueue.shift();
        if (gen !== this.peerGen) continue;
        const ack = await this.#request("ice", msg);
        if (!ack.ok) console.warn("takan: ice refused", ack.error);
        await sleep(ICE_SEND_GAP_MS);
      }
    } finally {
      this.iceDraining = false;
    }
  }

  /**
   * Ask for a keyframe when the other side says its camera is on but no new frame has been
   * decoded for ~4 s (packets lost, or a relay waiting for a keyframe to start forwarding).
   */
  #startFreezeWatch(gen) {
    clearInterval(this.freezeTimer);
    this.freeze = { frames: 0, ticks: 0, lastRequest: 0 };
    this.freezeTimer = setInterval(async () => {
      if (gen !== this.peerGen || !this.pc || this.pc.connectionState !== "connected") return;
      const source = this.participants.find((p) => p.role === SOURCE_ROLE[this.state.role]);
      let frames = 0;
      (await this.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && (s.kind ?? s.mediaType) === "video") frames += s.framesDecoded ?? 0;
      });
      const f = this.freeze;
      const expected = source && source.media?.video !== false && source.connection === "connected";
      f.ticks = expected && frames === f.frames ? f.ticks + 1 : 0;
      f.frames = frames;
      const needed = frames === 0 ? 1 : 2; // nothing decoded yet: ask sooner
      if (f.ticks >= needed && Date.now() - f.lastRequest > KEYFRAME_MIN_GAP_MS) {
        f.lastRequest = Date.now();
        console.info("takan: no new video frames; asking for a keyframe");
        this.#request("keyframe", {});
      }
    }, FREEZE_CHECK_MS);
  }

  // ---- actions and stats -------------------------------------------------------------------

  /**
   * Send a client event of docs/protocol.md ("During the session") and wait for its ack.
   * Never throws: failures come back as {ok: false, error: {code, message}}, with the codes
   * `not_connected` and `timeout` added by the page.
   */
  async request(name, payload, timeout = ACK_TIMEOUT_MS) {
    const ack = await this.#request(name, payload, timeout);
    if (ack?.ok && typeof ack.at === "string") this.noteServerTime(ack.at);
    return ack;
  }

  /** Inspector only: end the inspection (the `status` event then finishes every page). */
  async end() {
    const ack = await this.#request("end", {});
    if (ack.ok && ack.status === "ended") this.#setStatus("ended");
    return ack;
  }

  /** Counters summed over this pc's inbound-rtp / outbound-rtp stats (reset when the pc is rebuilt). */
  async stats() {
    const out = { videoFramesDecoded: 0, audioPacketsReceived: 0, videoFramesSent: 0, connectionState: this.pcState };
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      const kind = s.kind ?? s.mediaType;
      if (s.type === "inbound-rtp" && kind === "video") out.videoFramesDecoded += s.framesDecoded ?? 0;
      else if (s.type === "inbound-rtp" && kind === "audio") out.audioPacketsReceived += s.packetsReceived ?? 0;
      else if (s.type === "outbound-rtp" && kind === "video") out.videoFramesSent += s.framesSent ?? 0;
    });
    return out;
  }

  #emit(name, detail = null) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

/** Does the server answer a plain HTTP request (this module's own URL) within `ms`? */
async function serverReachable(ms) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    await fetch(import.meta.url, { method: "HEAD", cache: "no-store", signal: abort.signal });
    return true; // any answer, even an error status, means the path to the server works
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

// How the encoder gives way on a weak uplink. "maintain-resolution" kept 720p at 400 kbit/s
// and dropped to a few frames a second (bench/field_media.py: the picture all but stopped).
// "balanced" (runs E-M) lowers resolution and frame rate together: 15 fps at 270-360p while
// the estimate climbs, 13 fps on a capped link. "maintain-framerate" is what Chromium does
// for a camera when nothing is set (libwebrtc's default outside a field trial), so what a
// direct browser call does: it lowers the resolution only (run N: 20.0 fps on the clean
// link, 19.5 lossy, both as the anchor's; balanced gave 11.5-15 clean in the same hour).
// Starting sharp and switching only when the uplink weakens was tried (runs G, H): the
// switch from a starved 720p fell to 180-270p. For a server still the server sends
// `sharpen`: the sender keeps full resolution until the still is taken (the encoder
// restarts at it, with a keyframe), then gives way again.
const DEGRADATION = "maintain-framerate";

/** Set the video sender's degradation preference (DEGRADATION unless told otherwise). */
async function setDegradation(sender, preference = DEGRADATION) {
  try {
    const params = sender.getParameters();
    if (params.degradationPreference === preference) return;
    params.degradationPreference = preference;
    await sender.setParameters(params);
  } catch (err) {
    console.debug("takan: degradationPreference not applied", err);
  }
}

/** The token from the URL fragment (`/join#<token>`). */
export function tokenFromUrl() {
  const raw = location.hash.slice(1).trim();
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** window.takan: the hook automated browser tests read. */
export function exposeForTests(session) {
  window.takan = {
    state: session.state,
    events: session.events,
    session,
    async stats() {
      return session.stats();
    },
  };
}
