"""dbt Cloud webhook Lambda entry (function URL): a signed "job run completed" → the syncs its models feed."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from segsync.observability import logger, tracer
from segsync.settings import WebhookSettings
from segsync.webhook import respond


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return respond(event, WebhookSettings.from_env())
