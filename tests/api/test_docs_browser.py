"""The OpenAPI pages render with no network: ``/docs`` (Swagger UI) and ``/redoc`` loaded in headless
Chromium, with every host but the loopback made unresolvable, must show the API's operations.

Chromium is Debian's ``chromium`` package; ``make test`` installs it (``scripts/ensure-services.sh``) where
it is missing. Without it this test fails loudly: it is never skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed for the /docs test and was not found on PATH "
                f"(looked for {', '.join(BROWSERS)}): run `make services` or `apt-get install -y chromium`",
                pytrace=False)


def _rendered(url: str, profile) -> str:
    """The DOM after the page's scripts ran, with every host but 127.0.0.1 unresolvable (offline)."""
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-extensions", "--disable-background-networking",
           f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--virtual-time-budget=30000", "--dump-dom", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def docs_server(live_server_factory):
    return live_server_factory(start_executor=False)


def test_docs_and_redoc_render_offline(docs_server, tmp_path):
    with docs_server.client() as c:
        page = c.get("/docs").text
        # every script and stylesheet the page loads is this server's own
        assert not re.findall(r"""(?:src|href)=["']https?://""", page), page
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
            asset = c.get(f"/docs/assets/{name}")
            assert asset.status_code == 200 and len(asset.content) > 1000, name
        assert c.get("/docs/assets/core.py").status_code == 404
        assert c.get("/docs/assets/..%2Fcore.py").status_code == 404
        operations = [op.get("summary") for path in c.get("/openapi.json").json()["paths"].values()
                      for op in path.values()]
    swagger = _rendered(f"{docs_server.url}/docs", tmp_path / "profile-docs")
    assert "opblock-summary" in swagger, swagger[:3000]
    shown = set(re.findall(r'class="opblock-summary-path"[^>]*data-path="([^"]+)"', swagger))
    assert {"/v1/datasets", "/v1/rankings", "/v1/backbones", "/v1/metrics"} <= shown, sorted(shown)
    assert "List built-in and registered backbones" in swagger
    redoc = _rendered(f"{docs_server.url}/redoc", tmp_path / "profile-redoc")
    present = [s for s in operations if s and s in redoc]
    assert len(present) >= len(operations) - 1, sorted(set(operations) - set(present))
