"""Recording of an inspection's media as evidence, as it happens.

The recorder joins a room's slots (:class:`media.interfaces.SinkHost`) like any participant: it remuxes each
track's encoded frames into short WebM segments (:mod:`recorder.segments`) and, on demand,
decodes one keyframe into a JPEG still (:mod:`recorder.stills`). It imports only media's
interfaces and relay types; what happens to a segment is the caller's callback.
"""

from .recorder import Recorder, track_name
from .segments import Segment, SegmentCallback, SegmentWriter
from .stills import NoVideo, Still, StillCapture
from .timeline import Timeline

__all__ = [
    "NoVideo",
    "Recorder",
    "Segment",
    "SegmentCallback",
    "SegmentWriter",
    "Still",
    "StillCapture",
    "Timeline",
    "track_name",
]
