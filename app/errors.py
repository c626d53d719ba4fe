"""Domain errors. Raised by the services; turned into HTTP answers in one place (`app.problems`).

    ServiceError
    ├── Unauthorized               the caller's bearer secret is missing or wrong
    ├── ServiceLocked              no bearer secret is configured: the proxy stays closed
    ├── CredentialsUnavailable     a stored secret (SSM, Secrets Manager) cannot be read
    ├── Forbidden                  a caller key may not use this connector or this model
    ├── LimitExceeded              a caller is over its rate (`rate_limited`) or a quota
    │                              (`quota_exceeded`); carries `retry_after` (seconds)
    ├── StoreDown                  the store of keys and limits cannot be reached
    ├── NotOffered                 no hosted connector offers this (e.g. no plugin manifest)
    ├── InvalidParameters          a parameter failed validation before any upstream call
    └── UpstreamError              the upstream API did not give a usable answer
        ├── UpstreamNotFound       it answered 404 (unknown id)
        ├── UpstreamRateLimited    it answered 429; carries `retry_after` when it said
        ├── UpstreamRejectedKey    it answered 401/403: the configured key is wrong
        ├── UpstreamUnavailable    5xx, connection failure, or an answer that is not usable JSON
        └── UpstreamTimeout        no complete answer within the configured timeout

Nothing here knows about HTTP status codes, and no message ever contains a secret:
messages are written for the caller (a model), details for the operator go to the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CredentialsUnavailable",
    "Forbidden",
    "InvalidParameters",
    "LimitExceeded",
    "NotOffered",
    "ParameterProblem",
    "ServiceError",
    "ServiceLocked",
    "StoreDown",
    "Unauthorized",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamRateLimited",
    "UpstreamRejectedKey",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class ServiceError(Exception):
    """Base of every error this service reports to its callers."""

    code = "internal_error"
    message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class Unauthorized(ServiceError):
    code = "unauthorized"
    message = "Send 'Authorization: Bearer <secret>' with the secret configured for this service."


class ServiceLocked(ServiceError):
    code = "service_locked"
    message = "This service has no bearer secret configured, so its API is closed."


class NotOffered(ServiceError):
    code = "not_found"
    message = "This service offers nothing here. See /openapi.json."


class CredentialsUnavailable(ServiceError):
    code = "credentials_unavailable"
    message = "This service cannot read its credentials right now. Try again shortly."


class Forbidden(ServiceError):
    code = "forbidden"
    message = "This key may not do that."


class LimitExceeded(ServiceError):
    """Refused by the caller's limits. `code` is `rate_limited` (over the per-minute rate:
    retrying after `retry_after` seconds works) or `quota_exceeded` (a daily or monthly
    quota: retrying soon will not help, so clients are told not to)."""

    def __init__(self, code: str, message: str, retry_after: float) -> None:
        self.code = code
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message)

    @property
    def headers(self) -> dict[str, str]:
        """`Retry-After`, and `x-should-retry: false` on a quota (the OpenAI SDKs obey it)."""
        headers = {"Retry-After": str(self.retry_after)}
        if self.code == "quota_exceeded":
            headers["x-should-retry"] = "false"
        return headers


class StoreDown(ServiceError):
    code = "store_unavailable"
    message = (
        "This service cannot check caller keys and limits right now (its store is "
        "unreachable). Try again shortly."
    )


@dataclass(frozen=True)
class ParameterProblem:
    """One thing wrong with one parameter, e.g. ('page_size', 'must be at most 10')."""

    param: str
    message: str


class InvalidParameters(ServiceError):
    code = "invalid_parameters"

    def __init__(self, problems: list[ParameterProblem]) -> None:
        self.problems = problems
        summary = "; ".join(f"{p.param}: {p.message}" for p in problems)
        super().__init__(f"Invalid parameters: {summary}.")


class UpstreamError(ServiceError):
    """The upstream call failed. `status` is the upstream HTTP status when there was one;
    `detail` is for the operator's log only and never leaves the service."""

    code = "upstream_error"
    message = "The {service} did not answer usably. Try again shortly."

    def __init__(self, *, status: int | None = None, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(type(self).message.format(service="upstream service"))

    def naming(self, service: str) -> UpstreamError:
        """This error with its message naming the connector's upstream, e.g. "podcast service"."""
        self.message = type(self).message.format(service=service)
        self.args = (self.message,)
        return self


class UpstreamNotFound(UpstreamError):
    code = "not_found"
    message = "Nothing exists with that id. Use an id returned by a search or listing."


class UpstreamRateLimited(UpstreamError):
    code = "rate_limited"
    message = "The {service}'s rate limit or quota was reached. Try again later."

    def __init__(self, *, retry_after: str | None = None, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(status=429, detail=detail)


class UpstreamRejectedKey(UpstreamError):
    code = "upstream_unavailable"
    message = "The {service} is temporarily unavailable."


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    message = "The {service} is temporarily unavailable. Try again shortly."


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    message = "The {service} took too long to answer. Try again shortly."
