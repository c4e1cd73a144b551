"""What an operator sees at ``GET /metrics`` (Prometheus text format).

Read at scrape time from the services themselves (no counters scattered through the code):
live rooms and participants, each participant's link as its page reports it (bitrate, loss,
RTT, fps, freezes) and as the server sees it (the cap on its video, audio only), relay
frames, keyframe requests and paced packets of the live tracks, recorder segments and
backlog, the storage spool, webhook deliveries, judgement and event-append times. Built in the composition root because it reads every layer.
"""

from __future__ import annotations

from typing import Iterator, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from approval.decisions import Decisions
from approval.outbox import Outbox
from evidence.journal import Journal
from session.service import SessionService
from storage.objects import ObjectStore


class TakanCollector(Collector):
    def __init__(self, sessions: SessionService, store: ObjectStore, outbox: Outbox, decisions: Decisions, journal: Journal) -> None:
        self.sessions = sessions
        self.store = store
        self.outbox = outbox
        self.decisions = decisions
        self.journal = journal

    def collect(self) -> Iterator[Metric]:
        rooms = list(self.sessions.rooms)
        yield GaugeMetricFamily("takan_rooms", "Live rooms on this node", value=len(rooms))
        participants = GaugeMetricFamily("takan_participants", "Participants in live rooms", labels=["role", "state"])
        counts: dict[tuple[str, str], int] = {}
        link = {name: GaugeMetricFamily(f"takan_participant_{name}", help_, labels=["inspection", "participant"])
                for name, help_ in (("bitrate_kbps", "Received bitrate the page reports"), ("loss_pct", "Packet loss the page reports"),
                                    ("rtt_ms", "Round-trip time the page reports"), ("fps", "Frames per second the page reports"),
                                    ("freezes", "Video freezes the page has counted"))}
        # The server's own view of each subscriber's link (media/bitrate_cap.py, media/pacer.py).
        cap = GaugeMetricFamily("takan_participant_link_cap_kbps", "The server's cap on the video this participant's link carries",
                                labels=["inspection", "participant"])
        audio_only = GaugeMetricFamily("takan_participant_audio_only", "1 while video to this participant is paused (audio first)",
                                       labels=["inspection", "participant"])
        paced = CounterMetricFamily("takan_relay_paced_packets", "Video packets to subscribers that waited for the pacer")
        paced_total = 0
        frames = CounterMetricFamily("takan_relay_frames", "Encoded frames received by the live tracks", labels=["kind"])
        requests = CounterMetricFamily("takan_relay_keyframe_requests", "Keyframe requests sent to publishers of live tracks")
        segments = CounterMetricFamily("takan_recorder_segments", "Segments recorded by the live rooms' recorders")
        backlog = GaugeMetricFamily("takan_recorder_backlog_segments", "Closed segments waiting to be stored")
        totals = {"video": 0, "audio": 0}
        keyframe_requests = recorded = waiting = 0
        for room in rooms:
            for participant in room.participants.values():
                state = "away" if participant.away else participant.connection
                counts[(participant.role, state)] = counts.get((participant.role, state), 0) + 1
                reported = participant.link
                if reported is not None:
                    for name, family in link.items():
                        value: Optional[float] = getattr(reported, name)
                        if value is not None:
                            family.add_metric([room.inspection_id, participant.id], value)
                peer = participant.peer
                video = peer.forwarded_tracks.get("video") if peer is not None else None
                if peer is not None and video is not None:
                    if video.link_cap_bps is not None:
                        cap.add_metric([room.inspection_id, participant.id], video.link_cap_bps / 1000)
                    audio_only.add_metric([room.inspection_id, participant.id], 1 if video.video_paused else 0)
                    paced_total += peer.pacer.paced if peer.pacer is not None else 0
            for up in room.media.tracks():
                totals[up.kind] = totals.get(up.kind, 0) + up.frames
                keyframe_requests += up.keyframe_requests
            for writer in room.recorder_writers():
                recorded += writer.segments
                waiting += writer.backlog
        for (role, state), n in sorted(counts.items()):
            participants.add_metric([role, state], n)
        for kind, n in totals.items():
            frames.add_metric([kind], n)
        requests.add_metric([], keyframe_requests)
        paced.add_metric([], paced_total)
        segments.add_metric([], recorded)
        backlog.add_metric([], waiting)
        yield participants
        yield from link.values()
        yield cap
        yield audio_only
        yield paced
        yield frames
        yield requests
        yield segments
        yield backlog
        depth = getattr(self.store, "depth", None)
        yield GaugeMetricFamily("takan_spool_depth", "Objects waiting in the local spool for the object store",
                                value=depth if isinstance(depth, int) else 0)
        stats = self.outbox.stats()
        webhooks = GaugeMetricFamily("takan_webhook_deliveries", "Webhook deliveries by state", labels=["state"])
        for state, n in stats.items():
            if isinstance(n, int) and state != "oldest_pending_age_s":
                webhooks.add_metric([state], n)
        yield webhooks
        yield GaugeMetricFamily("takan_webhook_oldest_pending_seconds", "Age of the oldest pending delivery",
                                value=stats.get("oldest_pending_age_s") or 0.0)
        yield CounterMetricFamily("takan_judgements", "Inspections judged", value=self.decisions.judged)
        yield CounterMetricFamily("takan_judgement_seconds", "Seconds spent judging", value=self.decisions.judge_seconds)
        yield CounterMetricFamily("takan_event_appends", "Events appended to evidence logs", value=self.journal.appends)
        yield CounterMetricFamily("takan_event_append_seconds", "Seconds spent appending events", value=self.journal.append_seconds)


def registry(collector: TakanCollector) -> CollectorRegistry:
    """A registry of Takan's own metrics (not the process-wide default one)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(collector)
    return found
