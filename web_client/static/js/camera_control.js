// The inspector's camera requests (server event `camera_request`): torch on/off and zoom
// through the video track's applyConstraints where the browser offers them
// (getCapabilities().torch / .zoom), a full-resolution photo through ImageCapture.takePhoto.
// Every request gets an answer (`camera_result`): done, or plainly why not.
import { uploadPhoto } from "./photo_upload.js";

export class CameraControl {
  constructor(session, video, { checkpoint } = {}) {
    this.session = session;
    this.video = video;
    this.checkpoint = checkpoint ?? (() => null);
    this.last = null;
    session.addEventListener("server", (e) => {
      const { name, payload } = e.detail;
      if (name === "camera_request" && payload) this.handle(payload);
    });
  }

  track() {
    const stream = this.video?.srcObject;
    return stream?.getVideoTracks?.()[0] ?? null;
  }

  async handle(req) {
    const answer = { request_id: String(req.request_id), action: req.action, ok: false };
    try {
      Object.assign(answer, await this.#do(req));
    } catch (err) {
      Object.assign(answer, { ok: false, reason: "failed", detail: String(err?.message ?? err).slice(0, 300) });
    }
    this.last = answer;
    await this.session.request("camera_result", answer);
    return answer;
  }

  async #do(req) {
    const track = this.track();
    if (!track) return { ok: false, reason: "no_camera", detail: "the camera is off" };
    const caps = typeof track.getCapabilities === "function" ? track.getCapabilities() : {};
    if (req.action === "torch_on" || req.action === "torch_off") {
      if (!caps.torch) return { ok: false, reason: "unsupported", detail: "this browser or camera has no torch control" };
      await track.applyConstraints({ advanced: [{ torch: req.action === "torch_on" }] });
      return { ok: true };
    }
    if (req.action === "zoom") {
      if (!caps.zoom) return { ok: false, reason: "unsupported", detail: "this browser or camera has no zoom control" };
      const zoom = Math.min(caps.zoom.max, Math.max(caps.zoom.min, Number(req.zoom)));
      await track.applyConstraints({ advanced: [{ zoom }] });
      return { ok: true, detail: `zoom ${zoom}` };
    }
    if (req.action === "photo") {
      if (typeof window.ImageCapture !== "function") {
        return { ok: false, reason: "unsupported", detail: "this browser cannot take full-resolution photos (no ImageCapture)" };
      }
      const blob = await new window.ImageCapture(track).takePhoto();
      const code = this.checkpoint();
      if (!code) return { ok: false, reason: "failed", detail: "no checkpoint chosen for the photo" };
      const file = new File([blob], "takephoto.jpg", { type: blob.type || "image/jpeg" });
      const sent = await uploadPhoto({ token: this.session.token, file, checkpoint: code });
      return sent.ok ? { ok: true, detail: sent.body?.key } : { ok: false, reason: "failed", detail: String(sent.message ?? sent.code) };
    }
    return { ok: false, reason: "unsupported", detail: `unknown action ${req.action}` };
  }
}
