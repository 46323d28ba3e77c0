"""
The push dialect of an interface provider (EasyPost, AfterShip, 17TRACK: providers/base.py), as the receiver takes it.

The provider checks its own documented signature (`verify_push`) and reads its own body
(`parse_push`); this adapter only translates: a forged or unsigned push is the same 401
`bad_signature` ShipEngine's gets, a key set that cannot be fetched 503, a body of the wrong
shape 400. The replay key is the event id the provider sends (EasyPost's `evt_…`, AfterShip's
`event_id`), else a digest of the signature headers and body. The provider is looked up at each
push, so a reload that swaps the account's client (a new webhook secret) is followed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping

from ..errors import PushRejectedError as ProviderPushRejected
from ..errors import TransientProviderError
from ..providers.base import Provider
from .verify import PushedUpdate, PushRejectedError, VerifiedPush

# Header values folded into the fallback replay key: whatever carries a provider's signature.
_SIGNATURE_HINTS = ("sign", "hmac", "signature")


class InterfacePush:
    """Wraps an interface provider (looked up by `current`) as a receiver PushProvider named `name`."""

    def __init__(self, name: str, current: Callable[[], Provider]) -> None:
        self.name = name
        self._current = current

    async def verify_push(self, headers: Mapping[str, str], raw_body: bytes) -> VerifiedPush:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            await self._current().verify_push(lowered, raw_body)
        except ProviderPushRejected as exc:
            raise PushRejectedError(401, "bad_signature", exc.message[:300], outcome="bad_signature") from None
        except TransientProviderError as exc:
            raise PushRejectedError(
                503, "keys_unavailable", f"cannot check the signature now: retry ({exc.message[:200]})"
            ) from None
        return VerifiedPush(replay_key=f"{self.name}:{_event_id(raw_body) or _digest(lowered, raw_body)}")

    def parse_push(self, raw_body: bytes) -> list[PushedUpdate]:
        try:
            updates = self._current().parse_push(raw_body)
        except ProviderPushRejected as exc:
            raise PushRejectedError(400, "malformed", exc.message[:300], outcome="malformed") from None
        return [PushedUpdate(u.carrier_code, u.tracking_number, u.info) for u in updates if u.info is not None]


def _event_id(raw_body: bytes) -> str:
    """The event id a verified body carries at its top level (`id`, `event_id`), or ""."""
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(payload, dict):
        return ""
    for key in ("event_id", "id"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _digest(headers: Mapping[str, str], raw_body: bytes) -> str:
    signed = sorted((k, v) for k, v in headers.items() if any(h in k for h in _SIGNATURE_HINTS))
    digest = hashlib.sha256(repr(signed).encode())
    digest.update(raw_body)
    return digest.hexdigest()


def interface_pushes(
    accounts: Mapping[str, Callable[[], Provider]], kinds: Mapping[str, str]
) -> dict[str, InterfacePush]:
    """`/hooks/<account name>` for each account, and `/hooks/<kind>` too where one account alone is of that kind."""
    pushes = {name: InterfacePush(name, current) for name, current in accounts.items()}
    for kind in set(kinds.values()):
        named = [name for name, k in kinds.items() if k == kind]
        if len(named) == 1 and kind not in pushes:
            pushes[kind] = pushes[named[0]]
    return pushes
