"""Planner Lambda entry: the schedule tick or a run request → segsync plans runs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from segsync.handlers import plan_event
from segsync.observability import logger, metrics, tracer
from segsync.settings import PlannerSettings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return plan_event(event, PlannerSettings.from_env())
