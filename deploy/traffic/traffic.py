"""Gentle, realistic HTTP traffic for the demo nginx of docker-compose.yml: runs until stopped.

Each request is drawn from a weighted mix of pages, assets, API calls, redirects, 404s from scanners and
server errors, with the methods, user agents, referers and visitor addresses of real traffic. Visitors are
told apart by X-Forwarded-For (nginx trusts it from Docker's networks), so nginx logs many clients.

The rate is bounded: TRAFFIC_RATE requests per second on average (default 3, at most 20), one at a time.
Standard library only, so it runs in the official python image as it is.

    TRAFFIC_TARGET  base URL of nginx (default http://nginx)
    TRAFFIC_RATE    average requests per second (default 3)
    TRAFFIC_SEED    random seed, for a reproducible sequence (default: none)
"""

from __future__ import annotations

import os
import random
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from types import FrameType

MAX_RATE = 20.0
TIMEOUT = 5.0

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)
BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
)
TOOLS = ("curl/8.11.0", "python-requests/2.32.3", "Go-http-client/1.1")
REFERERS = (
    "-",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://news.example.org/best-kettles",
)


@dataclass(frozen=True)
class Call:
    """One kind of request: its method, path, the status the demo nginx answers, its weight in the mix,
    and who sends it."""

    method: str
    path: str
    expect: int
    weight: int
    agents: tuple[str, ...] = BROWSERS
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


MIX: tuple[Call, ...] = (
    # Pages and their assets (200, 304 for revalidated assets, 405 for a POST to a page).
    Call("GET", "/", 200, 30),
    Call("GET", "/index.html", 200, 5),
    Call("GET", "/products.html", 200, 20),
    Call("GET", "/products.html?utm_source=newsletter&utm_medium=email", 200, 6),
    Call("GET", "/about.html", 200, 8),
    Call("GET", "/contact.html", 200, 5),
    Call("GET", "/static/style.css", 200, 25),
    Call("GET", "/static/app.js", 200, 20),
    Call("GET", "/static/style.css", 304, 8, headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}),
    Call("HEAD", "/", 200, 3, TOOLS),
    Call("POST", "/contact.html", 405, 2, body=b"name=Ann&message=Hello"),
    Call("GET", "/robots.txt", 200, 3, BOTS),
    Call("GET", "/products.html", 200, 4, BOTS),
    # The API (200, 201, 401, 404, 500, 503).
    Call("GET", "/api/products", 200, 20),
    Call("GET", "/api/products/2", 200, 8),
    Call("GET", "/api/health", 200, 6, TOOLS),
    Call("GET", "/api/orders", 200, 4),
    Call("POST", "/api/orders", 201, 5, body=b'{"product":2,"quantity":1}'),
    Call("POST", "/api/login", 401, 3, body=b'{"user":"ann","password":"wrong"}'),
    Call("GET", "/api/search?q=teapot", 500, 3),
    Call("POST", "/api/checkout", 503, 2, body=b'{"order":1042}'),
    Call("GET", "/api/products/99", 404, 2),
    Call("DELETE", "/api/orders/1041", 404, 1, TOOLS),
    # Redirects, forbidden, missing pages and scanners (301, 302, 403, 404).
    Call("GET", "/home", 301, 3),
    Call("GET", "/shop", 302, 3),
    Call("GET", "/admin/", 403, 1),
    Call("GET", "/favicon.ico", 404, 10),
    Call("GET", "/old-catalogue.html", 404, 2),
    Call("GET", "/wp-login.php", 404, 2, TOOLS),
    Call("GET", "/.env", 404, 1, TOOLS),
    Call("GET", "/cgi-bin/luci", 404, 1, TOOLS),
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Log a redirect as the one request it is; a browser's follow-up is another draw from the mix."""

    def redirect_request(self, *_: object, **__: object) -> None:
        return None


def visitor(rng: random.Random) -> str:
    """A client address from the documentation ranges (RFC 5737): a few hundred distinct visitors."""
    return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 120)}"


def draw(rng: random.Random) -> tuple[Call, dict[str, str]]:
    """The next request and its headers."""
    call = rng.choices(MIX, weights=[c.weight for c in MIX])[0]
    headers = {
        "User-Agent": rng.choice(call.agents),
        "X-Forwarded-For": visitor(rng),
        **call.headers,
    }
    referer = rng.choice(REFERERS)
    if referer != "-":
        headers["Referer"] = referer
    if call.body is not None:
        headers["Content-Type"] = "application/json" if call.body.startswith(b"{") else "text/plain"
    return call, headers


def send(opener: urllib.request.OpenerDirector, target: str, call: Call, headers: dict[str, str]) -> int:
    """Send one request; its status, or 0 when nginx cannot be reached."""
    url = target + call.path  # an http:// URL from TRAFFIC_TARGET, never user input
    request = urllib.request.Request(url, data=call.body, headers=headers, method=call.method)  # noqa: S310
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx and 5xx: what we want in the log
        error.read()
        return int(error.code)
    except OSError:
        return 0


def main() -> None:
    """Send requests until SIGTERM or SIGINT."""
    target = os.environ.get("TRAFFIC_TARGET", "http://nginx").rstrip("/")
    rate = min(max(float(os.environ.get("TRAFFIC_RATE", "3")), 0.1), MAX_RATE)
    rng = random.Random(os.environ.get("TRAFFIC_SEED"))  # noqa: S311 - not cryptography
    opener = urllib.request.build_opener(_NoRedirect)

    def stop(signum: int, _: FrameType | None) -> None:
        raise SystemExit(0)  # at once, even in the middle of a pause: nothing is left half done

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"traffic: about {rate:g} requests/s to {target}", flush=True)
    sent = failed = 0
    try:
        while True:
            started = time.monotonic()
            status = send(opener, target, *draw(rng))
            sent += 1
            if status == 0:
                failed += 1
                if failed in (1, 10) or failed % 100 == 0:
                    print(f"traffic: {target} unreachable ({failed} failures so far)", flush=True)
            if sent % 1000 == 0:
                print(f"traffic: {sent} requests sent", flush=True)
            # Poisson arrivals at `rate`, never faster than one request per 1/MAX_RATE s.
            pause = max(rng.expovariate(rate), 1 / MAX_RATE) - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)
    finally:
        print(f"traffic: stopped after {sent} requests", flush=True)


if __name__ == "__main__":
    main()
