"""The Redshift Data API's wire protocol on loopback, running each statement on the real PostgreSQL server.

moto's ``redshift-data`` accepts statements but returns one canned result whatever the SQL, so the
adapter could not be tested against it. This endpoint speaks the same JSON protocol boto3 speaks
(``X-Amz-Target: RedshiftData.*``) and shapes answers as the Data API documents them: statements run
asynchronously (the first ``DescribeStatement`` says STARTED), each in its own session, a batch in one
transaction; results page with ``NextToken``; integers, floats and booleans come typed, everything
else as the server's text (numeric, timestamps as ``2024-01-01 00:00:00.5+00``); the column metadata
carries Redshift's type names. What it cannot show is Redshift itself: its SQL runs on PostgreSQL 15.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg.postgres import types as pg_types
from psycopg.types.string import TextLoader

from . import postgres_server as pg

TYPED = {"int2": "longValue", "int4": "longValue", "int8": "longValue", "float4": "doubleValue",
         "float8": "doubleValue", "bool": "booleanValue"}  # fmt: skip
REDSHIFT_NAMES = {"text": "varchar"}
"""Redshift has no TEXT type (it is VARCHAR(256)): a PostgreSQL text column reports as varchar."""
PARAMETER = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Statement:
    id: str
    sqls: list[str]
    error: str | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    records: list[list[dict[str, Any]]] = field(default_factory=list)
    has_result: bool = False
    described: int = 0


class DataApi:
    """The endpoint: start it, point the connection's ``endpoint_url`` at ``url``, stop it."""

    def __init__(self, server: pg.PostgresServer, page_rows: int = 100) -> None:
        self.server = server
        self.page_rows = page_rows
        self.statements: dict[str, Statement] = {}
        self.calls: list[str] = []
        self._sessions: dict[tuple[str, str], psycopg.Connection] = {}
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"api": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> DataApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        for con in self._sessions.values():
            con.close()

    def handle(self, target: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append(target)
        if target in ("ExecuteStatement", "BatchExecuteStatement"):
            if request.get("ClusterIdentifier") not in (None, "analytics") and not request.get("WorkgroupName"):
                return 400, {"__type": "ValidationException",
                             "message": "Redshift endpoint doesn't exist in this region."}  # fmt: skip
            sqls = request.get("Sqls") or [request["Sql"]]
            statement = Statement(str(uuid.uuid4()), sqls)
            self._run(statement, request)
            self.statements[statement.id] = statement
            return 200, {"Id": statement.id, "Database": request["Database"]}
        statement = self.statements.get(request.get("Id", ""))
        if statement is None:
            return 400, {"__type": "ResourceNotFoundException", "message": "Query does not exist."}
        if target == "DescribeStatement":
            statement.described += 1
            status = "STARTED" if statement.described == 1 else ("FAILED" if statement.error else "FINISHED")
            return 200, {"Id": statement.id, "Status": status, "HasResultSet": statement.has_result,
                         "QueryString": ";".join(statement.sqls), "ResultRows": len(statement.records),
                         **({"Error": statement.error} if statement.error and status == "FAILED" else {})}  # fmt: skip
        if target == "GetStatementResult":
            start = int(request.get("NextToken") or 0)
            page = statement.records[start : start + self.page_rows]
            following = start + self.page_rows
            answer = {"ColumnMetadata": statement.columns, "Records": page, "TotalNumRows": len(statement.records)}
            if following < len(statement.records):
                answer["NextToken"] = str(following)
            return 200, answer
        if target == "CancelStatement":
            return 200, {"Status": True}
        return 400, {"__type": "ValidationException", "message": f"unsupported {target}"}

    def _run(self, statement: Statement, request: dict[str, Any]) -> None:
        """Run the SQL as the Data API would sign in: ``DbUser``, or (Serverless, IAM) the role's user."""
        user = request.get("DbUser") or pg.USER
        con = None
        parameters = {p["name"]: p["value"] for p in request.get("Parameters", [])}
        try:
            con = self._session(request["Database"], user)
            with self._lock, con.transaction(), con.cursor() as cursor:
                for sql in statement.sqls:
                    if parameters:
                        cursor.execute(PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%")), parameters)
                    else:
                        cursor.execute(sql)
                if cursor.description:
                    statement.has_result = True
                    names = _type_names(con, {c.type_code for c in cursor.description})
                    statement.columns = [_metadata(c, names.get(c.type_code, "unknown")) for c in cursor.description]
                    kinds = [TYPED.get(m["typeName"]) for m in statement.columns]
                    statement.records = [[_field(v, kind) for v, kind in zip(row, kinds, strict=True)]
                                         for row in cursor.fetchall()]  # fmt: skip
        except psycopg.Error as exc:
            diag = exc.diag
            statement.error = f"ERROR: {diag.message_primary or exc}"
        finally:
            if con is not None and not con.closed:
                con.execute("DISCARD ALL")

    def _session(self, database: str, user: str) -> psycopg.Connection:
        """A fresh session for each statement, as the Data API gives: a kept connection, reset (DISCARD ALL)
        after each use, since logging in anew per statement would cost the suite seconds."""
        key = (database, user)
        if key not in self._sessions:
            con = psycopg.connect(
                host=self.server.host, port=self.server.port, dbname=database, user=user, password=pg.PASSWORD,
                options="-c TimeZone=UTC -c DateStyle=ISO,YMD", autocommit=True,
            )  # fmt: skip
            con.prepare_threshold = None  # DISCARD ALL drops prepared statements psycopg would reuse
            for info in pg_types:
                con.adapters.register_loader(info.oid, TextLoader)
            self._sessions[key] = con
        return self._sessions[key]


def _type_names(con: psycopg.Connection, oids: set[int]) -> dict[int, str]:
    rows = con.execute("SELECT oid, typname FROM pg_type WHERE oid = ANY(%s)", (list(oids),)).fetchall()
    # (every value reads as text here, the OIDs too)
    return {int(oid): REDSHIFT_NAMES.get(name, name) for oid, name in rows}


def _metadata(column: Any, type_name: str) -> dict[str, Any]:
    return {"name": column.name, "label": column.name, "typeName": type_name, "nullable": 1,
            "precision": column.precision or 0, "scale": column.scale or 0, "isSigned": True,
            "isCaseSensitive": type_name == "varchar", "isCurrency": False, "length": 0,
            "schemaName": "", "tableName": ""}  # fmt: skip


def _field(text: str | None, kind: str | None) -> dict[str, Any]:
    if text is None:
        return {"isNull": True}
    if kind == "longValue":
        return {kind: int(text)}
    if kind == "doubleValue":
        return {kind: float(text)}
    if kind == "booleanValue":
        return {kind: text == "t"}
    return {"stringValue": text}


class _Handler(BaseHTTPRequestHandler):
    api: DataApi

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        target = self.headers["X-Amz-Target"].split(".", 1)[1]
        status, answer = self.api.handle(target, request)
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the calls from ``DataApi.calls``."""
