"""The cache tests' fixtures: `cache` runs a test on every backend (memory, disk, Redis),
`shared_cache` on those other processes can open too, `disk` on the disk cache alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aicli.cache import ResponseCache
from tests.cache.helpers import disk_cache, open_backend


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
async def disk(cache_dir: Path) -> AsyncIterator[ResponseCache]:
    c = disk_cache(cache_dir)
    yield c
    await c.aclose()


@pytest.fixture(params=["memory", "disk", "redis"])
async def cache(request: pytest.FixtureRequest, cache_dir: Path) -> AsyncIterator[ResponseCache]:
    """The same tests on each backend: the contract every backend keeps."""
    c = open_backend(request, cache_dir)
    yield c
    await c.aclose()


@pytest.fixture(params=["disk", "redis"])
async def shared_cache(
    request: pytest.FixtureRequest, cache_dir: Path
) -> AsyncIterator[ResponseCache]:
    """The backends other processes can open too."""
    c = open_backend(request, cache_dir)
    yield c
    await c.aclose()
