"""Databricks' SQL Statement Execution API on loopback, its statements run by a local Spark (pyspark).

Run as ``.venv-spark/bin/python tests/emulators/databricks.py PORT TOKEN WAREHOUSE_ID``; prints
``ready`` when it answers. It serves what the adapter calls: ``POST /api/2.0/sql/statements`` (a
bearer token, the warehouse id, named parameters, INLINE or EXTERNAL_LINKS results in JSON_ARRAY
format, chunked), ``GET .../result/chunks/N`` and the presigned links themselves. Spark's session time
zone is Los Angeles, so a key text that follows the session fails. Spark here has no Delta Lake (its
jars come from Maven, out of reach), so statements only Delta runs (MERGE, DELETE, REPLACE TABLE) fail
as Spark fails them: the tests use it for the dialect's SELECTs and CREATEs, the adapter's protocol
and its errors.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import types as T

CHUNK_ROWS = 100
TYPE_NAMES = [
    (T.ByteType, "BYTE"), (T.ShortType, "SHORT"), (T.IntegerType, "INT"), (T.LongType, "LONG"),
    (T.FloatType, "FLOAT"), (T.DoubleType, "DOUBLE"), (T.DecimalType, "DECIMAL"), (T.BooleanType, "BOOLEAN"),
    (T.TimestampNTZType, "TIMESTAMP_NTZ"), (T.TimestampType, "TIMESTAMP"), (T.DateType, "DATE"),
    (T.BinaryType, "BINARY"), (T.StringType, "STRING"), (T.StructType, "STRUCT"), (T.ArrayType, "ARRAY"),
    (T.MapType, "MAP"),
]  # fmt: skip


def _type_name(data_type: T.DataType) -> str:
    for spark_type, name in TYPE_NAMES:
        if isinstance(data_type, spark_type):
            return name
    return data_type.typeName().upper()


def _text(value: Any, data_type: T.DataType) -> str | None:
    """A value as the API's JSON_ARRAY format writes it: text, or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if isinstance(data_type, T.TimestampType):
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, dt.date | Decimal | int | float):
        return str(value) if not isinstance(value, dt.date) else value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, T.Row | dict | list):
        return json.dumps(value.asDict(recursive=True) if isinstance(value, T.Row) else value, default=str)
    return str(value)


class Api:
    def __init__(self, spark: SparkSession, token: str, warehouse_id: str, port: int) -> None:
        self.spark, self.token, self.warehouse_id = spark, token, warehouse_id
        self.base = f"http://127.0.0.1:{port}"
        self.results: dict[str, tuple[list[list[str | None]], str]] = {}
        self.lock = threading.Lock()

    def execute(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if request.get("warehouse_id") != self.warehouse_id:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                         "message": f"No warehouse found with id {request.get('warehouse_id')}"}  # fmt: skip
        statement_id = str(uuid.uuid4())
        args = {p["name"]: _parameter(p) for p in request.get("parameters", [])}
        try:
            with self.lock:
                frame = self.spark.sql(request["statement"], args=args or None)
                rows = frame.collect()
        except PySparkException as exc:
            error = {"error_code": "BAD_REQUEST", "message": str(exc).split("\n")[0]}
            return 200, {"statement_id": statement_id, "status": {"state": "FAILED", "error": error}}
        fields = frame.schema.fields
        records = [[_text(row[i], f.dataType) for i, f in enumerate(fields)] for row in rows]
        columns = [{"name": f.name, "position": i, "type_name": _type_name(f.dataType),
                    "type_text": f.dataType.simpleString().upper(),
                    **({"type_precision": f.dataType.precision, "type_scale": f.dataType.scale}
                       if isinstance(f.dataType, T.DecimalType) else {})}
                   for i, f in enumerate(fields)]  # fmt: skip
        self.results[statement_id] = (records, request.get("disposition", "INLINE"))
        chunks = max(1, -(-len(records) // CHUNK_ROWS))
        return 200, {
            "statement_id": statement_id,
            "status": {"state": "SUCCEEDED"},
            "manifest": {"format": "JSON_ARRAY", "schema": {"column_count": len(columns), "columns": columns},
                         "total_chunk_count": chunks, "total_row_count": len(records)},
            "result": self.chunk(statement_id, 0),
        }  # fmt: skip

    def chunk(self, statement_id: str, index: int) -> dict[str, Any]:
        records, disposition = self.results[statement_id]
        part = records[index * CHUNK_ROWS : (index + 1) * CHUNK_ROWS]
        following = index + 1 if (index + 1) * CHUNK_ROWS < len(records) else None
        more = {} if following is None else {"next_chunk_index": following}
        if disposition == "EXTERNAL_LINKS":
            link = {"chunk_index": index, "row_count": len(part),
                    "external_link": f"{self.base}/external/{statement_id}/{index}", **more}  # fmt: skip
            return {"chunk_index": index, "row_count": len(part), "external_links": [link]}
        return {"chunk_index": index, "row_count": len(part), "data_array": part, **more}

    def external(self, statement_id: str, index: int) -> list[list[str | None]]:
        records, _ = self.results[statement_id]
        return records[index * CHUNK_ROWS : (index + 1) * CHUNK_ROWS]


def _parameter(parameter: dict[str, str]) -> Any:
    value, kind = parameter.get("value"), parameter.get("type", "STRING")
    if value is None:
        return None
    if kind == "BIGINT":
        return int(value)
    if kind == "DOUBLE":
        return float(value)
    if kind == "BOOLEAN":
        return value == "true"
    if kind == "TIMESTAMP":
        return dt.datetime.fromisoformat(value)
    return value


def main(port: int, token: str, warehouse_id: str) -> None:
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "America/Los_Angeles")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.warehouse.dir", sys.argv[4] if len(sys.argv) > 4 else "spark-warehouse")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    api = Api(spark, token, warehouse_id, port)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, answer: Any) -> None:
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {api.token}":
                return True
            self._reply(403, {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."})
            return False

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if self._authorized() and self.path == "/api/2.0/sql/statements":
                self._reply(*api.execute(request))

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts[0] == "external":  # a presigned URL: no token, as cloud storage takes none
                if self.headers.get("Authorization"):
                    self._reply(400, {"message": "presigned URLs take no Authorization header"})
                    return
                self._reply(200, api.external(parts[1], int(parts[2])))
            elif self._authorized() and parts[-2] == "chunks":
                self._reply(200, api.chunk(parts[4], int(parts[-1])))

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever(0.05)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
