"""The built documentation site, checked in a real browser (Debian's Chromium, driven by
Playwright's Python package: no browser download).

The site is built with `mkdocs build --strict` into a temporary folder and served on
127.0.0.1 by the standard library. Every page loads with no console error, no failed
request and nothing asked of another host; every internal link (and its #anchor)
resolves; the search finds "journal" and "Celery"; a code block's copy button copies it.

Skipped only where Chromium or Playwright is missing, and then never under `CI=true`.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: the browser check must run)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(folder)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
        timeout=300,
    )
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        _missing("no `chromium` on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url[:-1])
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


def page_urls(site: Path, base_url: str) -> list[str]:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 25, [str(p) for p in pages]
    return [base_url + str(p.relative_to(site)).removesuffix("index.html") for p in pages]


def test_every_page_loads_clean_and_every_internal_link_resolves(
    context: Any, site: Path, base_url: str
) -> None:
    problems: list[str] = []
    page = context.new_page()
    current = {"url": ""}

    def outside(route: Any) -> None:  # nothing may be asked of another host
        problems.append(f"{current['url']}: a request to another host: {route.request.url}")
        route.abort()

    page.route(lambda url: not url.startswith(base_url), outside)
    page.on(
        "console",
        lambda m: m.type == "error" and problems.append(f"{current['url']}: console: {m.text}"),
    )
    page.on("pageerror", lambda e: problems.append(f"{current['url']}: page error: {e}"))
    # A request cut off by the next navigation (net::ERR_ABORTED: the favicon, the search
    # worker) counts only if that URL never loads on any page.
    failed: list[tuple[str, str, str]] = []
    loaded: set[str] = set()
    page.on("requestfailed", lambda r: failed.append((current["url"], r.url, r.failure or "")))
    page.on(
        "response",
        lambda r: (
            loaded.add(r.url)
            if r.status < 400
            else problems.append(f"{current['url']}: {r.status} {r.url}")
        ),
    )
    links: dict[str, str] = {}  # internal link -> a page it is on
    for url in page_urls(site, base_url):
        current["url"] = url
        response = page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        assert response is not None
        if response.status != 200:
            problems.append(f"{url}: answered {response.status}")
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for href in hrefs:
            if href.startswith(base_url):
                links.setdefault(href, url)
    assert len(links) >= 50
    ids: dict[str, set[str]] = {}
    for href, found_on in sorted(links.items()):
        target, fragment = urldefrag(href)
        if target not in ids:
            current["url"] = found_on
            response = page.goto(target, wait_until="load")
            if response is None or response.status != 200:
                problems.append(
                    f"{found_on}: link to {target} answers {response and response.status}"
                )
                ids[target] = set()
                continue
            ids[target] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        if fragment and fragment not in ids[target]:
            problems.append(f"{found_on}: link to {href}: no #{fragment} on that page")
    page.close()
    for on, url, failure in failed:
        if failure != "net::ERR_ABORTED" or url not in loaded:
            problems.append(f"{on}: failed request: {url} {failure}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("word", ["journal", "Celery"])
def test_the_search_finds(context: Any, base_url: str, word: str) -> None:
    page = context.new_page()
    page.goto(base_url, wait_until="networkidle")
    page.click("label.md-search__icon, .md-search__input")
    box = page.locator("input.md-search__input")
    box.fill("")
    box.press_sequentially(word, delay=50)
    items = page.locator(".md-search-result__item")
    items.first.wait_for(state="visible")
    texts = items.all_inner_texts()
    assert any(word.lower() in text.lower() for text in texts), texts
    first = page.locator(".md-search-result__item a").first.get_attribute("href")
    assert first is not None
    assert urlsplit(page.url).netloc in (urlsplit(first).netloc or urlsplit(page.url).netloc)
    page.close()


def test_a_code_block_copy_button_copies_the_block(context: Any, base_url: str) -> None:
    page = context.new_page()
    page.goto(base_url + "guide/getting-started/", wait_until="networkidle")
    block = page.locator("div.highlight", has_text="async with AsyncCodegen()").first
    code = block.locator("code").inner_text()
    assert "AsyncCodegen" in code
    block.hover()
    button = block.locator("button[data-md-type=copy]")
    button.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == code.strip()
    assert "Copied to clipboard" in page.locator(".md-dialog").inner_text()
    page.close()
