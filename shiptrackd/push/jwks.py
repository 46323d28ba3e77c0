"""
A provider's signing keys (a JWKS document), cached, refetched when a push names a key we lack.

Rotation is handled by refetching on an unknown `kid`, at most once a minute, so a flood of
forged key ids cannot turn into a flood of fetches. A fetch that fails is not evidence of
forgery: the push is answered 503 (the provider retries later), never accepted unverified.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from loguru import logger

from .verify import PushRejectedError

REFETCH_EVERY_S = 60.0  # an unknown kid refetches the set at most this often
RETRY_FAILED_AFTER_S = 1.0  # after a failed fetch, the next push may try again this soon
MAX_JWKS_BYTES = 256 * 1024


class JwksCache:
    """RSA public keys by `kid` from `url`; `key_for(kid)` fetches when needed and allowed."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        refetch_every_s: float = REFETCH_EVERY_S,
        retry_failed_after_s: float = RETRY_FAILED_AFTER_S,
    ) -> None:
        self.url = url
        self._client = client
        self._owns_client = client is None
        self._monotonic = monotonic
        self.refetch_every_s = refetch_every_s
        self.retry_failed_after_s = retry_failed_after_s
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self.fetches = 0
        self.last_error = ""
        self._fetched_at: float | None = None  # the last fetch attempt, successful or not
        self._failed = False
        self._lock = anyio.Lock()

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()

    async def key_for(self, kid: str) -> rsa.RSAPublicKey:
        """The key named *kid*; PushRejectedError 401 if the provider does not publish it, 503 if we cannot tell."""
        key = self.keys.get(kid)
        if key is not None:
            return key
        async with self._lock:  # concurrent pushes with a new kid share one fetch
            key = self.keys.get(kid)
            if key is None and self._may_fetch():
                await self._fetch()
                key = self.keys.get(kid)
        if key is not None:
            return key
        if self._failed:
            raise PushRejectedError(
                503,
                "keys_unavailable",
                f"the signing keys at {self.url} cannot be fetched: retry later",
                outcome="jwks_unavailable",
            )
        raise PushRejectedError(401, "unknown_key", f"no signing key {kid[:64]!r} is published", outcome="unknown_key")

    def _may_fetch(self) -> bool:
        if self._fetched_at is None:
            return True
        wait = self.retry_failed_after_s if self._failed else self.refetch_every_s
        return self._monotonic() - self._fetched_at >= wait

    async def _fetch(self) -> None:
        self._fetched_at = self._monotonic()
        self.fetches += 1
        try:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
            response = await self._client.get(self.url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError("larger than 256 KiB")
            keys = parse_jwks(json.loads(response.content))
        except (httpx.HTTPError, ValueError, UnicodeDecodeError) as exc:
            self._failed = True
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            logger.bind(loop="push").warning("cannot fetch the signing keys from {}: {}", self.url, self.last_error)
            return
        self._failed = False
        self.last_error = ""
        if keys.keys() != self.keys.keys():
            logger.bind(loop="push").info("signing keys from {}: {}", self.url, ", ".join(sorted(keys)) or "none")
        self.keys = keys


def parse_jwks(document: Any) -> dict[str, rsa.RSAPublicKey]:
    """The RSA keys of a JWKS (`{"keys": [{"kty": "RSA", "kid", "n", "e"}, ...]}`); other key types are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS: expected {"keys": [...]}')
    keys: dict[str, rsa.RSAPublicKey] = {}
    for item in document["keys"]:
        if not isinstance(item, dict) or item.get("kty") != "RSA":
            continue  # EC keys may be published beside the RSA ones
        kid, n, e = item.get("kid"), item.get("n"), item.get("e")
        if not (isinstance(kid, str) and isinstance(n, str) and isinstance(e, str)):
            continue
        try:
            numbers = rsa.RSAPublicNumbers(_b64url_int(e), _b64url_int(n))
            keys[kid] = numbers.public_key()
        except ValueError:
            continue
    return keys


def _b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def jwk_of(key: rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    """A public key as a JWK (what the sandbox publishes, and tests build)."""
    numbers = key.public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(numbers.n), "e": b64(numbers.e)}
