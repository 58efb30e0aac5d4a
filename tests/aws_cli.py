"""AWS CLI commands as the docs show them, read the way the AWS CLI reads them.

``aws SERVICE OPERATION --parameter value ...`` (the shape of every ``aws`` command in the docs) is checked
against botocore's service models, which the CLI's commands are generated from: the operation and every
parameter must exist, and every required parameter be given. Parameters the CLI renames are listed here.
Run as a program (``python -m tests.aws_cli ARGS``) it makes the call with boto3 (``file://`` values read
as the CLI reads them), so a recipe from the docs can run against moto's server.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import orjson
from botocore import xform_name

CLI_RENAMES = {("sns", "subscribe", "notification-endpoint"): "Endpoint"}
"""The CLI's ``--endpoint-url`` is global, so it calls SNS's Endpoint ``--notification-endpoint``."""


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any]


def parse(words: list[str]) -> Call:
    """The API call an ``aws`` command makes (``words`` after ``aws``).

    Raises:
        ValueError: no such service, operation or parameter, or a required parameter missing.
    """
    if len(words) < 2:
        raise ValueError("an aws command names a service and an operation")
    service, command, *rest = words
    try:
        model = botocore.session.get_session().get_service_model(service)
    except botocore.exceptions.UnknownServiceError:
        raise ValueError(f"aws: no service {service!r}") from None
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    if command not in operations:
        raise ValueError(f"aws {service}: no operation {command!r}")
    shape = model.operation_model(operations[command]).input_shape
    members = {xform_name(name, "-"): name for name in (shape.members if shape else {})}
    params: dict[str, Any] = {}
    pending = iter(rest)
    for word in pending:
        name = word.removeprefix("--")
        member = CLI_RENAMES.get((service, command, name)) or members.get(name)
        if word == name or member is None:
            raise ValueError(f"aws {service} {command}: no parameter {word!r}")
        value = next(pending, None)
        if value is None:
            raise ValueError(f"aws {service} {command}: {word} needs a value")
        params[member] = _value(value, shape.members[member].type_name)
    missing = sorted(set(shape.required_members if shape else ()) - set(params))
    if missing:
        raise ValueError(f"aws {service} {command}: missing {', '.join(missing)}")
    return Call(service, operations[command], params)


def _value(text: str, type_name: str) -> Any:
    """A parameter's value: JSON for maps, structures and lists; ``file://`` ones are read when the call is made."""
    if type_name in {"map", "structure", "list"} and not text.startswith("file://"):
        return orjson.loads(text)
    return text


def main(words: list[str]) -> None:
    call = parse(words)
    params = {
        name: Path(value.removeprefix("file://")).read_text() if str(value).startswith("file://") else value
        for name, value in call.params.items()
    }
    getattr(boto3.client(call.service), xform_name(call.operation))(**params)


if __name__ == "__main__":
    main(sys.argv[1:])
