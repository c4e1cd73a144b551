// The applicant's location: the standard asks to check that the applicant is at the site.
// Asked once after joining (with an explanation first, unless permission is already
// granted), sent as `location {lat, lon, accuracy_m}` at each join and every ~60 s while the
// session is live. A refusal is fine: the inspection goes on and the page says so.

const EVERY_MS = 60000;
const FIX_OPTIONS = { enableHighAccuracy: true, timeout: 20000, maximumAge: 30000 };

export class LocationShare extends EventTarget {
  constructor(session) {
    super();
    this.session = session;
    this.state = "idle"; // idle | ask | locating | shared | denied | unavailable
    this.error = null;
    this.last = null; // {lat, lon, accuracy_m, at}
    this.reply = null; // the last ack: {distance_m?, within_radius?}
    this.timer = null;
    this.wanted = false;
    session.addEventListener("joined", () => this.#onJoined());
    session.addEventListener("final", () => this.stop());
  }

  get supported() {
    return "geolocation" in navigator;
  }

  async #onJoined() {
    if (this.session.state.role !== "applicant") return;
    if (!this.supported) {
      this.#set("unavailable", "no geolocation");
      return;
    }
    if (this.wanted) {
      this.#sendNow(); // a new join (reconnect, reload): send where we are again
      return;
    }
    let permission = "prompt";
    try {
      permission = (await navigator.permissions?.query({ name: "geolocation" }))?.state ?? "prompt";
    } catch { /* Safari before 16: no query for geolocation */ }
    if (permission === "granted") this.allow();
    else if (permission === "denied") this.#set("denied");
    else this.#set("ask");
  }

  /** The user agreed (or permission was already there): locate now and keep sending. */
  allow() {
    this.wanted = true;
    this.#set("locating");
    this.#sendNow();
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (this.session.state.status === "live" && this.session.state.joined) this.#sendNow();
    }, EVERY_MS);
  }

  /** "Not now": no location; the inspection goes on. */
  decline() {
    this.#set("denied");
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  #sendNow() {
    navigator.geolocation.getCurrentPosition(
      (pos) => this.#send(pos),
      (err) => {
        if (err.code === 1) {
          this.stop();
          this.wanted = false;
          this.#set("denied");
        } else if (!this.last) {
          this.#set("unavailable", err.message || `error ${err.code}`);
        }
      },
      FIX_OPTIONS,
    );
  }

  async #send(pos) {
    const fix = {
      lat: round(pos.coords.latitude, 7),
      lon: round(pos.coords.longitude, 7),
      accuracy_m: Math.min(100000, round(pos.coords.accuracy ?? 0, 1)),
    };
    this.last = { ...fix, at: Date.now() };
    if (!this.session.state.joined) {
      this.#set("shared");
      return;
    }
    const ack = await this.session.request("location", fix);
    if (ack.ok) this.reply = ack;
    this.#set("shared");
  }

  /** The last fix if it is recent enough to tag a photo with. */
  recent(maxAgeMs = 5 * 60000) {
    return this.last && Date.now() - this.last.at < maxAgeMs ? this.last : null;
  }

  #set(state, error = null) {
    this.state = state;
    this.error = error;
    this.dispatchEvent(new CustomEvent("change"));
  }
}

function round(v, digits) {
  const k = 10 ** digits;
  return Math.round(v * k) / k;
}
