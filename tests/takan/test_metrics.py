"""/metrics: Prometheus text that prometheus-client parses, and that moves when a session runs."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from testkit.media import encode_vp8, wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant
from web.metrics import from_loopback


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(server, http) -> dict:
    async with http.get(server.base_url + "/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"
        return samples(await r.text())


async def test_metrics_move_with_a_session(tmp_path) -> None:
    frames = encode_vp8(320, 240, frames=20)
    async with running_server(tmp_path / "d", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        before = await scrape(server, http)
        assert before[("takan_rooms", ())] == 0
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and await applicant.connect()
            await inspector.join_and_publish(frames)
            await applicant.join_and_publish(frames)
            assert (await applicant.call("stats", {"bitrate_kbps": 420.5, "loss_pct": 4.9, "rtt_ms": 80, "fps": 17, "freezes": 1}))["ok"]
            bad = await applicant.call("stats", {"loss_pct": 140})
            assert bad["ok"] is False and bad["error"]["code"] == "bad_request"
            assert await wait_for(lambda: inspector.peer.video_sink.frames > 20, 20)
            during = await scrape(server, http)
            assert during[("takan_rooms", ())] == 1
            assert sum(v for (name, _), v in during.items() if name == "takan_participants") == 2
            labels = (("inspection", created["id"]), ("participant", "applicant"))
            assert during[("takan_participant_loss_pct", labels)] == 4.9
            assert during[("takan_relay_frames_total", (("kind", "video"),))] > 0
            # the server's own view of the subscribers' links: both get video, neither capped here
            assert during[("takan_participant_audio_only", labels)] == 0
            assert ("takan_relay_paced_packets_total", ()) in during
            assert during[("takan_event_appends_total", ())] > before[("takan_event_appends_total", ())]
            assert (await inspector.call("end"))["ok"]
            await server.services.decisions.idle()
            after = await scrape(server, http)
            assert after[("takan_rooms", ())] == 0 and after[("takan_judgements_total", ())] == 1
            assert ("takan_webhook_deliveries", (("state", "pending"),)) in after
        finally:
            await inspector.close()
            await applicant.close()


def test_only_loopback_goes_without_credentials() -> None:
    class Request:
        def __init__(self, remote: str) -> None:
            self.remote = remote

    assert from_loopback(Request("127.0.0.1")) and from_loopback(Request("::1"))  # type: ignore[arg-type]
    assert not from_loopback(Request("203.0.113.7")) and not from_loopback(Request(""))  # type: ignore[arg-type]


def test_json_log_lines_carry_the_inspection() -> None:
    import json
    import logging

    from takan.logs import JsonLogFormatter

    record = logging.LogRecord("session.service", logging.INFO, __file__, 1,
                               "room %s: %s left", ("20261201223156-206fa4f22a258c5e", "applicant"), None)
    line = json.loads(JsonLogFormatter().format(record))
    assert line["inspection"] == "20261201223156-206fa4f22a258c5e" and line["level"] == "INFO"
    assert line["message"] == "room 20261201223156-206fa4f22a258c5e: applicant left" and line["at"].endswith("Z")
