// The console's tools over the applicant's video (#stage-tools, #draw-bar): freeze and draw
// (drawing_tool.js), clear, and the phone's camera (camera_remote.js). Inspector only; an
// observer sees the marks (the DrawingOverlay) but no tools.
import { t, onLangChange } from "./i18n.js";
import { DrawingOverlay } from "./drawing.js";
import { DrawingTool } from "./drawing_tool.js";
import { RemoteCamera } from "./camera_remote.js";
import { PROTOCOL } from "./protocol.js";

const $ = (id) => document.getElementById(id);

/** Wire the tools; `canAct()` says whether the inspector may act now. Returns {render, drawing, camera}. */
export function bindStageTools(session, { canAct }) {
  const video = $("remote-video");
  const marks = new DrawingOverlay(session, video); // what the applicant is shown now
  const drawing = new DrawingTool(session, video, marks, {
    frame: $("frozen-frame"), surface: $("draw-surface"), text: $("draw-text"), status: $("draw-status"),
  });
  const camera = new RemoteCamera(session, $("camera-status"));

  function render() {
    const acting = canAct();
    if (!acting && drawing.frozen) drawing.unfreeze(); // the session ended under the tool
    const picture = video.readyState >= 2 && video.videoWidth > 0 && $("remote-notice").hidden;
    $("btn-freeze").disabled = !acting || (!drawing.frozen && !picture);
    $("btn-freeze").setAttribute("aria-pressed", String(drawing.frozen));
    $("btn-freeze-label").textContent = $("btn-freeze").title = t(drawing.frozen ? "draw.unfreeze" : "draw.freeze");
    $("frozen-frame").hidden = !drawing.frozen;
    $("draw-surface").hidden = !drawing.frozen;
    $("draw-surface").dataset.tool = drawing.tool;
    $("draw-bar").hidden = !drawing.frozen;
    $("btn-draw-clear").hidden = drawing.shapes.length === 0;
    $("btn-draw-clear").disabled = !acting;
    $("btn-draw-undo").disabled = !acting || drawing.shapes.length === 0;
    for (const b of document.querySelectorAll("#draw-bar [data-tool]")) b.setAttribute("aria-checked", String(b.dataset.tool === drawing.tool));
    $("draw-text").hidden = drawing.tool !== "text";
    $("draw-hint").textContent = drawing.full ? t("draw.full", { n: PROTOCOL.limits.drawing_shapes }) : t(`draw.hint.${drawing.tool}`);

    $("btn-torch").setAttribute("aria-pressed", String(camera.torch));
    $("btn-torch-label").textContent = $("btn-torch").title = t(camera.torch ? "cam.torchOff" : "cam.torchOn");
    for (const id of ["btn-torch", "btn-zoom-in", "btn-zoom-out", "btn-photo"]) $(id).disabled = !acting;
    $("btn-zoom-out").disabled ||= camera.zoom <= 1;
    $("btn-zoom-in").disabled ||= camera.zoom >= PROTOCOL.limits.camera_zoom_max;
    $("zoom-level").textContent = `${camera.zoom}×`;
  }

  $("btn-freeze").addEventListener("click", () => {
    if (drawing.frozen) drawing.unfreeze();
    else drawing.freeze();
  });
  $("btn-draw-clear").addEventListener("click", () => drawing.clear());
  $("btn-draw-undo").addEventListener("click", () => drawing.undo());
  for (const b of document.querySelectorAll("#draw-bar [data-tool]")) {
    b.addEventListener("click", () => {
      drawing.select(b.dataset.tool);
      if (b.dataset.tool === "text") $("draw-text").focus();
    });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && drawing.frozen && !document.querySelector("dialog[open]")) drawing.unfreeze();
  });
  $("btn-torch").addEventListener("click", () => camera.toggleTorch());
  $("btn-zoom-in").addEventListener("click", () => camera.step(+1));
  $("btn-zoom-out").addEventListener("click", () => camera.step(-1));
  $("btn-photo").addEventListener("click", () => camera.photo());

  drawing.addEventListener("change", render);
  camera.addEventListener("change", render);
  session.addEventListener("server", (e) => { if (e.detail.name === "drawing") render(); });
  for (const name of ["loadeddata", "resize", "emptied"]) video.addEventListener(name, render);
  onLangChange(render);
  return { render, drawing, camera, marks };
}
