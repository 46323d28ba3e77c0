"""
The provider-neutral parts of checking a push: the error that answers it, the timestamp window,
the replay cache, and an RSA-SHA256 signature check.

Decisions are pure (`in_window`, `parse_timestamp`); `ReplayCache` keeps only what it must
(a bounded map of recently seen signatures), so a flood cannot grow it.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import ShiptrackError
from ..models import TrackingInfo


class PushRejectedError(ShiptrackError):
    """A push refused before it reached the store: `http_status` answers it, `outcome` counts it."""

    def __init__(self, http_status: int, code: str, message: str, *, outcome: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.outcome = outcome or code


def missing_headers(names: list[str]) -> PushRejectedError:
    """No signature headers: 404, as ShipEngine's docs suggest, so a scanner learns nothing."""
    return PushRejectedError(404, "not_found", f"missing header(s): {', '.join(names)}", outcome="missing_headers")


@dataclass(frozen=True)
class PushedUpdate:
    """One parcel's answer in a push, in the poll answer's type: the receiver hands it to the sync writer."""

    carrier_code: str
    tracking_number: str
    info: TrackingInfo


@dataclass(frozen=True)
class VerifiedPush:
    """A push whose signature holds; `replay_key` names it for the replay cache (None: no replay check)."""

    replay_key: str | None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively (HTTP/2 and proxies lowercase them; some SDKs do not)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def parse_timestamp(text: str) -> datetime:
    """A push timestamp: ISO-8601 (what ShipEngine sends) or Unix seconds; ValueError otherwise."""
    text = text.strip()
    if not text or len(text) > 40:
        raise ValueError("empty or too long")
    if text.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(text), UTC)
    at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith(("Z", "z")) else text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def in_window(at: datetime, now: datetime, tolerance_s: float) -> bool:
    """Is a signed timestamp within ±tolerance of now? (ShipEngine warns it may be slightly in the future.)"""
    return abs((now - at).total_seconds()) <= tolerance_s


def verify_rsa_sha256(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 over *message*; the signature base64 (standard or URL-safe)."""
    text = signature_b64.strip()
    try:
        padded = text + "=" * (-len(text) % 4)
        signature = base64.urlsafe_b64decode(padded) if ("-" in text or "_" in text) else base64.b64decode(padded)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


class ReplayCache:
    """Signatures seen in the last `ttl_s` (the timestamp window): a second delivery of one is a replay."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, datetime] = OrderedDict()

    def seen(self, key: str, now: datetime) -> bool:
        self._expire(now)
        return key in self._seen

    def add(self, key: str, now: datetime) -> None:
        self._seen[key] = now + timedelta(seconds=self.ttl_s)
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def _expire(self, now: datetime) -> None:
        while self._seen:
            key, until = next(iter(self._seen.items()))
            if until > now:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
