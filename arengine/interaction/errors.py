"""Errors for room actions, each carrying the HTTP status it maps to.

They subclass :class:`~arengine.errors.UserError` so the CLI prints them on one line too.
"""

from __future__ import annotations

from arengine.errors import UserError


class InteractionError(UserError):
    """A rejected action; ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(InteractionError):
    status = 422


class NotFoundError(InteractionError):
    status = 404


class ConflictError(InteractionError):
    """The action is well-formed but the room's state forbids it (e.g. poll closed)."""

    status = 409


class UnauthorizedError(InteractionError):
    status = 401


class ForbiddenError(InteractionError):
    status = 403


class RateLimitedError(InteractionError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLargeError(InteractionError):
    status = 413


class UnsupportedMediaError(InteractionError):
    status = 415


class UnavailableError(InteractionError):
    """The store failed; nothing more is accepted until restart."""

    status = 503


SHOWN_CHARS = 40  # how much of a user's input an error message repeats


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters.

    Messages name what was wrong but never echo a long input back (a 10,000-character
    title came back whole in an error once): a client knows what it sent.
    """
    if isinstance(value, str):
        if len(value) > limit:
            return repr(value[:limit]) + f"... (+{len(value) - limit} characters)"
        return repr(value)
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class BusyError(RateLimitedError):
    """The server is at capacity for this kind of work (e.g. avatar decodes); retry later.

    A :class:`RateLimitedError` so the API sends its ``retry_after`` the same way (HTTP
    ``Retry-After``, ``retry_after`` on the socket), but 503: the viewer did nothing wrong.
    """

    status = 503
