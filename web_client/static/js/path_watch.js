// Media silence on a peer connection's transport: the first sign that the network path died.
//
// While this page sends video the server answers with transport-wide congestion feedback
// about ten times a second (and the other side's audio fifty times), so 0.45 s without any
// received byte means the path is down (an outage) or gone (the phone changed networks and
// the old address is no more). ICE
// takes about 2.5 s to say `disconnected` and Chromium never recovers a path whose local
// address vanished; the session acts on this sooner (session.js, #probePath).

const POLL_MS = 150;
const SILENT_MS = 450;

export class PathWatch {
  /**
   * @param {RTCPeerConnection} pc
   * @param {() => boolean} expectInbound  whether packets should be arriving now
   * @param {() => void} onSilent          called once per silence
   */
  constructor(pc, expectInbound, onSilent) {
    this.pc = pc;
    this.expectInbound = expectInbound;
    this.onSilent = onSilent;
    this.timer = null;
    this.bytes = -1;
    this.lastChange = 0;
    this.silent = false;
  }

  start() {
    if (this.timer) return;
    this.lastChange = performance.now();
    this.timer = setInterval(() => this.#poll(), POLL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async #poll() {
    let bytes = 0;
    try {
      (await this.pc.getStats()).forEach((s) => {
        if (s.type === "transport") bytes += s.bytesReceived ?? 0;
      });
    } catch {
      return; // closed meanwhile
    }
    const now = performance.now();
    if (bytes !== this.bytes) {
      this.bytes = bytes;
      this.lastChange = now;
      this.silent = false;
      return;
    }
    if (!this.expectInbound()) {
      this.lastChange = now; // nothing due: silence is not a sign of anything
      return;
    }
    if (!this.silent && now - this.lastChange >= SILENT_MS) {
      this.silent = true;
      this.onSilent();
    }
  }
}
