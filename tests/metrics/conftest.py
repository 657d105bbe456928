"""Metrics tests run offline in a temporary $PIXELFOLDER_CACHE (shared by this package: the emoji zip and the
converted Inception weights are built once); the real ~/.cache is never touched."""
import pytest


@pytest.fixture(scope="package", autouse=True)
def metrics_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("metrics-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELFOLDER_CACHE", str(cache))
        mp.setenv("PIXELFOLDER_OFFLINE", "1")
        yield cache
