// Replaying an inspection's recorded media: each track is a list of WebM segments of about
// 4 s, each with its place on the wall clock (start/end from the manifest). One clock in wall
// time drives every track; the main video is the clock's authority while it plays, the other
// tracks follow it and are re-seeked when they drift. Each track plays through two media
// elements: while one plays a segment, the other has the next one loaded and paused at its
// start, so a segment boundary costs a swap, not a load.

const DRIFT_S = 0.35;
const STALL_GIVE_UP_MS = 4000; // a segment that will not play is skipped rather than waited for
const CACHE_PER_TRACK = 8;

/** Index of the segment holding wall time `pos` (ms), or -1. Segments are sorted by start. */
export function segmentAt(segments, pos) {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = segments[mid];
    if (pos < s.start) hi = mid - 1;
    else if (pos >= s.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** One recorded track (video or audio) played through two elements inside `container`. */
class TrackPlayer {
  constructor(name, kind, segments, container, fetchUrl) {
    this.name = name;
    this.kind = kind;
    this.segments = segments;
    this.fetchUrl = fetchUrl;
    this.muted = true;
    this.els = [0, 1].map(() => {
      const el = document.createElement(kind === "video" ? "video" : "audio");
      el.preload = "auto";
      el.playsInline = true;
      el.muted = true;
      el.className = "replay-media";
      el.dataset.track = name;
      el.loadedIndex = -1;
      el.loadingIndex = -1;
      container.append(el);
      return el;
    });
    this.active = this.els[0];
    this.index = -1; // the segment the active element shows
    this.waitingSince = 0;
    this.error = null;
  }

  get element() {
    return this.active;
  }

  setMuted(muted) {
    this.muted = muted;
    for (const el of this.els) el.muted = muted;
  }

  /** Load segment `i` into `el` (once); resolves when it can show a frame. */
  async #load(el, i) {
    if (el.loadedIndex === i || el.loadingIndex === i) return;
    el.loadingIndex = i;
    el.loadedIndex = -1;
    try {
      const url = await this.fetchUrl(this.segments[i].key);
      if (el.loadingIndex !== i) return; // replaced meanwhile
      el.src = url;
      el.dataset.key = this.segments[i].key;
      el.load();
      el.loadedIndex = i;
    } catch (err) {
      if (el.loadingIndex === i) el.loadingIndex = -1;
      this.error = err;
      console.warn(`replay: segment ${this.segments[i].key} not loaded`, err);
    }
  }

  /**
   * Bring the track to wall time `pos`. Returns {ready, inGap, mediaPos}: `ready` false while
   * the segment that should play cannot yet; `mediaPos` the wall time the active element
   * actually shows (the clock's authority for the main track).
   */
  sync(pos, playing, rate) {
    const i = segmentAt(this.segments, pos);
    if (i < 0) {
      for (const el of this.els) {
        if (!el.paused) el.pause();
        el.classList.remove("active");
      }
      this.index = -1;
      return { ready: true, inGap: true, mediaPos: null };
    }
    const seg = this.segments[i];
    let el = this.els.find((e) => e.loadedIndex === i);
    if (!el) {
      const spare = this.els.find((e) => e !== this.active) ?? this.active;
      const target = spare.loadingIndex === i ? spare : this.active.loadingIndex === i ? this.active : spare;
      this.#load(target, i);
      return this.#waiting(playing);
    }
    if (el !== this.active || this.index !== i) {
      if (el.readyState < 2) return this.#waiting(playing);
      const old = this.active;
      this.active = el;
      this.index = i;
      el.classList.add("active");
      if (old !== el) {
        old.classList.remove("active");
        if (!old.paused) old.pause();
      }
    }
    const offset = Math.max(0, (pos - seg.start) / 1000);
    const duration = Number.isFinite(el.duration) ? el.duration : (seg.end - seg.start) / 1000;
    const target = Math.min(offset, Math.max(0, duration - 0.02));
    if (el.playbackRate !== rate) el.playbackRate = rate;
    if (playing) {
      if (Math.abs(el.currentTime - target) > DRIFT_S && !el.seeking) el.currentTime = target;
      if (el.paused && !el.ended && offset < duration) el.play().catch(() => {});
    } else {
      if (!el.paused) el.pause();
      if (Math.abs(el.currentTime - target) > 0.04 && !el.seeking) el.currentTime = target;
    }
    // Have the next segment waiting in the other element.
    const next = i + 1 < this.segments.length ? i + 1 : -1;
    const other = this.els.find((e) => e !== el);
    if (next >= 0 && other.loadedIndex !== next && other.loadingIndex !== next) this.#load(other, next);

    const ready = !playing || el.readyState >= 3 || el.ended;
    if (ready) this.waitingSince = 0;
    else if (!this.waitingSince) this.waitingSince = performance.now();
    const stuck = !ready && performance.now() - this.waitingSince > STALL_GIVE_UP_MS;
    const mediaPos = playing && !el.paused && !el.seeking && el.readyState >= 3 && !el.ended
      ? seg.start + el.currentTime * 1000 : null;
    return { ready: ready || stuck, inGap: false, mediaPos };
  }

  #waiting(playing) {
    if (!playing) return { ready: true, inGap: false, mediaPos: null };
    if (!this.waitingSince) this.waitingSince = performance.now();
    const stuck = performance.now() - this.waitingSince > STALL_GIVE_UP_MS;
    return { ready: stuck, inGap: false, mediaPos: null };
  }

  pause() {
    for (const el of this.els) if (!el.paused) el.pause();
  }

  destroy() {
    for (const el of this.els) {
      el.pause();
      el.removeAttribute("src");
      el.load();
      el.remove();
    }
  }
}

