"""Audio first: the watch turns a link's stall into media.audio_only, its return into media.video_back."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from session.quality import BACK_S, STALL_S, QualityWatch
from session.rooms import Participant, Room


@dataclass
class Up:
    kind: str
    frames: int = 0


@dataclass
class Peer:
    up_tracks: tuple = ()
    video_paused: bool = False


@dataclass
class Told:
    events: list = field(default_factory=list)
    logged: list = field(default_factory=list)

    async def log(self, inspection_id: str, type_: str, actor: str, data: dict[str, Any]) -> None:
        self.logged.append((type_, data))

    async def tell(self, inspection_id: str, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))


async def test_uplink_and_downlink_transitions_are_logged_and_told() -> None:
    room = Room("i1")
    video, audio = Up("video"), Up("audio")
    applicant = Participant("s1", "applicant", "applicant", datetime.datetime.now(datetime.timezone.utc))
    applicant.peer = Peer(up_tracks=(video, audio))  # type: ignore[assignment]
    inspector = Participant("s2", "inspector", "inspector", datetime.datetime.now(datetime.timezone.utc))
    inspector.peer = Peer()  # type: ignore[assignment]
    room.participants = {"s1": applicant, "s2": inspector}
    told = Told()
    watch = QualityWatch(lambda: [room], told.log, told.tell)

    async def tick(video_frames: int, audio_frames: int) -> None:
        video.frames += video_frames
        audio.frames += audio_frames
        await watch.check()

    await tick(20, 50)
    for _ in range(STALL_S):
        await tick(0, 50)  # the phone's uplink carries audio only
    assert told.logged == [("media.audio_only", {"id": "applicant", "role": "applicant", "link": "uplink"})]
    assert told.events[-1] == ("quality", {"id": "applicant", "role": "applicant", "link": "uplink", "audio_only": True})
    for _ in range(BACK_S):
        await tick(15, 50)
    assert told.logged[-1][0] == "media.video_back"
    inspector.peer.video_paused = True  # type: ignore[union-attr]  # the relay paused video to a weak subscriber
    await watch.check()
    assert told.logged[-1] == ("media.audio_only", {"id": "inspector", "role": "inspector", "link": "downlink"})
    await watch.close()


async def test_a_camera_turned_off_is_not_a_weak_link() -> None:
    room = Room("i2")
    video, audio = Up("video"), Up("audio")
    applicant = Participant("s1", "applicant", "applicant", datetime.datetime.now(datetime.timezone.utc), video=False)
    applicant.peer = Peer(up_tracks=(video, audio))  # type: ignore[assignment]
    room.participants = {"s1": applicant}
    told = Told()
    watch = QualityWatch(lambda: [room], told.log, told.tell)
    for _ in range(STALL_S + 2):
        audio.frames += 50
        await watch.check()
    assert told.logged == []
