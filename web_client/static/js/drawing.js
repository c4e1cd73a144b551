// The inspector's marks (server event `drawing`) drawn over a video: arrows, circles and
// short texts, in fractions of the picture, as an SVG laid exactly on the picture the video
// paints (letterboxed or cut by object-fit, mirrored for a front camera's own preview). An
// empty list clears them. The console draws its own sketch with the same renderShapes.
import { isMirrored, pictureRect } from "./picture.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 1000; // the SVG's user units across the picture; its height follows the aspect

/** A new <svg> for shapes, laid over its positioned parent. */
export function shapeLayer(id) {
  const svg = document.createElementNS(SVG, "svg");
  svg.id = id;
  svg.setAttribute("preserveAspectRatio", "none");
  Object.assign(svg.style, { position: "absolute", left: "0", top: "0", width: "100%", height: "100%", pointerEvents: "none", overflow: "visible" });
  return svg;
}

/**
 * Draw `shapes` into `svg` (its previous content goes). `aspect` is the picture's
 * height/width, so a circle stays round; `mirror` flips the places, not the letters.
 */
export function renderShapes(svg, shapes, { aspect = 9 / 16, mirror = false } = {}) {
  const height = WIDTH * aspect;
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  svg.replaceChildren();
  svg.dataset.count = String(shapes.length);
  const place = ([x, y]) => [(mirror ? 1 - x : x) * WIDTH, y * height];
  for (const s of shapes) {
    const [a, b] = (s.points ?? []).map(place);
    const color = s.color ?? "#ff3b30";
    if (s.kind === "arrow" && a && b) {
      const line = el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: color, "stroke-width": 7, "stroke-linecap": "round" });
      const angle = Math.atan2(b[1] - a[1], b[0] - a[0]);
      const head = [-0.5, 0.5].map((d) => [b[0] - 36 * Math.cos(angle + d), b[1] - 36 * Math.sin(angle + d)]);
      const tip = el("polygon", { points: [b, ...head].map((p) => p.join(",")).join(" "), fill: color });
      tip.dataset.kind = "arrowhead";
      line.dataset.kind = "arrow";
      svg.append(line, tip);
    } else if (s.kind === "circle" && a && b) {
      const r = Math.hypot(b[0] - a[0], b[1] - a[1]);
      svg.append(el("circle", { cx: a[0], cy: a[1], r, stroke: color, "stroke-width": 7, fill: "none" }));
    } else if (s.kind === "text" && a) {
      // paint-order: the dark outline under the letters keeps them legible on any picture
      const text = el("text", { x: a[0], y: a[1], fill: color, "font-size": 44, "font-weight": 700, stroke: "#000", "stroke-width": 5, "paint-order": "stroke" });
      text.textContent = s.text ?? "";
      svg.append(text);
    }
  }
}

function el(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.dataset.kind = tag;
  return node;
}

/** Keep `layer` (absolutely positioned in the video's parent) on the video's picture. */
export function followPicture(video, layer, onChange = () => {}) {
  const place = () => {
    const rect = pictureRect(video);
    Object.assign(layer.style, {
      left: `${video.offsetLeft + rect.left}px`, top: `${video.offsetTop + rect.top}px`,
      width: `${rect.width}px`, height: `${rect.height}px`,
    });
    onChange();
  };
  new ResizeObserver(place).observe(video);
  video.addEventListener("loadedmetadata", place);
  video.addEventListener("resize", place); // the picture's own size changed (camera switch)
  place();
  return place;
}

export class DrawingOverlay {
  constructor(session, video, { id = "drawing-overlay" } = {}) {
    this.video = video;
    this.svg = shapeLayer(id);
    const parent = video.parentElement;
    if (parent && getComputedStyle(parent).position === "static") parent.style.position = "relative";
    video.insertAdjacentElement("afterend", this.svg);
    this.shapes = [];
    this.at = null;
    followPicture(video, this.svg, () => this.show(this.shapes));
    const take = (drawing) => {
      this.at = drawing?.at ?? null;
      this.show(drawing?.shapes ?? []);
    };
    // A (re)loaded page starts from the marks shown now (join ack), then follows `drawing`.
    session.addEventListener("joined", () => take(session.drawing));
    session.addEventListener("server", (e) => {
      if (e.detail.name === "drawing") take(e.detail.payload);
    });
  }

  show(shapes) {
    this.shapes = shapes;
    const { videoWidth: w, videoHeight: h } = this.video;
    renderShapes(this.svg, shapes, { aspect: w && h ? h / w : 9 / 16, mirror: isMirrored(this.video) });
  }
}
