"""
The ShiptrackError family: each error says what the caller should do next.

`code` becomes the control API's `error.code`; `http_status` is the status the
API answers with. The CLI and the TUI print `str(error)` as it is.
"""

from __future__ import annotations


class ShiptrackError(Exception):
    """Base of every error this project raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(ShiptrackError):
    """The configuration is invalid; the daemon exits 78, a reload keeps the old one."""

    code = "config_invalid"
    http_status = 400


class InvalidRequestError(ShiptrackError):
    """The caller sent something we cannot act on (bad JSON, bad field, bad id)."""

    code = "invalid_request"
    http_status = 400


class NotFoundError(ShiptrackError):
    """The thing asked for does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(ShiptrackError):
    """The request clashes with the current state (a duplicate, a run already going)."""

    code = "conflict"
    http_status = 409


class StoreError(ShiptrackError):
    """The store cannot be opened or written (newer schema, corrupt file); the daemon itself is up.

    Not 503: clients read 503 as "daemon unavailable" (exit 69), which would hide the real cause.
    """

    code = "store_error"
    http_status = 500


class StoreFullError(StoreError):
    """SQLite answered SQLITE_FULL: the disk (or the file's page limit) is full; free space, then retry."""

    code = "store_full"
    http_status = 507  # Insufficient Storage


class StoreLockedError(StoreError):
    """Another process held the store's write lock past busy_timeout; find it (fuser), then retry."""

    code = "store_locked"
    http_status = 500


class DaemonUnavailableError(ShiptrackError):
    """Nothing answers on the control socket; clients exit 69."""

    code = "daemon_unavailable"
    http_status = 503


# --- provider errors: each kind tells the sync engine what to do -----------------


class ProviderError(ShiptrackError):
    """A tracking API call failed; subclasses say how the sync engine reacts."""

    code = "provider_error"
    http_status = 502
    kind = "provider"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientProviderError(ProviderError):
    """A 5xx, a timeout or a dropped connection: retry with backoff."""

    kind = "transient"


class ProviderUnreachableError(TransientProviderError):
    """No connection could be made at all; enough of these in a row open the circuit."""

    kind = "unreachable"


class RateLimitedError(TransientProviderError):
    """429: wait `retry_after_s` before any request to this provider."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, status: int | None = 429, endpoint: str = "") -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s
        # The endpoint whose own limit was hit, for a provider that limits each endpoint apart (AfterShip;
        # a name from its Limits.endpoints): only that endpoint waits. "": the account's limit, all wait.
        self.endpoint = endpoint


class ProviderAuthError(ProviderError):
    """401/403: the key is bad; stop the run, retrying only burns the account."""

    kind = "unauthorized"


class ShipmentNotFoundError(ProviderError):
    """404 or an unknown tracking number: mark this shipment, not the run."""

    kind = "not_found"


class NotRegisteredError(ShipmentNotFoundError):
    """The provider no longer knows a number we registered with it (17TRACK -18019902): register it again.

    The engine forgets the shipment's provider_ref, so its next attempt registers it first.
    """


class InvalidResponseError(ProviderError):
    """The API answered something that does not match its schema; names the field."""

    kind = "invalid_response"


class PermanentProviderError(ProviderError):
    """Any other 4xx (a validation or carrier error): retrying will not help."""

    kind = "rejected"


class QuotaExhaustedError(PermanentProviderError):
    """The account's quota (17TRACK's registrations) is spent: no new registrations until it refills.

    Numbers registered before keep being polled; the health check goes critical naming the provider.
    """

    kind = "quota_exhausted"


class PushRejectedError(ShiptrackError):
    """A webhook push that fails its signature or shape check: answered 4xx, never stored."""

    code = "push_rejected"
    http_status = 401
