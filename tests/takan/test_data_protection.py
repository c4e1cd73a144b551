"""Backup, wipe, restore, verify; archive export; no ID or phone number in clear anywhere."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
import zipfile

import aiohttp

from testkit.media import encode_vp8, wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant
from tests.takan.test_cli import clean_env

ID_NUMBER = "11010519491231002X"
PHONE = "13912345678"
TAKAN = [sys.executable, "-m", "takan"]


async def run_session(tmp_path, caplog) -> tuple[str, str]:
    frames = encode_vp8(320, 240, frames=20)
    data = tmp_path / "data"
    caplog.set_level(logging.DEBUG)
    from privacy.masking import install_scrubbing

    install_scrubbing()  # as `takan serve` does
    logging.getLogger("web.inspections_api").warning("a careless log line with %s and %s", ID_NUMBER, PHONE)
    async with running_server(data) as server, aiohttp.ClientSession() as http:
        applicant_body = {"name": "王五", "kind": "natural_person", "id_type": "RESIDENT_ID", "id_number": ID_NUMBER,
                          "contact_name": "王五", "contact_phone": PHONE}
        created = await create_inspection(server, http, applicant=applicant_body)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and await applicant.connect()
            await inspector.join_and_publish(frames)
            await applicant.join_and_publish(frames)
            assert await wait_for(lambda: inspector.peer.video_sink.frames > 10, 20)
            assert (await inspector.call("capture", {"checkpoint": "storefront"}))["ok"]
            assert (await inspector.call("end"))["ok"]
        finally:
            await inspector.close()
            await applicant.close()
        # the approval core's key holds every permission, personal data included
        async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
            assert (await r.json())["applicant"]["id_number"] == ID_NUMBER
        # a key without the personal-data permission sees masked values, in the record and in listings
        issued = await server.services.keys.issue("query-only", ("query",))
        masked = {"Authorization": f"Bearer {issued.token}"}
        async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=masked) as r:
            shown = await r.text()
        async with http.get(f"{server.base_url}/api/v1/inspections", headers=masked) as r:
            shown += await r.text()
        assert ID_NUMBER not in shown and PHONE not in shown and "****" in shown
    return created["id"], str(data)


async def test_no_personal_numbers_in_clear_and_backup_restore_export(tmp_path, caplog) -> None:
    inspection_id, data = await run_session(tmp_path, caplog)
    # nothing stored in clear: records, evidence, spool, keys
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert ID_NUMBER.encode() not in content and PHONE.encode() not in content, path
    # nor in the logs
    assert "careless log line" in caplog.text
    assert ID_NUMBER not in caplog.text and PHONE not in caplog.text

    env = clean_env()
    backup_file = tmp_path / "takan-backup.tar.gz"
    made = subprocess.run(TAKAN + ["backup", "--data-dir", data, str(backup_file)], env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "%" in made.stderr  # progress was shown
    shutil.rmtree(tmp_path / "data" / "objects")  # wipe the store (keys stay: they are backed up separately)
    restored = subprocess.run(TAKAN + ["restore", "--data-dir", data, str(backup_file)], env=env, capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"OK     {inspection_id}" in restored.stdout
    verified = subprocess.run(TAKAN + ["verify", "--data-dir", data, inspection_id], env=env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout

    package = tmp_path / "package.zip"
    exported = subprocess.run(TAKAN + ["export", "--data-dir", data, inspection_id, str(package), "--authority", "德州市行政审批服务局"],
                              env=env, capture_output=True, text=True, timeout=180)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        assert any(n.endswith("manifest.json") for n in names) and "record.html" in names and "metadata.json" in names
        record = archive.read("record.html").decode()
        assert ID_NUMBER not in record and PHONE not in record
    # a corrupted backup is refused and names the object
    raw = bytearray(backup_file.read_bytes())
    broken = tmp_path / "broken.tar"
    import gzip
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bytes(raw)))) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(broken, "w") as tar:
        for member, content in members:
            if content is not None and member.name.endswith(".webm"):
                content = content[:-1] + bytes([content[-1] ^ 1])
            tar.addfile(member, io.BytesIO(content) if content is not None else None)
    refused = subprocess.run(TAKAN + ["restore", "--data-dir", str(tmp_path / "other"), str(broken)], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and ".webm" in refused.stderr and "Traceback" not in refused.stderr
