"""The admin's view of webhook deliveries on a real server: pages, cursors, bad queries."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from testkit.server import running_server


async def test_the_deliveries_come_in_pages_newest_first(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        outbox = server.services.outbox
        made = [await outbox.enqueue("inspection.judged", {"id": f"i{n}"}, "http://127.0.0.1:9/hooks", None, "key")
                for n in range(7)]
        url = f"{server.base_url}/api/v1/webhooks"
        async with http.get(url, params={"limit": "3"}, headers=server.headers()) as response:
            first = await response.json()
        assert response.status == 200, first
        assert [d["delivery_id"] for d in first["items"]] == [d.delivery_id for d in made[4:]]
        assert first["total"] == 7 and first["stats"]["pending"] == 7 and first["next_before"] is not None
        async with http.get(url, params={"limit": "3", "before": str(first["next_before"]), "state": "pending"},
                            headers=server.headers()) as response:
            second = await response.json()
        assert [d["delivery_id"] for d in second["items"]] == [d.delivery_id for d in made[1:4]]
        async with http.get(url, params={"before": str(second["next_before"])}, headers=server.headers()) as response:
            last = await response.json()
        assert [d["delivery_id"] for d in last["items"]] == [made[0].delivery_id] and last["next_before"] is None
        async with http.get(f"{url}/{made[2].delivery_id}", headers=server.headers()) as response:
            assert response.status == 200 and (await response.json())["delivery_id"] == made[2].delivery_id
        for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "many"}, {"before": "-1"}, {"state": "lost"}):
            async with http.get(url, params=bad, headers=server.headers()) as response:
                problem = await response.json(content_type=None)
            assert response.status == 422, (bad, problem)
            assert problem["errors"][0]["field"] == next(iter(bad)), problem
        async with http.get(f"{url}/dlv_nope", headers=server.headers()) as response:
            assert response.status == 404
