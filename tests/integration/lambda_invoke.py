"""Plays the Lambda runtime for one invocation, inside an interpreter that holds only the layers.

Run as ``python3.12 -I -S -B lambda_invoke.py REQUEST RESULT`` by ``lambda_layers.Runtime.invoke``:
REQUEST (JSON) gives ``sys.path`` (the function's folder, then the layers), the event, the timeout,
modules that must be absent, and optionally fakesnow's test options for the Snowflake connector. RESULT receives the
handler's response, or the error, as JSON. Only the standard library is imported before the handler.
"""

import importlib.util
import json
import sys
import time
import traceback
import uuid


class Context:
    """The Lambda context object's attributes that Powertools and segsync read."""

    def __init__(self, function: str, timeout_s: float) -> None:
        self.function_name = f"segsync-{function}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "runtime-test"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def add_fakesnow_options(options: dict) -> None:
    """Give the real Snowflake connector fakesnow's test options (no telemetry, no retries).

    Where it connects stays the sync's ``host``, which the planner checks against WAREHOUSE_ALLOWED_HOSTS:
    the adapter calls ``snowflake.connector.connect`` through the module, so these options are the only
    difference from Lambda's path to Snowflake.
    """
    import snowflake.connector

    connect = snowflake.connector.connect

    def to_server(**kwargs):
        return connect(**{**kwargs, **options})

    snowflake.connector.connect = to_server


def main(request_path: str, result_path: str) -> int:
    with open(request_path) as file:
        request = json.load(file)
    sys.path[:0] = request["path"]
    result: dict = {"importable": sorted(m for m in request["absent"] if importlib.util.find_spec(m) is not None)}
    try:
        if result["importable"]:
            raise RuntimeError(f"modules that the layers do not ship are importable: {result['importable']}")
        if request["snowflake"]:
            add_fakesnow_options(request["snowflake"])
        import app

        result["response"] = app.handler(request["event"], Context(request["function"], request["timeout_s"]))
        result["modules"] = {
            name: getattr(sys.modules.get(name), "__file__", None) for name in ("segsync", "aws_xray_sdk", "boto3")
        }
        code = 0
    except BaseException as exc:  # the result file must say what went wrong, whatever it was
        result["error"] = "".join(traceback.format_exception(exc))
        code = 1
    with open(result_path, "w") as file:
        json.dump(result, file, default=str)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
