"""Errors a user can act on: printed as one clear line, never as a traceback."""


class SegsyncError(Exception):
    """Base for failures caused by input or environment, not by a bug."""


class ConfigError(SegsyncError):
    """A project file, sync item or setting is wrong; the message names the sync and field."""


class WarehouseError(SegsyncError):
    """The warehouse refused a query; the message names the sync and quotes the warehouse."""


class SecretError(SegsyncError):
    """A secret could not be read; the message names where it was looked for, never its value."""


class DeliveryError(SegsyncError):
    """Segment did not accept a batch after the retries the time budget allowed."""


class PolicyError(SegsyncError):
    """A chunk asks for what the deployment does not allow: an endpoint, or a write key's source."""


class MassRemoval(SegsyncError):
    """A run would remove more of a sync's delivered keys than it may at once (a model that failed, or shrank)."""
