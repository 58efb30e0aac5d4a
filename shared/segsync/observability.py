"""One place for logging, metrics and tracing: structured keys, never row contents."""

import logging
import sys

from aws_lambda_powertools import Logger, Metrics, Tracer

# stderr, not stdout: Lambda sends both to CloudWatch, and locally stdout stays clean for --json.
logger = Logger(service="segsync", logger_handler=logging.StreamHandler(sys.stderr))
metrics = Metrics(namespace="segsync")
tracer = Tracer(service="segsync")