/**
 * The replay of one inspection. `tracks` maps a track name ("applicant-video", ...) to its
 * segments [{key, start, end}] (ms wall times); `fetchBlob(key)` returns the object's bytes.
 * Events (EventTarget): "tick" (position changed), "state" (play/pause/end).
 */
export class Replay extends EventTarget {
  constructor({ main, pip, audio, fetchBlob }) {
    super();
    this.containers = { main, pip, audio };
    this.fetchBlob = fetchBlob;
    this.players = [];
    this.mainPlayer = null;
    this.playing = false;
    this.rate = 1;
    this.muted = true;
    this.position = 0;
    this.start = 0;
    this.end = 0;
    this.urls = new Map(); // key -> Promise<objectURL>
    this.lru = [];
    this.lastFrame = 0;
    this.raf = 0;
    this.stalled = false;
    this.destroyed = false;
  }

  /** Set up the players; returns the names of the tracks played where. */
  load(tracks) {
    const names = Object.keys(tracks).filter((n) => tracks[n].length);
    const video = names.filter((n) => n.endsWith("-video"));
    const mainName = video.includes("applicant-video") ? "applicant-video" : video[0] ?? null;
    const pipName = video.find((n) => n !== mainName && n.startsWith("inspector")) ?? video.find((n) => n !== mainName) ?? null;
    const audioNames = names.filter((n) => n.endsWith("-audio"));
    for (const name of names) tracks[name].sort((a, b) => a.start - b.start);
    const all = names.flatMap((n) => tracks[n]);
    this.start = all.length ? Math.min(...all.map((s) => s.start)) : 0;
    this.end = all.length ? Math.max(...all.map((s) => s.end)) : 0;
    this.position = this.start;
    const fetchUrl = (key) => this.#url(key);
    if (mainName) {
      this.mainPlayer = new TrackPlayer(mainName, "video", tracks[mainName], this.containers.main, fetchUrl);
      this.players.push(this.mainPlayer);
    }
    if (pipName) this.players.push(new TrackPlayer(pipName, "video", tracks[pipName], this.containers.pip, fetchUrl));
    for (const name of audioNames) this.players.push(new TrackPlayer(name, "audio", tracks[name], this.containers.audio, fetchUrl));
    this.allSegments = all.sort((a, b) => a.start - b.start);
    this.#loop();
    return { main: mainName, pip: pipName, audio: audioNames };
  }

  get duration() {
    return Math.max(0, this.end - this.start);
  }

  player(name) {
    return this.players.find((p) => p.name === name) ?? null;
  }

  play() {
    if (!this.players.length) return;
    if (this.position >= this.end - 50) this.position = this.start;
    this.playing = true;
    this.lastFrame = performance.now();
    this.#state();
  }

  pause() {
    this.playing = false;
    for (const p of this.players) p.pause();
    this.#state();
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  setRate(rate) {
    this.rate = rate;
  }

  setMuted(muted) {
    this.muted = muted;
    for (const p of this.players) if (p.kind === "audio") p.setMuted(muted);
  }

  /** Go to wall time `ms` (clamped to the recording). */
  seek(ms) {
    this.position = Math.min(Math.max(ms, this.start), this.end);
    this.lastFrame = performance.now();
    this.#syncAll();
    this.dispatchEvent(new CustomEvent("tick"));
  }

  destroy() {
    this.destroyed = true;
    cancelAnimationFrame(this.raf);
    for (const p of this.players) p.destroy();
    for (const url of this.urls.values()) url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
    this.urls.clear();
  }

  #url(key) {
    let url = this.urls.get(key);
    if (!url) {
      url = this.fetchBlob(key).then((blob) => URL.createObjectURL(blob));
      url.catch(() => this.urls.delete(key));
      this.urls.set(key, url);
      this.lru.push(key);
      // Keep the memory bounded: forget the oldest segments not shown by any element.
      const limit = CACHE_PER_TRACK * Math.max(1, this.players.length);
      while (this.lru.length > limit) {
        const old = this.lru.shift();
        const promise = this.urls.get(old);
        this.urls.delete(old);
        promise?.then((u) => {
          const inUse = this.players.some((p) => p.els.some((el) => el.src === u));
          if (!inUse) URL.revokeObjectURL(u);
        }).catch(() => {});
      }
    }
    return url;
  }

  #syncAll() {
    let ready = true;
    let mediaPos = null;
    let anyInSegment = false;
    for (const p of this.players) {
      const r = p.sync(this.position, this.playing, this.rate);
      if (!r.inGap) anyInSegment = true;
      if (p === this.mainPlayer) {
        if (!r.ready) ready = false;
        mediaPos = r.mediaPos;
      }
    }
    return { ready, mediaPos, anyInSegment };
  }

  #loop() {
    const frame = (now) => {
      if (this.destroyed) return;
      const dt = now - this.lastFrame;
      this.lastFrame = now;
      if (this.playing) {
        const before = this.#syncAll();
        this.stalled = !before.ready;
        if (before.mediaPos !== null && Math.abs(before.mediaPos - this.position) < 1500) {
          this.position = before.mediaPos; // the main video is the authority while it plays
        } else if (before.ready) {
          this.position += dt * this.rate;
        }
        if (!before.anyInSegment) {
          // Nobody was recording here (before the start, a reconnection): skip the gap.
          const next = this.allSegments.find((s) => s.start > this.position);
          if (next) this.position = next.start;
        }
        if (this.position >= this.end) {
          this.position = this.end;
          this.pause();
        }
        this.dispatchEvent(new CustomEvent("tick"));
      } else {
        this.#syncAll(); // paused: segments that finished loading show the right frame
      }
      this.raf = requestAnimationFrame(frame);
    };
    this.raf = requestAnimationFrame(frame);
  }

  #state() {
    this.dispatchEvent(new CustomEvent("state"));
  }
}
