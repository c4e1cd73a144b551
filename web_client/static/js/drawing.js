// The inspector's marks (server event `drawing`) drawn over a video: arrows, circles and
// short texts, in fractions of the picture, as an SVG laid on the video's box. An empty
// list clears them.
const SVG = "http://www.w3.org/2000/svg";

export class DrawingOverlay {
  constructor(session, video) {
    this.video = video;
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.id = "drawing-overlay";
    this.svg.setAttribute("viewBox", "0 0 1000 1000");
    this.svg.setAttribute("preserveAspectRatio", "none");
    Object.assign(this.svg.style, { position: "absolute", inset: "0", width: "100%", height: "100%", pointerEvents: "none" });
    const parent = video.parentElement;
    if (parent && getComputedStyle(parent).position === "static") parent.style.position = "relative";
    video.insertAdjacentElement("afterend", this.svg);
    this.shapes = [];
    session.addEventListener("server", (e) => {
      const { name, payload } = e.detail;
      if (name === "drawing") this.show(payload?.shapes ?? []);
    });
  }

  show(shapes) {
    this.shapes = shapes;
    this.svg.replaceChildren();
    this.svg.dataset.count = String(shapes.length);
    for (const s of shapes) {
      const [a, b] = (s.points ?? []).map(([x, y]) => [x * 1000, y * 1000]);
      const color = s.color ?? "#ff3b30";
      if (s.kind === "arrow" && a && b) {
        const line = this.#el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: color, "stroke-width": 8 });
        const angle = Math.atan2(b[1] - a[1], b[0] - a[0]);
        const head = [-0.5, 0.5].map((d) => [b[0] - 40 * Math.cos(angle + d), b[1] - 40 * Math.sin(angle + d)]);
        const tip = this.#el("polygon", { points: [b, ...head].map((p) => p.join(",")).join(" "), fill: color });
        this.svg.append(line, tip);
      } else if (s.kind === "circle" && a && b) {
        const r = Math.hypot(b[0] - a[0], b[1] - a[1]);
        this.svg.append(this.#el("circle", { cx: a[0], cy: a[1], r, stroke: color, "stroke-width": 8, fill: "none" }));
      } else if (s.kind === "text" && a) {
        const text = this.#el("text", { x: a[0], y: a[1], fill: color, "font-size": 56, "font-weight": 700, stroke: "#000", "stroke-width": 1.5 });
        text.textContent = s.text ?? "";
        this.svg.append(text);
      }
    }
  }

  #el(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    el.dataset.kind = tag;
    return el;
  }
}
