"""A real browser for the tests that must see a page as a user does: Debian's headless
Chromium, driven from the command line (no Selenium or Playwright, which would download a
browser of their own). `.ci/run` installs it; where it is missing the tests that need it
skip, saying why.

Chromium's own network log (`--log-net-log`) records every request the page made, so "the
page loads nothing from the network" is checked by the browser, not by reading our HTML."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "Page", "needs_chromium", "open_page", "screenshot"]

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
    None,
)

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (`apt-get install chromium`; .ci/run does it)",
)

# Headless, as root in a container, with no GPU: --no-sandbox and --disable-gpu are needed
# there. Nothing of the user's profile is read: a fresh one per call.
_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    "--allow-file-access-from-files",
    # Offline, as the machine a user opens the page on may be: any host but this one fails
    # to resolve. A request the page makes is still in the net log, so a test can see it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


@dataclass
class Page:
    """What the browser made of a page: the DOM after its scripts ran, and every URL it
    requested (the page's own included)."""

    dom: str
    requested: list[str]

    def remote_requests(self) -> list[str]:
        """Requests that would leave the machine: anything but file:, data:, blob:,
        chrome internals and the local host."""
        local = ("file:", "data:", "blob:", "chrome:", "chrome-extension:", "about:")
        hosts = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost")
        return [u for u in self.requested if not u.startswith(local + hosts)]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "no Chromium: mark the test with @needs_chromium"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _requested_urls(net_log: Path) -> list[str]:
    """The URLs the page asked for: the net log's URL_REQUEST_START_JOB events that have an
    initiator. Chromium's own background traffic (update checks, dictionaries) is logged
    with the initiator "not an origin" and is not the page's doing."""
    text = net_log.read_text(errors="replace") if net_log.exists() else ""
    if not text:
        return []
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # Chromium stopped mid-write: close the events array
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls: list[str] = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") != start_job or params.get("initiator") == "not an origin":
            continue
        if params.get("url") and params["url"] not in urls:
            urls.append(params["url"])
    return urls


def open_page(
    url: str, *, wait_ms: int = 5000, timeout: float = 90, size: tuple[int, int] = (1400, 1000)
) -> Page:
    """Load `url` (a file path or http URL) headless in a `size` window, let its scripts run
    for `wait_ms` of virtual time, and return the resulting DOM and the requests made. The
    size matters to pages that render only what is in view (TensorBoard's cards)."""
    if "://" not in url:
        url = Path(url).resolve().as_uri()
    with tempfile.TemporaryDirectory() as tmp:
        net_log = Path(tmp) / "net.json"
        done = _run(
            [
                f"--window-size={size[0]},{size[1]}",
                f"--log-net-log={net_log}",
                f"--virtual-time-budget={wait_ms}",
                "--dump-dom",
                url,
            ],
            timeout,
        )
        return Page(dom=done.stdout, requested=_requested_urls(net_log))


def screenshot(
    url: str,
    path: Path,
    *,
    size: tuple[int, int] = (1400, 1000),
    wait_ms: int = 8000,
    timeout: float = 120,
) -> Path:
    """Save what a user's first screen of `url` looks like as a PNG at `path`."""
    if "://" not in url:
        url = Path(url).resolve().as_uri()
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _run(
        [
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={path}",
            url,
        ],
        timeout,
    )
    if not path.exists():
        raise RuntimeError(f"Chromium wrote no screenshot of {url}:\n{done.stderr[-2000:]}")
    return path
