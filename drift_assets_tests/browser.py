"""Headless Debian ``chromium`` driven by Playwright's Python package (never ``playwright install``),
shared by the browser tests. Skips, naming the reason, where Chromium or Playwright is absent
(``make system-deps`` installs Chromium)."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_or_skip():
    """Playwright's ``sync_playwright``, or a skip saying what is missing."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Chromium not found at {CHROMIUM}; enable with: sudo make system-deps (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright's Python package is not installed (pip install -e '.[dev]')")
    return sync_playwright


def dismiss_newsletter(page) -> None:
    """A fresh instance shows a "Join the Dagster community" modal once; skip it if it comes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # no modal on this instance: nothing to dismiss
        page.get_by_role("button", name="Skip").click(timeout=10_000)
