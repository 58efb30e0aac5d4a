"""Reads secrets from the environment or Secrets Manager; values never reach logs or errors."""

from __future__ import annotations

import os

from segsync.config import SecretRef
from segsync.errors import SecretError

SECRET_MAX_AGE_S = 300


def resolve(ref: SecretRef, what: str, fresh: bool = False) -> str:
    """Return the secret's value; ``what`` names it in errors (e.g. "Segment write key").

    ``fresh``: read Secrets Manager again instead of the value cached for SECRET_MAX_AGE_S (after a
    401 or 403, the secret may have been rotated).
    """
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise SecretError(f"{what}: environment variable {ref.env} is not set")
        return value
    from aws_lambda_powertools.utilities import parameters
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = parameters.get_secret(ref.secret, max_age=SECRET_MAX_AGE_S, force_fetch=fresh)
    except (parameters.exceptions.GetParameterError, ClientError, BotoCoreError) as exc:
        raise SecretError(f"{what}: cannot read Secrets Manager secret '{ref.secret}' ({type(exc).__name__})") from None
    if not value:
        raise SecretError(f"{what}: Secrets Manager secret '{ref.secret}' is empty")
    return value if isinstance(value, str) else value.decode()
