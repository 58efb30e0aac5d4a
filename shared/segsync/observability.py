"""One place for logging, metrics and tracing: structured keys, never row contents."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="segsync")
metrics = Metrics(namespace="segsync")
tracer = Tracer(service="segsync")
