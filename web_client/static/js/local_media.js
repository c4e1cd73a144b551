// This browser's camera and microphone: opening them, choosing and switching cameras by
// deviceId (iOS ignores facingMode once a stream is open), muting, turning the camera off.
//
// Events (EventTarget): "videotrack" {track} after a camera switch (the session swaps it into
// its sender with replaceTrack), "change" after any mute/camera change.

const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } };

const REAR = /back|rear|environment|后/i;
const FRONT = /front|user|facetime|前/i;

export function isRearLabel(label) {
  return REAR.test(label || "") && !FRONT.test(label || "");
}

export function isFrontLabel(label) {
  return FRONT.test(label || "");
}

/**
 * Map a getUserMedia failure to one of: "denied", "notfound", "inuse", "insecure", "other".
 */
export function mediaErrorKind(err) {
  switch (err?.name) {
    case "InsecureContextError": return "insecure";
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError": return "denied";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError": return "notfound";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError": return "inuse";
    default: return "other";
  }
}

function insecureError() {
  const err = new Error("camera access needs a secure (HTTPS) page");
  err.name = "InsecureContextError";
  return err;
}

export class LocalMedia extends EventTarget {
  constructor() {
    super();
    this.stream = null;
    this.audioEnabled = true;
    this.videoEnabled = true;
    this.warnings = []; // i18n keys, e.g. "warn.noCamera"
    this.switching = false;
  }

  get audioTrack() { return this.stream?.getAudioTracks()[0] ?? null; }
  get videoTrack() { return this.stream?.getVideoTracks()[0] ?? null; }

  /** What this participant is sending, as the `media` event wants it. */
  get flags() {
    return {
      audio: !!this.audioTrack && this.audioEnabled && this.audioTrack.readyState === "live",
      video: !!this.videoTrack && this.videoEnabled && this.videoTrack.readyState === "live",
    };
  }

  /** "user" (mirror the preview), "environment" or null when unknown. */
  get facing() {
    const track = this.videoTrack;
    if (!track) return null;
    const setting = track.getSettings?.().facingMode;
    if (setting === "user" || setting === "environment") return setting;
    if (isRearLabel(track.label)) return "environment";
    if (isFrontLabel(track.label)) return "user";
    return null;
  }

  /** Open camera + microphone. Throws the getUserMedia error when nothing usable opens. */
  async start({ preferRear = false } = {}) {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) throw insecureError();
    this.stop();
    this.warnings = [];
    const video = { ...VIDEO };
    if (preferRear) video.facingMode = { ideal: "environment" };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO, video });
    } catch (err) {
      if (!["NotFoundError", "OverconstrainedError", "NotReadableError"].includes(err.name)) throw err;
      // One of the two devices is missing or busy: carry on with the other one.
      stream = await this.#tryOne({ audio: AUDIO }, "warn.noCamera")
        ?? await this.#tryOne({ video }, "warn.noMic");
      if (!stream) throw err;
    }
    this.stream = stream;
    this.#applyEnabled();
    this.#watchEnded();
    if (preferRear) await this.preferRearCamera();
    this.#changed();
  }

  async #tryOne(constraints, warning) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      this.warnings.push(warning);
      return stream;
    } catch {
      return null;
    }
  }

  /** Cameras, once permission is granted (labels are empty before that). */
  async cameras() {
    if (!navigator.mediaDevices?.enumerateDevices) return [];
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((d) => d.kind === "videoinput" && d.deviceId);
  }

  /** If the open camera is not a rear one and a rear one is listed, switch to it. */
  async preferRearCamera() {
    const track = this.videoTrack;
    if (!track || isRearLabel(track.label)) return;
    if (track.getSettings?.().facingMode === "environment") return;
    const rear = (await this.cameras()).find((d) => isRearLabel(d.label));
    if (rear && rear.deviceId !== track.getSettings?.().deviceId) {
      try { await this.useCamera(rear.deviceId); } catch { /* keep the camera we have */ }
    }
  }

  /**
   * Switch to the "other" camera: rear -> first front, front -> first rear, otherwise the next
   * one in the list. Returns false when there is no other camera.
   */
  async switchCamera() {
    const cams = await this.cameras();
    if (cams.length < 2) return false;
    const currentId = this.videoTrack?.getSettings?.().deviceId;
    const index = cams.findIndex((d) => d.deviceId === currentId);
    const current = cams[index];
    let next = null;
    if (current && isRearLabel(current.label)) next = cams.find((d) => isFrontLabel(d.label));
    else if (current && isFrontLabel(current.label)) next = cams.find((d) => isRearLabel(d.label));
    if (!next) next = cams[(index + 1) % cams.length];
    if (!next || next.deviceId === currentId) return false;
    await this.useCamera(next.deviceId);
    return true;
  }

  /** Open the camera `deviceId` in place of the current one (keeps mute state). */
  async useCamera(deviceId) {
    if (this.switching) return;
    this.switching = true;
    const old = this.videoTrack;
    const oldId = old?.getSettings?.().deviceId;
    try {
      // Phones often cannot open two cameras at once: release the old one first.
      old?.stop();
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, deviceId: { exact: deviceId } } });
      } catch (err) {
        if (oldId) {
          stream = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, deviceId: { exact: oldId } } }).catch(() => null);
          if (stream) this.#replaceVideo(old, stream.getVideoTracks()[0]);
        }
        throw err;
      }
      this.#replaceVideo(old, stream.getVideoTracks()[0]);
    } finally {
      this.switching = false;
    }
  }

  #replaceVideo(old, track) {
    if (!this.stream) this.stream = new MediaStream();
    if (old) this.stream.removeTrack(old);
    this.stream.addTrack(track);
    track.enabled = this.videoEnabled;
    this.#watchEnded();
    this.dispatchEvent(new CustomEvent("videotrack", { detail: { track } }));
    this.#changed();
  }

  setAudio(on) {
    this.audioEnabled = !!on;
    this.#applyEnabled();
    this.#changed();
  }

  setVideo(on) {
    this.videoEnabled = !!on;
    this.#applyEnabled();
    this.#changed();
  }

  #applyEnabled() {
    if (this.audioTrack) this.audioTrack.enabled = this.audioEnabled;
    if (this.videoTrack) this.videoTrack.enabled = this.videoEnabled;
  }

  #watchEnded() {
    for (const track of this.stream?.getTracks() ?? []) {
      track.onended = () => this.#changed();
    }
  }

  #changed() {
    this.dispatchEvent(new CustomEvent("change"));
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) {
      track.onended = null;
      track.stop();
    }
    this.stream = null;
  }
}
