"""HTTP(S) tracker client: the aiohttp shell around :mod:`ccbt_engine.tracker.protocol`.

What it adds to the sans-I/O core is exactly the part a hostile tracker attacks:

* the body is streamed and abandoned past :data:`~ccbt_engine.tracker.protocol.MAX_REPLY_SIZE`
  (a tracker answering with 100 MB, or forever, costs us 2 MiB, not 100 MB);
* compressed bodies are inflated with the same bound (a gzip bomb is no way around it);
* redirects are followed at most :data:`MAX_REDIRECTS` times (a 302 loop ends);
* the whole request, redirects and body included, has one deadline;
* every failure (DNS, refused, TLS, HTTP status, timeout, garbage) becomes a
  :class:`~ccbt_engine.tracker.protocol.TrackerError` with a message a user can act on.
"""

from __future__ import annotations

import asyncio
import zlib

import aiohttp
from yarl import URL

from ccbt_engine.tracker.http_tls import TlsOption, tls_option
from ccbt_engine.tracker.protocol import (
    MAX_REPLY_SIZE,
    AnnounceReply,
    AnnounceRequest,
    ScrapeResult,
    TrackerError,
    build_announce_url,
    build_scrape_url,
    parse_announce_reply,
    parse_scrape_reply,
    scrape_url_for,
)

__all__ = ["DEFAULT_TIMEOUT", "MAX_REDIRECTS", "HttpTracker", "fetch_bounded"]

MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 30.0
_CHUNK = 64 * 1024
_USER_AGENT = "ccBitTorrent/0.1"


class _Inflater:
    """Bounded gzip/deflate decoding: never produces more than ``limit + 1`` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        # 47 = auto-detect zlib or gzip header; raw deflate (-15) is what some servers send
        # as "deflate" although the RFC says zlib.
        self._wbits = 47 if encoding == "gzip" else 15
        self._obj = zlib.decompressobj(self._wbits)
        self._limit = limit
        self._raw_fallback = encoding == "deflate"
        self.size = 0

    def feed(self, chunk: bytes) -> bytes:
        try:
            out = self._obj.decompress(chunk, self._limit + 1 - self.size)
        except zlib.error:
            if not self._raw_fallback or self.size:
                raise TrackerError("reply body is not validly compressed") from None
            self._raw_fallback = False
            self._obj = zlib.decompressobj(-15)
            return self.feed(chunk)
        self._raw_fallback = False
        self.size += len(out)
        if self.size > self._limit or self._obj.unconsumed_tail:
            raise TrackerError(f"reply body exceeds {self._limit} bytes once decompressed")
        return out


async def fetch_bounded(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    limit: int = MAX_REPLY_SIZE,
    ssl: TlsOption | None = None,
) -> bytes:
    """GET ``url`` (already percent-encoded) and return at most ``limit`` bytes of body.

    ``ssl``: certificate verification for https (see :mod:`.http_tls`); None = the policy the
    session registered (``security.verify_tls``), else verify.
    Raises :class:`TrackerError` for every failure, including a body over ``limit``.
    """
    if ssl is None:
        ssl = tls_option(session)
    try:
        async with asyncio.timeout(timeout):
            async with session.get(
                URL(url, encoded=True),
                allow_redirects=True,
                # aiohttp counts the redirect that trips the limit: +1 lets MAX_REDIRECTS through.
                max_redirects=MAX_REDIRECTS + 1,
                auto_decompress=False,
                ssl=ssl,
                headers={"Accept-Encoding": "gzip, deflate", "User-Agent": _USER_AGENT},
            ) as resp:
                if resp.status != 200:
                    reason = (resp.reason or "").strip()
                    raise TrackerError(f"HTTP {resp.status} {reason}".rstrip())
                length = resp.content_length
                if length is not None and length > limit:
                    raise TrackerError(f"reply of {length} bytes exceeds {limit}")
                encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
                inflater = _Inflater(encoding, limit) if encoding in ("gzip", "deflate") else None
                if inflater is None and encoding not in ("identity", ""):
                    raise TrackerError(f"unsupported Content-Encoding {encoding!r}")
                body = bytearray()
                received = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise TrackerError(f"reply body exceeds {limit} bytes")
                    body += inflater.feed(chunk) if inflater is not None else chunk
                return bytes(body)
    except TrackerError:
        raise
    except TimeoutError:
        raise TrackerError(f"timed out after {timeout:g} s") from None
    except aiohttp.TooManyRedirects:
        raise TrackerError(f"more than {MAX_REDIRECTS} redirects") from None
    except aiohttp.InvalidURL as exc:
        raise TrackerError(f"invalid URL {exc}") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise TrackerError(
            f"untrusted TLS certificate ({exc.certificate_error}); "
            "security.verify_tls = false accepts it"
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise TrackerError(f"cannot connect: {exc.os_error.strerror or exc}") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise TrackerError(f"{type(exc).__name__}: {exc}") from None


class HttpTracker:
    """One HTTP(S) tracker URL. Stateless apart from the URL; the session is borrowed or owned.

    An owned session (none passed in) is created lazily and closed by :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._session = session
        self._owns_session = session is None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Redirects may leave the tracker's origin: do not carry cookies around.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            self._owns_session = True
        return self._session

    async def announce(self, req: AnnounceRequest) -> AnnounceReply:
        body = await fetch_bounded(
            self._get_session(), build_announce_url(self.url, req), timeout=self.timeout
        )
        return parse_announce_reply(body)

    @property
    def can_scrape(self) -> bool:
        return scrape_url_for(self.url) is not None

    async def scrape(self, info_hashes: list[bytes]) -> dict[bytes, ScrapeResult]:
        scrape_url = scrape_url_for(self.url)
        if scrape_url is None:
            raise TrackerError("tracker does not support scrape (URL has no /announce)")
        body = await fetch_bounded(
            self._get_session(), build_scrape_url(scrape_url, info_hashes), timeout=self.timeout
        )
        return parse_scrape_reply(body)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
