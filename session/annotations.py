"""Drawings (the inspector's arrows, circles and texts) and camera requests over the session."""

from __future__ import annotations

from typing import Any

from .commands import CameraRequest, CameraResult, Drawing


def drawing_json(drawing: Drawing) -> dict[str, Any]:
    """The drawing as logged (``drawing.shown``) and sent to the room (``drawing``)."""
    shapes: list[dict[str, Any]] = []
    for shape in drawing.shapes:
        entry: dict[str, Any] = {"kind": shape.kind, "points": [[x, y] for x, y in shape.points], "color": shape.color}
        if shape.text is not None:
            entry["text"] = shape.text
        shapes.append(entry)
    data: dict[str, Any] = {"shapes": shapes}
    if drawing.evidence_key is not None:
        data["evidence_key"] = drawing.evidence_key
    return data


def camera_request_json(request: CameraRequest) -> dict[str, Any]:
    data: dict[str, Any] = {"action": request.action}
    if request.zoom is not None:
        data["zoom"] = request.zoom
    return data


def camera_result_json(result: CameraResult) -> dict[str, Any]:
    data: dict[str, Any] = {"request_id": result.request_id, "action": result.action, "ok": result.ok}
    if result.reason is not None:
        data["reason"] = result.reason
    if result.detail is not None:
        data["detail"] = result.detail
    return data
