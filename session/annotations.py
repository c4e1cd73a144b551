"""Drawings: the inspector's arrows, circles and short texts over the applicant's view."""

from __future__ import annotations

from typing import Any

from .commands import Drawing


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
