// Where a <video> (or <canvas>) paints its picture inside its own box. With object-fit
// `contain` the picture is letterboxed, with `cover` it overflows and is cut: the marks of
// the drawing are in fractions of the picture, not of the box, so both the inspector's
// pointer and the applicant's overlay go through this.

/** {left, top, width, height} of the painted picture, in CSS pixels from the element's box. */
export function pictureRect(el) {
  const boxW = el.clientWidth;
  const boxH = el.clientHeight;
  const w = el.videoWidth ?? el.width;
  const h = el.videoHeight ?? el.height;
  if (!w || !h || !boxW || !boxH) return { left: 0, top: 0, width: boxW, height: boxH };
  const fit = getComputedStyle(el).objectFit;
  const scale = fit === "cover" ? Math.max(boxW / w, boxH / h)
    : fit === "fill" ? null
    : Math.min(boxW / w, boxH / h); // contain (the default for the pages' videos)
  if (scale === null) return { left: 0, top: 0, width: boxW, height: boxH };
  const width = w * scale;
  const height = h * scale;
  return { left: (boxW - width) / 2, top: (boxH - height) / 2, width, height };
}

/** Whether the element is shown mirrored (a front camera's own preview). */
export function isMirrored(el) {
  const transform = getComputedStyle(el).transform;
  return transform.startsWith("matrix(-1");
}
