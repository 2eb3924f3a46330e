"""Every error amends raises on purpose, in one place.

All derive from :class:`AmendsError`, so a caller (the CLI, a flow) can tell an expected failure,
which deserves a one-line message, from a bug, which deserves a traceback.

- :class:`InvalidIncident`: intake refused an incident; nothing was written.
- :class:`IncidentConflict`: an incident with this ref exists with other details.
- :class:`NotFound`: no case, customer or incident by that reference.
- :class:`PolicyError`: the recovery policy file cannot be used.
- :class:`TemplateError`: a message template is missing or failed to render.
- :class:`DeliveryError`: a channel could not deliver a message; ``transient`` says whether a
  later attempt may succeed.
- :class:`DeliveryPending`: messages stay queued after a transient failure; retried later.
- :class:`DatabaseOutdated`: the database needs ``amends db upgrade``.
- :class:`ConfigurationError`: the settings contradict each other.
- :class:`PrefectUnavailable`: Prefect's temporary server did not start; nothing ran.
- :class:`ImportFileError`: a CSV import cannot be read as a whole (bad rows are reported,
  not raised).
"""

from __future__ import annotations


class AmendsError(Exception):
    """Base class of the errors amends raises on purpose."""


class InvalidInput(AmendsError, ValueError):
    """What a person typed (a name, a reason, feedback) cannot be accepted; the message says why."""


class InvalidIncident(AmendsError, ValueError):
    """An incident failed validation; the message names the field."""


class IncidentConflict(AmendsError):
    """An incident with the same ref is already recorded with different details."""


class NotFound(AmendsError, LookupError):
    """No record matches the reference given."""


class PolicyError(AmendsError):
    """The recovery policy is malformed or inconsistent."""


class TemplateError(AmendsError):
    """A template is missing, unsafe or failed to render."""


class DeliveryError(AmendsError):
    """A channel failed to deliver a message.

    Args:
        reason: What went wrong, fit to show to staff.
        transient: True when the same attempt may succeed later (connection refused, 4xx).
        maybe_delivered: True when the connection was lost after the message itself went out:
            the server may have taken it without saying so.
    """

    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        bounce: bool = False,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.maybe_delivered = maybe_delivered
        # The server refused the recipient for good (5xx): the address is not written to again.
        self.bounce = bounce and not transient


class DeliveryPending(AmendsError):
    """Some messages hit a transient failure and stay queued for a later attempt."""


class DatabaseOutdated(AmendsError):
    """The database schema is behind this version of amends."""


class ConfigurationError(AmendsError):
    """The settings cannot work together."""


class PrefectUnavailable(AmendsError):
    """Prefect's temporary server did not start in time (a busy machine); nothing ran."""


class ImportFileError(AmendsError):
    """A CSV file cannot be imported at all: unreadable, not UTF-8, or the wrong columns."""


class SourceError(AmendsError):
    """A mention source cannot be read (unreachable, refused, not a feed): the others go on."""
