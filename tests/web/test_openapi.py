"""The served OpenAPI document matches the code: the route table, and real responses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from openapi_spec_validator import validate

from takan.app import build_app
from takan.config import load_config
from testkit.server import API_KEY, free_port
from web.openapi import document
from web.routes import resource_template

METHODS = {"get", "post", "put", "patch", "delete"}


def served_routes(tmp_path) -> set[tuple[str, str]]:
    app = build_app(load_config({"data_dir": str(tmp_path)}, env={}))
    routes = set()
    for resource in app.router.resources():
        path = resource_template(resource)
        if not path or not path.startswith("/api/v1"):
            continue
        for route in resource:
            if route.method.lower() in METHODS:
                routes.add((route.method.lower(), path))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, ops in document()["paths"].items() for method in ops if method in METHODS}


def test_every_api_route_is_documented_and_nothing_else(tmp_path) -> None:
    served, documented = served_routes(tmp_path), documented_routes()
    assert served - documented == set(), f"routes missing from the OpenAPI document: {sorted(served - documented)}"
    assert documented - served == set(), f"documented routes the app does not serve: {sorted(documented - served)}"


def test_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("openapi")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")}, "TAKAN_API_KEY": API_KEY, "TAKAN_LOG_LEVEL": "WARNING",
           # generated callback URLs name random hosts: keep the webhooks on this machine
           "TAKAN_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost", "TAKAN_API_RATE_PER_MINUTE": "1000000"}
    process = subprocess.Popen([sys.executable, "-m", "takan", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)], env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(20)


def test_schemathesis_finds_no_server_error_or_nonconforming_response(live_server, tmp_path) -> None:
    """schemathesis (its CLI: its pytest plugin does not run on this pytest) against the server."""
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run", live_server + "/api/v1/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "-H", f"Authorization: Bearer {API_KEY}",
            "--max-examples", "30",
            "--generation-deterministic",
            "--phases", "examples,coverage,fuzzing",
        ],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
