"""Sender Lambda entry: a batch of SQS chunk records → Segment; failed records are reported, not dropped."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from segsync.handlers import send_record
from segsync.observability import logger, metrics, tracer
from segsync.settings import SenderSettings

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SenderSettings.from_env()

    def record_handler(record: SQSRecord) -> None:
        send_record(record.body, context.get_remaining_time_in_millis(), settings)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
