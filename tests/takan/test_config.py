"""Configuration of a node's own URL (several nodes, docs/nodes.md)."""

from __future__ import annotations

import pytest

from takan.config import ConfigError, load_config


def test_the_node_url_defaults_to_the_public_url() -> None:
    config = load_config({"public_url": "https://takan.example/"}, env={})
    assert config.node_base_url == config.base_url == "https://takan.example"


def test_the_node_url_is_its_own_setting() -> None:
    config = load_config({}, env={"TAKAN_PUBLIC_URL": "https://takan.example", "TAKAN_NODE_URL": "https://node-a.takan.example:8443/",
                                  "TAKAN_NODE_ID": "node-a"})
    assert config.node_base_url == "https://node-a.takan.example:8443"
    assert config.base_url == "https://takan.example" and config.node_id == "node-a"


def test_a_bad_node_url_is_named() -> None:
    with pytest.raises(ConfigError, match="TAKAN_NODE_URL"):
        load_config({}, env={"TAKAN_NODE_URL": "ftp://node-a"})
