"""`[integrations]` of the config: base URLs and Retry-After limits, from the file or from
`RUNEWORKER_INTEGRATIONS_<KEY>`, checked, and handed to the nodes as NodeSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from runeworker.config import load_config, to_node_settings
from runeworker.engine.registry import NodeSettings
from runeworker.errors import ConfigError
from runeworker.integrations.spec import BASE_URLS


def test_defaults_are_the_public_apis() -> None:
    cfg = load_config(env={})
    assert cfg.integrations.slack_base_url == "https://slack.com"
    assert {getattr(cfg.integrations, f"{s}_base_url") for s in BASE_URLS} == set(
        BASE_URLS.values()
    )
    settings = to_node_settings(cfg)
    assert settings.integrations_base_urls == {}  # only what differs from the public API
    assert (settings.integrations_retry_after_max, settings.integrations_retry_after_attempts) == (
        NodeSettings().integrations_retry_after_max,
        NodeSettings().integrations_retry_after_attempts,
    )


def test_environment_overrides_reach_the_nodes(tmp_path: Path) -> None:
    config = tmp_path / "runeworker.toml"
    config.write_text(
        '[integrations]\nslack_base_url = "https://file.example"\n'
        'jira_base_url = "http://127.0.0.1:9/gw"\nretry_after_max = 3.5\n'
    )
    env = {
        "RUNEWORKER_INTEGRATIONS_SLACK_BASE_URL": "http://127.0.0.1:8/slack",
        "RUNEWORKER_INTEGRATIONS_RETRY_AFTER_ATTEMPTS": "0",
    }
    settings = to_node_settings(load_config(config, env=env))
    assert settings.integrations_base_urls == {
        "slack": "http://127.0.0.1:8/slack",
        "jira": "http://127.0.0.1:9/gw",
    }
    assert settings.integrations_retry_after_max == 3.5
    assert settings.integrations_retry_after_attempts == 0


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"RUNEWORKER_INTEGRATIONS_GMAIL_BASE_URL": "ftp://x"},
            "RUNEWORKER_INTEGRATIONS_GMAIL_BASE_URL: expected a URL starting with http:// or "
            "https://, got 'ftp://x'",
        ),
        (
            {"RUNEWORKER_INTEGRATIONS_RETRY_AFTER_MAX": "-1"},
            "RUNEWORKER_INTEGRATIONS_RETRY_AFTER_MAX: expected a number >= 0, got '-1'",
        ),
        (
            {"RUNEWORKER_INTEGRATIONS_TEAMS_BASE_URL": "https://x"},
            "RUNEWORKER_INTEGRATIONS_TEAMS_BASE_URL: unknown key 'integrations.teams_base_url'",
        ),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert str(info.value).startswith(problem)
