"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from example_project.demo_site import DemoSite, SiteOptions


@pytest.fixture
def demo_site() -> Iterator[Callable[..., DemoSite]]:
    """Factory that starts a :class:`DemoSite` on a free loopback port; every site is stopped after the test.

    ``demo_site(solve_every=3, captcha_status=403)`` takes :class:`SiteOptions` fields, or
    ``demo_site(SiteOptions(...))`` an options object.
    """
    started: list[DemoSite] = []

    def start(options: SiteOptions | None = None, **fields: Any) -> DemoSite:
        if options is not None and fields:
            raise TypeError("demo_site() takes a SiteOptions or SiteOptions fields, not both")
        site = DemoSite(options or SiteOptions(**fields)).start()
        started.append(site)
        return site

    yield start
    for site in started:
        site.stop()


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread: these models and batches are tiny, and on busy cores two threads spin against each other."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def servers():
    """Start hostile-test servers for the test, stop them after: ``servers(CaptchaSite(...))``."""
    started = []

    def start(server):
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()
