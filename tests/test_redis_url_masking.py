"""Every credential a Redis URL can carry (userinfo, `?password=`, `username=`: redis-py reads
them all) is masked wherever the location is shown: warnings, errors, `cache stats`, doctor."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aicli.scrub import url_secrets, without_credentials

SECRET = "Q9secretQ"
USER = "bobTheUser"

MASKED = [
    (f"redis://127.0.0.1:1/0?password={SECRET}", "redis://127.0.0.1:1/0?password=***"),
    (
        f"redis://h/0?username={USER}&db=1&PASSWORD={SECRET}",
        "redis://h/0?username=***&db=1&PASSWORD=***",
    ),
    (f"redis://{USER}:{SECRET}@h:6379/0", "redis://***@h:6379/0"),
    (f"rediss://:{SECRET}@[::1]:6380/0", "rediss://***@[::1]:6380/0"),
    (f"unix:///tmp/r.sock?password={SECRET}&db=0", "unix:///tmp/r.sock?password=***&db=0"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
]


@pytest.mark.parametrize(("url", "shown"), MASKED)
def test_every_credential_of_a_url_is_masked(url: str, shown: str) -> None:
    assert without_credentials(url) == shown
    if SECRET in url:
        assert SECRET in url_secrets(url)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://127.0.0.1:1/0?password={SECRET}&username={USER}",
        f"redis://{USER}:{SECRET}@127.0.0.1:1/0",
    ],
)
def test_a_redis_password_is_never_shown(run_aicli: Any, make_config: Any, url: str) -> None:
    make_config()
    env = {"AICLI_CACHE_BACKEND": "redis", "AICLI_REDIS_URL": url}
    runs = {
        "generate": run_aicli("generate", "-t", "echo", "hi", env=env),
        "stats": run_aicli("cache", "stats", "--json", env=env),
        "doctor": run_aicli("doctor", env=env),
        "doctor --json": run_aicli("doctor", "--json", env=env),
    }
    assert runs["generate"].exit_code == 0 and runs["generate"].stdout == "hi\n"
    assert "carrying on without the cache" in runs["generate"].stderr
    assert runs["stats"].exit_code == 3, runs["stats"]
    assert "127.0.0.1:1" in runs["doctor"].output
    for name, done in runs.items():
        assert SECRET not in done.output, (name, done)
        if "username=" in url:
            assert USER not in done.output, (name, done)


def test_cache_stats_location_masks_a_query_password(
    run_aicli: Any, make_config: Any, redis_server: Any
) -> None:
    make_config()
    url = f"{redis_server.url}?username=default&password={SECRET}"
    done = run_aicli(
        "cache", "stats", "--json", env={"AICLI_CACHE_BACKEND": "redis", "AICLI_REDIS_URL": url}
    )
    assert SECRET not in done.output, done
    if done.exit_code == 0:  # a server without a password may accept or refuse the AUTH
        assert json.loads(done.stdout)["location"].endswith("password=***")


def test_a_query_password_in_the_config_file_is_refused(run_aicli: Any, make_config: Any) -> None:
    make_config(cache={"backend": "redis", "url": f"redis://127.0.0.1:1/0?password={SECRET}"})
    done = run_aicli("generate", "-t", "echo", "hi")
    assert done.exit_code == 2, done
    assert "passwords must not be written in config files" in done.stderr
    assert SECRET not in done.output
