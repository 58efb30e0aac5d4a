"""The SAM template, linted and translated offline: IAM boundaries, queue, event source, schedule, layers."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LOCAL_ENV = ROOT / "events" / "local-env.json"
# aws-sam-translator pins an older pydantic than segsync, so it lives in the SAM CLI's virtualenv.
SAM_VENV_PYTHON = ROOT / ".venv-sam" / "bin" / "python"

# Run under a Python that has aws-sam-translator; reads the template on stdin and prints
# {"source": <parsed template>, "translated": <CloudFormation>}. Local CodeUri/ContentUri become
# s3:// URIs (the translator accepts nothing else) and policy names have no IAM to be looked up in.
TRANSLATE = r"""
import copy, json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


source = yaml_parse(sys.stdin.read())
template = copy.deepcopy(source)
for resource in template["Resources"].values():
    properties = resource.get("Properties", {})
    for uri in ("CodeUri", "ContentUri"):
        if isinstance(properties.get(uri), str):
            properties[uri] = "s3://segsync-template-test/" + properties[uri].strip("/")
json.dump({"source": source, "translated": transform(template, {}, NoManagedPolicies())}, sys.stdout)
"""

DATA_SERVICES = ("dynamodb:", "sqs:", "secretsmanager:", "lambda:", "sns:")
LIBRARY = ROOT / "shared" / "segsync"
METRIC_CALL = re.compile(r"add_metric\(\s*name=\"(\w+)\"")
# Managed policies SAM may attach; anything else (e.g. AWSLambdaSQSQueueExecutionRole, which may
# receive and delete on every queue) would grant data access on "*".
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
SQS_MESSAGE_BYTES = 1024 * 1024


def _translator_python() -> str:
    if importlib.util.find_spec("samtranslator") is not None:
        return sys.executable
    if SAM_VENV_PYTHON.exists():
        return str(SAM_VENV_PYTHON)
    pytest.fail("aws-sam-translator not found: run `make sam-venv` (the SAM CLI's virtualenv brings it)")


@pytest.fixture(scope="module")
def templates() -> dict[str, Any]:
    completed = subprocess.run(
        [_translator_python(), "-c", TRANSLATE],
        input=TEMPLATE.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
    )
    assert completed.returncode == 0, f"SAM translation failed:\n{completed.stderr}"
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def source(templates: dict[str, Any]) -> dict[str, Any]:
    return templates["source"]["Resources"]


@pytest.fixture(scope="module")
def resources(templates: dict[str, Any]) -> dict[str, Any]:
    return templates["translated"]["Resources"]


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in resources.items() if r["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(role: dict[str, Any]) -> Iterator[tuple[list[str], list[Any]]]:
    """(actions, resources) of each Allow statement in a role's inline policies."""
    for policy in role.get("Policies", []):
        for statement in _as_list(policy["PolicyDocument"]["Statement"]):
            if statement["Effect"] == "Allow":
                yield _as_list(statement["Action"]), _as_list(statement["Resource"])


def _grants(resources: dict[str, Any]) -> Iterator[tuple[str, list[str], list[Any]]]:
    """(role, actions, resources) of every Allow statement: role inline policies and policy resources."""
    for name, role in _of_type(resources, "AWS::IAM::Role").items():
        for actions, targets in _statements(role):
            yield name, actions, targets
    for kind in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy"):
        for policy in _of_type(resources, kind).values():
            roles = [policy["RoleName"]] if "RoleName" in policy else policy.get("Roles", [])
            for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                if statement["Effect"] == "Allow":
                    for role in roles:
                        yield role["Ref"], _as_list(statement["Action"]), _as_list(statement["Resource"])


def _role_of(resources: dict[str, Any], function: str) -> str:
    role = resources[function]["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"{function}'s role is not one of this stack's roles: {role}"
    return role["Fn::GetAtt"][0]


def _roles_granting(resources: dict[str, Any], action: str, resource_mentions: str) -> set[str]:
    return {
        name
        for name, actions, targets in _grants(resources)
        if action in actions and any(resource_mentions in json.dumps(target) for target in targets)
    }


def _env(resources: dict[str, Any], function: str) -> dict[str, Any]:
    return resources[function]["Properties"]["Environment"]["Variables"]


# ---------------------------------------------------------------------------------------- IAM


def test_only_the_planner_reads_warehouse_secrets(resources):
    # Given the translated template
    planner_role = _role_of(resources, "PlannerFunction")

    # When we look for roles that may read secrets under the warehouse prefix
    readers = _roles_granting(resources, "secretsmanager:GetSecretValue", "${WarehouseSecretsPrefix}*")

    # Then only the planner's role may
    assert readers == {planner_role}


def test_only_the_sender_reads_segment_secrets(resources):
    # Given the translated template
    sender_role = _role_of(resources, "SenderFunction")

    # When we look for roles that may read secrets under the Segment prefix
    readers = _roles_granting(resources, "secretsmanager:GetSecretValue", "${SegmentSecretsPrefix}*")

    # Then only the sender's role may
    assert readers == {sender_role}


def test_the_sender_reaches_the_runs_table_but_not_the_syncs_table(resources):
    # Given the sender's role
    role = _of_type(resources, "AWS::IAM::Role")[_role_of(resources, "SenderFunction")]

    # When we list what its DynamoDB statements name
    dynamodb = [t for actions, t in _statements(role) if any(a.startswith("dynamodb:") for a in actions)]
    targets = json.dumps(dynamodb)

    # Then the runs table is there and the syncs table is not, nor is the syncs table in its environment
    assert "RunsTable" in targets
    assert "SyncsTable" not in json.dumps(role)
    assert "SYNCS_TABLE" not in _env(resources, "SenderFunction")


def test_no_data_access_on_wildcard_resources(resources):
    # Given every role in the stack
    roles = _of_type(resources, "AWS::IAM::Role")

    # When we collect DynamoDB, SQS, Secrets Manager and Lambda statements on "*" (in roles and in
    # policies attached to them), and managed policies
    wildcard = [
        (name, actions)
        for name, actions, targets in _grants(resources)
        if any(a.startswith(DATA_SERVICES) or a == "*" for a in actions) and "*" in targets
    ]
    managed = {arn for role in roles.values() for arn in role.get("ManagedPolicyArns", [])}

    # Then there are none, and no managed policy brings them in by the back door
    assert wildcard == []
    assert managed <= ALLOWED_MANAGED_POLICIES


def test_each_function_gets_only_the_settings_it_reads(resources):
    # Given the two functions' environments
    planner, sender = _env(resources, "PlannerFunction"), _env(resources, "SenderFunction")

    # When / Then the planner is pointed at both tables and the queue, the sender at runs and its rate
    assert planner["SYNCS_TABLE"] == {"Ref": "SyncsTable"}
    assert planner["RUNS_TABLE"] == {"Ref": "RunsTable"}
    assert planner["QUEUE_URL"] == {"Ref": "ChunkQueue"}
    assert sender["RUNS_TABLE"] == {"Ref": "RunsTable"}
    assert sender["SEGMENT_EVENTS_PER_SECOND"] == {"Ref": "SegmentEventsPerSecond"}
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    assert powertools <= planner.keys()
    assert powertools <= sender.keys()
    assert "SEGMENT_WRITE_KEY" not in planner


def test_local_only_variables_are_absent_in_aws(resources):
    # Given the variables that only `sam local invoke` fills in
    no_value = {"Ref": "AWS::NoValue"}

    # When / Then CloudFormation drops them: no endpoint override or env write key reaches AWS
    assert _env(resources, "PlannerFunction")["AWS_ENDPOINT_URL"] == no_value
    assert _env(resources, "SenderFunction")["AWS_ENDPOINT_URL"] == no_value
    assert _env(resources, "SenderFunction")["SEGMENT_WRITE_KEY"] == no_value


def test_local_env_file_sets_only_variables_the_template_declares(resources):
    # Given the env-vars file of `make invoke-planner` / `make invoke-sender`
    local_env = json.loads(LOCAL_ENV.read_text())

    # When we compare it with what each function declares (sam local ignores anything else)
    undeclared = {
        function: sorted(set(variables) - set(_env(resources, function))) for function, variables in local_env.items()
    }

    # Then every variable it sets reaches the function, and both are pointed at the local stack
    assert set(local_env) == {"PlannerFunction", "SenderFunction"}
    assert undeclared == {"PlannerFunction": [], "SenderFunction": []}
    assert all(variables["AWS_ENDPOINT_URL"].startswith("http://") for variables in local_env.values())
    assert all(isinstance(value, str) for variables in local_env.values() for value in variables.values())


# ---------------------------------------------------------------------------------------- queue


def test_queue_visibility_covers_six_sender_timeouts(resources):
    # Given the chunk queue and the sender
    queue = resources["ChunkQueue"]["Properties"]
    sender = resources["SenderFunction"]["Properties"]

    # When / Then a chunk stays invisible for at least 6 sender timeouts
    assert queue["VisibilityTimeout"] >= 6 * sender["Timeout"]


def test_queue_takes_1_mib_chunks_encrypted_and_redrives_to_the_dlq(resources):
    # Given the queues
    queue = resources["ChunkQueue"]["Properties"]
    dlq = resources["ChunkDeadLetterQueue"]["Properties"]

    # When / Then chunks up to 1 MiB fit, failures park in the DLQ after 5 receives, kept 14 days
    assert queue["MaximumMessageSize"] == SQS_MESSAGE_BYTES
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ChunkDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["MaximumMessageSize"] == SQS_MESSAGE_BYTES
    for properties in _of_type(resources, "AWS::SQS::Queue").values():
        assert properties["SqsManagedSseEnabled"] is True


def test_sender_event_source_reports_partial_failures_and_is_throttled(resources):
    # Given the event source mapping that feeds the sender
    [mapping] = [
        m
        for m in _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["FunctionName"] == {"Ref": "SenderFunction"}
    ]

    # When / Then it reads the chunk queue, reports failed records one by one, fits Lambda's payload
    # cap with full-size chunks, and its concurrency is the stack's parameter
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["ChunkQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] * SQS_MESSAGE_BYTES <= LAMBDA_PAYLOAD_BYTES
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SenderMaxConcurrency"}}


# ---------------------------------------------------------------------------------------- schedule


def test_planner_schedule_retries_and_has_its_own_dlq(resources):
    # Given the EventBridge Scheduler schedule that targets the planner
    [(name, schedule)] = [
        (n, s)
        for n, s in _of_type(resources, "AWS::Scheduler::Schedule").items()
        if s["Target"]["Arn"] == {"Fn::GetAtt": ["PlannerFunction", "Arn"]}
    ]
    target = schedule["Target"]
    scheduler_role = _of_type(resources, "AWS::IAM::Role")[target["RoleArn"]["Fn::GetAtt"][0]]

    # When / Then it ticks on the parameter, retries, dead-letters to its own queue it may write to,
    # and has no fixed name that a second stack in the account would collide with
    assert schedule["ScheduleExpression"] == {"Ref": "TickSchedule"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}
    assert (["sqs:SendMessage"], [{"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}]) in list(
        _statements(scheduler_role)
    )
    assert "Name" not in schedule, f"{name} has a fixed name"


def test_alarms_watch_both_dlqs_and_planner_errors(resources):
    # Given the alarms
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm").values()

    # When we list what they watch
    watched = {(a["MetricName"], json.dumps(a["Dimensions"][0]["Value"])) for a in alarms if "MetricName" in a}

    # Then both dead-letter queues and the planner's errors are covered
    depth = "ApproximateNumberOfMessagesVisible"
    assert (depth, json.dumps({"Fn::GetAtt": ["ChunkDeadLetterQueue", "QueueName"]})) in watched
    assert (depth, json.dumps({"Fn::GetAtt": ["ScheduleDeadLetterQueue", "QueueName"]})) in watched
    assert ("Errors", json.dumps({"Ref": "PlannerFunction"})) in watched


def test_no_hard_coded_physical_names(resources):
    # Given every resource of the translated stack
    name_keys = {
        "TableName",
        "QueueName",
        "FunctionName",
        "RoleName",
        "AlarmName",
        "LogGroupName",
        "LayerName",
        "DashboardName",
    }
    # these two name the function they configure, not themselves
    referring = {"AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"}

    # When we collect literal names (intrinsics derived from the stack are fine)
    literal = [
        (name, key)
        for name, resource in resources.items()
        if resource["Type"] not in referring
        for key, value in resource.get("Properties", {}).items()
        if key in name_keys and isinstance(value, str)
    ]

    # Then there are none
    assert literal == []


# ---------------------------------------------------------------------------------------- layers


def test_layers_are_built_by_sam_for_the_functions_runtime_and_architecture(source):
    # Given the source template's layers and functions' shared settings
    layers = {n: r for n, r in source.items() if r["Type"] == "AWS::Serverless::LayerVersion"}

    # When / Then `sam build` builds each layer with pip for python3.12 on arm64 (its default is x86_64)
    assert set(layers) == {"DependenciesLayer", "LibraryLayer"}
    assert layers["DependenciesLayer"]["Properties"]["ContentUri"].rstrip("/") == "layers/deps"
    assert layers["LibraryLayer"]["Properties"]["ContentUri"].rstrip("/") == "shared"
    for layer in layers.values():
        assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]


# ---------------------------------------------------------------------------------------- lint


def test_cfn_lint_finds_nothing():
    # Given cfn-lint, as `make validate` runs it
    from cfnlint.api import ManualArgs, lint_file

    # When it lints the template
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1"]))

    # Then it reports no error and no warning
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


# ---------------------------------------------------------------------------------------- fan-out


def test_the_planner_may_invoke_itself_and_nothing_else(resources):
    # Given the roles allowed to invoke a Lambda function, and the schedule's role
    planner_role = _role_of(resources, "PlannerFunction")
    [schedule] = _of_type(resources, "AWS::Scheduler::Schedule").values()
    scheduler_role = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]

    # When we list who may invoke what
    invokers = {
        (role, json.dumps(targets))
        for role, actions, targets in _grants(resources)
        if any(a.startswith("lambda:Invoke") for a in actions)
    }

    # Then the planner may invoke itself (the tick fans out one invocation per due sync), the schedule
    # and the dbt Cloud webhook may invoke the planner, and nobody may invoke anything else (the sender
    # nothing at all)
    planner_arn = json.dumps([{"Fn::GetAtt": ["PlannerFunction", "Arn"]}])
    assert invokers == {(planner_role, planner_arn), (scheduler_role, planner_arn), ("WebhookRole", planner_arn)}


def test_the_fan_out_grant_is_not_a_circular_reference(resources):
    # Given the policy resource that grants the planner its own ARN
    policy = resources["PlannerFanOutPolicy"]["Properties"]

    # When we look at what the planner's role and function refer to
    role = json.dumps(resources[_role_of(resources, "PlannerFunction")])
    function = json.dumps(resources["PlannerFunction"])

    # Then the grant is attached from outside: the role never refers to the function that refers to it
    referred = set(re.findall(r'\{"Ref": "(\w+)"\}', role)) | set(re.findall(r'"Fn::GetAtt": \["(\w+)"', role))
    assert policy["RoleName"] == {"Ref": _role_of(resources, "PlannerFunction")}
    assert "PlannerFunction" not in referred
    assert "PlannerFanOutPolicy" not in role + function


def test_the_planner_knows_its_lock_and_its_name_without_extra_settings(templates, resources):
    # Given the planner's environment and the template's parameters
    planner = _env(resources, "PlannerFunction")
    parameters = templates["source"]["Parameters"]

    # When / Then the lock duration is the parameter, never shorter than a planner invocation, and the
    # fan-out target is AWS_LAMBDA_FUNCTION_NAME, which Lambda sets (and reserves: it may not be declared)
    assert planner["RUN_LOCK_SECONDS"] == {"Ref": "RunLockSeconds"}
    assert parameters["RunLockSeconds"]["Default"] == 7200
    assert parameters["RunLockSeconds"]["MinValue"] >= resources["PlannerFunction"]["Properties"]["Timeout"]
    assert "PLANNER_FUNCTION_NAME" not in planner
    assert not [name for name in planner if name.startswith("AWS_LAMBDA_")]


# ---------------------------------------------------------------------------------------- alarms


def _emitted_metrics() -> set[str]:
    """Metric names the library emits (``metrics.add_metric(name="...")``)."""
    return {name for path in LIBRARY.rglob("*.py") for name in METRIC_CALL.findall(path.read_text())}


def _custom_metric(stat: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    return stat["Namespace"], stat["MetricName"], stat["Dimensions"]


def test_failed_runs_alarm_watches_the_planners_metric(resources):
    # Given the functions' Powertools settings (the EMF namespace and the `service` dimension)
    planner = _env(resources, "PlannerFunction")
    namespace, service = planner["POWERTOOLS_METRICS_NAMESPACE"], planner["POWERTOOLS_SERVICE_NAME"]

    # When we find the alarm on RunsFailed
    [alarm] = [a for a in _of_type(resources, "AWS::CloudWatch::Alarm").values() if a.get("MetricName") == "RunsFailed"]

    # Then it watches the metric as the code emits it and fires on the first failed run
    assert _custom_metric(alarm) == (namespace, "RunsFailed", [{"Name": "service", "Value": service}])
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )
    assert alarm["TreatMissingData"] == "notBreaching"


def test_rejected_rate_alarm_divides_rejected_rows_by_rows_planned(templates, resources):
    # Given the alarm built on metric math
    planner = _env(resources, "PlannerFunction")
    dimensions = [{"Name": "service", "Value": planner["POWERTOOLS_SERVICE_NAME"]}]
    [alarm] = [a for a in _of_type(resources, "AWS::CloudWatch::Alarm").values() if "Metrics" in a]

    # When we read its queries
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    [returned] = [query for query in alarm["Metrics"] if query["ReturnData"]]
    inputs = {
        query_id: _custom_metric(query["MetricStat"]["Metric"])
        for query_id, query in queries.items()
        if "MetricStat" in query
    }

    # Then (planner rejections + sender rejections) / rows planned is compared with the parameter
    namespace = planner["POWERTOOLS_METRICS_NAMESPACE"]
    assert inputs == {
        "planned": (namespace, "RowsPlanned", dimensions),
        "rejected": (namespace, "RowsRejected", dimensions),
        "refused": (namespace, "MessagesRejected", dimensions),
    }
    assert returned["Expression"] == "IF(planned > 0, (FILL(rejected, 0) + FILL(refused, 0)) / planned, 0)"
    assert all(query["MetricStat"]["Stat"] == "Sum" for query in queries.values() if "MetricStat" in query)
    assert alarm["Threshold"] == {"Ref": "RejectedRateThreshold"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert templates["source"]["Parameters"]["RejectedRateThreshold"]["Default"] == 0.05


def test_every_alarm_notifies_a_topic_the_stacks_own_unless_one_is_given(templates, resources):
    # Given every alarm, and the stack's own topic and its email subscription
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    conditions = templates["translated"]["Conditions"]

    # When / Then each notifies, on alarm and on recovery, the given topic or else the stack's own, which
    # exists exactly when none is given, with the email (if any) subscribed to it
    notify = [{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
    assert len(alarms) >= 9
    assert {name: (a["AlarmActions"], a["OKActions"]) for name, a in alarms.items()} == {
        name: (notify, notify) for name in alarms
    }
    assert conditions["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    assert resources["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "SubscribeAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_alarms_and_dashboard_watch_only_metrics_the_code_emits(resources):
    # Given the metric names the library emits, and the dashboard with its placeholders filled in
    emitted = _emitted_metrics()
    dashboard = _dashboard(resources)

    # When we collect the custom metrics the alarms and the dashboard's widgets refer to
    namespace = _env(resources, "PlannerFunction")["POWERTOOLS_METRICS_NAMESPACE"]
    in_alarms = {
        a["MetricName"]
        for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a.get("Namespace") == namespace
    }
    in_alarms |= {
        q["MetricStat"]["Metric"]["MetricName"]
        for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        for q in a.get("Metrics", [])
        if "MetricStat" in q
    }
    on_dashboard = {
        metric[1]
        for widget in dashboard["widgets"]
        for metric in widget["properties"].get("metrics", [])
        if isinstance(metric[0], str) and metric[0] == namespace
    }

    # Then every one of them exists in the code (a renamed metric would leave an alarm that never fires),
    # and the dashboard shows every metric the code emits
    assert emitted == {
        "RowsPlanned",
        "RowsRejected",
        "RunsFailed",
        "MessagesSent",
        "MessagesRejected",
        "SegmentRetries",
        "ChunksFailed",
        "StaleChunksDropped",
        "BatchLatency",
        "RunSeconds",
    }
    assert in_alarms <= emitted
    assert on_dashboard == emitted


def test_dashboard_shows_queues_and_both_functions(resources):
    # Given the dashboard
    dashboard = _dashboard(resources)
    metrics = [m for w in dashboard["widgets"] for m in w["properties"].get("metrics", []) if isinstance(m[0], str)]

    # When we list the AWS metrics it plots, per resource
    plotted = {(m[0], m[1], m[3]) for m in metrics if m[0].startswith("AWS/")}

    # Then the DLQ depth and both functions' duration and errors are there, in the stack's region
    for function in ("${PlannerFunction}", "${SenderFunction}"):
        assert ("AWS/Lambda", "Duration", function) in plotted
        assert ("AWS/Lambda", "Errors", function) in plotted
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "${ChunkDeadLetterQueue.QueueName}") in plotted
    assert {w["properties"]["region"] for w in dashboard["widgets"]} == {"${AWS::Region}"}


def _dashboard(resources: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as JSON, ``${...}`` placeholders kept as strings (numbers where unquoted)."""
    [dashboard] = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["DashboardBody"]["Fn::Sub"]
    unquoted = re.sub(r'(?<!")\$\{[^}]+\}(?!")', "0.05", body)
    return json.loads(unquoted)


# Emits one metric as the planner would in Lambda (its environment from the template) and prints the EMF.
EMIT = r"""
from segsync.observability import metrics
metrics.add_metric(name="RunsFailed", unit="Count", value=1)
metrics.flush_metrics()
"""


def test_alarms_match_the_emf_the_code_prints_in_lambda(resources):
    # Given the planner's Powertools settings as the template sets them
    planner = _env(resources, "PlannerFunction")
    powertools = {name: value for name, value in planner.items() if name.startswith("POWERTOOLS_")}
    powertools = {name: value for name, value in powertools.items() if isinstance(value, str)}
    [alarm] = [a for a in _of_type(resources, "AWS::CloudWatch::Alarm").values() if a.get("MetricName") == "RunsFailed"]

    # When the library emits a metric in a process with that environment
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    completed = subprocess.run(
        [sys.executable, "-c", EMIT],
        env={**clean, **powertools},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    emf = json.loads(completed.stdout)
    [directive] = emf["_aws"]["CloudWatchMetrics"]

    # Then its namespace and dimensions are the ones the alarm watches
    assert directive["Namespace"] == alarm["Namespace"]
    assert [{"Name": name, "Value": emf[name]} for name in directive["Dimensions"][0]] == alarm["Dimensions"]


# ---------------------------------------------------------------------------------------- least privilege

# What each role may do, by what it is done on: a new grant (or a lost one) must be deliberate here too.
SAM_DYNAMODB_READ = ["BatchGetItem", "DescribeTable", "GetItem", "Query", "Scan"]
SAM_DYNAMODB_CRUD = [
    "BatchGetItem",
    "BatchWriteItem",
    "ConditionCheckItem",
    "DeleteItem",
    "DescribeTable",
    "GetItem",
    "PutItem",
    "Query",
    "Scan",
    "UpdateItem",
]
EXPECTED_GRANTS = {
    "SenderRole": {
        "SenderLogGroup": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "*": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "ChunkQueue": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
        # exactly what segsync.store calls for the sender: no Scan, Query, DeleteItem or DescribeTable
        "RunsTable": ["dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        "SegmentSecretsPrefix": ["secretsmanager:GetSecretValue"],
    },
    "PlannerFunctionRole": {
        "SyncsTable": [f"dynamodb:{a}" for a in SAM_DYNAMODB_READ],
        "RunsTable": [f"dynamodb:{a}" for a in SAM_DYNAMODB_CRUD],
        "ChunkQueue": ["sqs:SendMessage*"],
        "PlannerFailureQueue": ["sqs:SendMessage"],
        "WarehouseSecretsPrefix": ["secretsmanager:GetSecretValue"],
        "NotificationSecretsPrefix": ["secretsmanager:GetSecretValue"],
        # the stack's own topic, and ExtraNotificationTopicArn when given (test_the_planner_may_publish_only...)
        "NotificationTopic": ["sns:Publish"],
        "PlannerFunction": ["lambda:InvokeFunction"],
        # (only when RedshiftDataApiTargets is given: test_redshift_access_is_granted_only_for_listed_targets)
        "RedshiftDataApiTargets": [
            "redshift-data:BatchExecuteStatement",
            "redshift-data:ExecuteStatement",
            "redshift-serverless:GetCredentials",
        ],
        "*": ["redshift-data:CancelStatement", "redshift-data:DescribeStatement", "redshift-data:GetStatementResult"],
        "RedshiftDbUser": ["redshift:GetClusterCredentials"],
        "dbname": ["redshift:GetClusterCredentials"],
    },
    "WebhookRole": {
        "WebhookLogGroup": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "*": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "PlannerFunction": ["lambda:InvokeFunction"],
        "DbtCloudSecretName": ["secretsmanager:GetSecretValue"],
    },
    "PlannerFunctionTickRole": {
        "PlannerFunction": ["lambda:InvokeFunction"],
        "ScheduleDeadLetterQueue": ["sqs:SendMessage"],
    },
}
TARGETS = (
    "SenderLogGroup",
    "WebhookLogGroup",
    "NotificationSecretsPrefix",
    "NotificationTopic",
    "DbtCloudSecretName",
    "PlannerFailureQueue",
    "ScheduleDeadLetterQueue",
    "ChunkQueue",
    "RunsTable",
    "SyncsTable",
    "SegmentSecretsPrefix",
    "WarehouseSecretsPrefix",
    "PlannerFunction",
    "RedshiftDataApiTargets",
    "RedshiftDbUser",
    "dbname",
)


def _target(resource: Any) -> str:
    """Which of the stack's resources a statement's resource names ("*" for everything)."""
    text = json.dumps(resource)
    return next((name for name in TARGETS if name in text), "*" if resource == "*" else text)


def test_each_role_may_do_exactly_what_its_function_does(resources):
    # Given every Allow statement of every role (inline policies and attached policy resources)
    granted: dict[str, dict[str, set[str]]] = {}
    for role, actions, targets in _grants(resources):
        for target in targets:
            granted.setdefault(role, {}).setdefault(_target(target), set()).update(actions)

    # When / Then each role holds exactly the expected actions on exactly the expected resources
    assert {role: {t: sorted(a) for t, a in by.items()} for role, by in granted.items()} == EXPECTED_GRANTS


def test_the_runs_table_keeps_point_in_time_recovery(resources):
    # Given both tables, When / Then both can be restored to any second of the last 35 days
    for table in ("SyncsTable", "RunsTable"):
        recovery = resources[table]["Properties"]["PointInTimeRecoverySpecification"]
        assert recovery == {"PointInTimeRecoveryEnabled": True}


# ---------------------------------------------------------------------------------------- confused deputy


def test_the_sender_is_told_where_it_may_post_and_which_secrets_it_may_read(templates, resources):
    # Given the sender's environment and the stack's parameters
    sender = _env(resources, "SenderFunction")
    parameters = templates["source"]["Parameters"]

    # When / Then the allowed endpoints and the secret prefix come from the deployment, none by default
    assert sender["SEGMENT_ALLOWED_ENDPOINTS"] == {"Ref": "SegmentAllowedEndpoints"}
    assert sender["SEGMENT_SECRETS_PREFIX"] == {"Ref": "SegmentSecretsPrefix"}
    assert parameters["SegmentAllowedEndpoints"]["Default"] == ""
    pattern = re.compile(parameters["SegmentAllowedEndpoints"]["AllowedPattern"])
    assert pattern.match("https://proxy.example.com,http://10.0.0.1:8080/segment")
    assert not pattern.match("https://user:pw@proxy.example.com")


def test_the_planner_is_told_where_warehouse_credentials_may_go_and_which_secrets_it_may_read(templates, resources):
    # Given the planner's environment and the stack's parameters
    planner = _env(resources, "PlannerFunction")
    parameters = templates["source"]["Parameters"]

    # When / Then the allowed hosts and the secret prefix come from the deployment, no host by default
    assert planner["WAREHOUSE_ALLOWED_HOSTS"] == {"Ref": "WarehouseAllowedHosts"}
    assert planner["WAREHOUSE_SECRETS_PREFIX"] == {"Ref": "WarehouseSecretsPrefix"}
    assert parameters["WarehouseAllowedHosts"]["Default"] == ""
    pattern = re.compile(parameters["WarehouseAllowedHosts"]["AllowedPattern"])
    assert pattern.match("db.internal,10.0.0.7:5432,[fd00::7]:5432")
    for refused in ("https://db.internal", "user@db.internal", "db.internal, other.internal"):
        assert not pattern.match(refused)


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == sid)


def test_only_the_planner_may_send_chunks_and_no_queue_answers_without_tls(resources):
    # Given the queue policies
    policies = _of_type(resources, "AWS::SQS::QueuePolicy")
    covered = {q["Ref"] for policy in policies.values() for q in policy["Queues"]}
    [chunk_policy] = [p for p in policies.values() if p["Queues"] == [{"Ref": "ChunkQueue"}]]

    # When / Then SendMessage to the chunk queue is denied to every principal but the planner's role
    # (SQS acting for a caller, as a DLQ move task does, excepted), and every queue denies plain HTTP
    only_planner = _statement(chunk_policy, "OnlyThePlannerSendsChunks")
    assert (only_planner["Effect"], only_planner["Principal"], only_planner["Action"]) == (
        "Deny",
        "*",
        "sqs:SendMessage",
    )
    assert only_planner["Condition"]["ArnNotEquals"] == {
        "aws:PrincipalArn": {"Fn::GetAtt": ["PlannerFunctionRole", "Arn"]}
    }
    assert covered == set(_of_type(resources, "AWS::SQS::Queue"))
    for policy in policies.values():
        tls = _statement(policy, "TlsOnly")
        assert (tls["Effect"], tls["Action"], tls["Condition"]) == (
            "Deny",
            "sqs:*",
            {"Bool": {"aws:SecureTransport": "false"}},
        )


def test_the_dlq_takes_failures_from_the_chunk_queue_only(resources):
    # Given the chunk queue's name and the DLQ's redrive allow policy
    queue = resources["ChunkQueue"]["Properties"]
    allow = resources["ChunkDeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]

    # When / Then only a queue of that name in this account and region may use it (the name is unique
    # per stack: the stack id's UUID), and the name fits SQS's 80 characters
    [arn] = allow["sourceQueueArns"]
    assert allow["redrivePermission"] == "byQueue"
    name_parts = queue["QueueName"]["Fn::Join"][1]
    assert arn["Fn::Join"][1][0]["Fn::Sub"].endswith(":" + name_parts[0] + "-")
    assert arn["Fn::Join"][1][1] == name_parts[1]
    assert len(name_parts[0]) + 1 + 36 <= 80


# ---------------------------------------------------------------------------------------- fan-out and pace


def test_planner_fan_out_is_capped_short_lived_and_its_failures_are_seen(templates, resources):
    # Given the planner, its asynchronous invocation config and the alarms
    planner = resources["PlannerFunction"]["Properties"]
    [config] = _of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    watched = {
        json.dumps(a["Dimensions"][0]["Value"]): a
        for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if "Dimensions" in a
    }

    # When / Then its concurrency is reserved by parameter, a queued invocation expires within a tick,
    # none is retried, and each failed one is recorded in a queue an alarm watches
    assert planner["ReservedConcurrentExecutions"] == {"Ref": "PlannerReservedConcurrency"}
    assert templates["source"]["Parameters"]["PlannerReservedConcurrency"]["MinValue"] >= 1
    assert config["MaximumRetryAttempts"] == 0
    assert 60 <= config["MaximumEventAgeInSeconds"] <= 300
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["PlannerFailureQueue", "Arn"]}
    assert watched[json.dumps({"Fn::GetAtt": ["PlannerFailureQueue", "QueueName"]})]["Threshold"] == 0


def test_alarms_watch_sender_errors_throttles_and_the_oldest_chunk(resources):
    # Given the alarms
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm").values()
    watched = {(a.get("MetricName"), json.dumps(a.get("Dimensions", [{}])[0].get("Value"))): a for a in alarms}

    # When / Then the sender's errors and throttles and the age of the oldest chunk are covered
    sender = json.dumps({"Ref": "SenderFunction"})
    assert ("Errors", sender) in watched
    assert ("Throttles", sender) in watched
    age = watched[("ApproximateAgeOfOldestMessage", json.dumps({"Fn::GetAtt": ["ChunkQueue", "QueueName"]}))]
    assert age["Threshold"] == {"Ref": "ChunkAgeAlarmSeconds"}


def test_chunks_are_cut_for_the_senders_timeout_and_batch_size(resources):
    # Given the sender's timeout and batch size, and the planner's environment
    from segsync.pacing import SENDER_BATCH_SIZE, SENDER_TIMEOUT_S

    [mapping] = [
        m
        for m in _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["FunctionName"] == {"Ref": "SenderFunction"}
    ]
    planner = _env(resources, "PlannerFunction")

    # When / Then the planner's pacing arithmetic uses the template's numbers and the stack's pace cap
    assert resources["SenderFunction"]["Properties"]["Timeout"] == SENDER_TIMEOUT_S
    assert mapping["BatchSize"] == SENDER_BATCH_SIZE
    assert planner["SEGMENT_EVENTS_PER_SECOND"] == {"Ref": "SegmentEventsPerSecond"}


# ---------------------------------------------------------------------------------------- notifications


def test_only_the_planner_reads_notification_webhook_secrets(resources):
    readers = _roles_granting(resources, "secretsmanager:GetSecretValue", "${NotificationSecretsPrefix}*")
    assert readers == {_role_of(resources, "PlannerFunction")}


def test_the_planner_may_publish_only_to_the_stacks_topic_and_the_one_parameter_topic(resources):
    # Given every grant of sns:Publish in the stack
    publishers = [(role, targets) for role, actions, targets in _grants(resources) if "sns:Publish" in actions]

    # When / Then the planner alone may publish, and only to its own topic and ExtraNotificationTopicArn (when
    # given): a topic named in a notifications item is input, never a grant
    assert publishers == [
        (
            _role_of(resources, "PlannerFunction"),
            [
                {
                    "Fn::If": [
                        "HasExtraNotificationTopic",
                        [{"Ref": "NotificationTopic"}, {"Ref": "ExtraNotificationTopicArn"}],
                        [{"Ref": "NotificationTopic"}],
                    ]
                }
            ],
        )
    ]
    planner = _env(resources, "PlannerFunction")
    assert planner["NOTIFICATION_TOPIC_ARN"] == {"Ref": "NotificationTopic"}
    assert planner["EXTRA_NOTIFICATION_TOPIC_ARN"] == {"Ref": "ExtraNotificationTopicArn"}


def test_the_email_subscription_filters_on_the_attribute_the_planner_sets(resources):
    from segsync.notify import EMAIL_ATTRIBUTE

    # Given the optional email subscription and the topic
    subscription = resources["NotificationEmailSubscription"]
    properties = subscription["Properties"]

    # When / Then it exists only with an address, on the stack's topic, and receives only its own messages
    assert subscription["Condition"] == "HasNotificationEmail"
    assert (properties["TopicArn"], properties["Protocol"]) == ({"Ref": "NotificationTopic"}, "email")
    assert properties["FilterPolicyScope"] == "MessageAttributes"
    assert properties["FilterPolicy"] == {EMAIL_ATTRIBUTE: [{"Ref": "NotificationEmail"}]}
    assert resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"


# ---------------------------------------------------------------------------------------- dbt Cloud webhook


def test_the_dbt_cloud_webhook_is_off_unless_enabled(templates, resources):
    # Given the webhook's parameter and every resource the translation made for it
    parameter = templates["source"]["Parameters"]["DbtCloudWebhook"]
    webhook = {name: r for name, r in resources.items() if name.startswith("Webhook")}

    # When / Then it is disabled by default, and each of its resources exists only when it is enabled
    assert (parameter["Default"], parameter["AllowedValues"]) == ("disabled", ["enabled", "disabled"])
    assert templates["translated"]["Conditions"]["HasDbtCloudWebhook"] == {
        "Fn::Equals": [{"Ref": "DbtCloudWebhook"}, "enabled"]
    }
    assert {"WebhookFunction", "WebhookRole", "WebhookLogGroup", "WebhookFunctionUrl"} <= set(webhook)
    assert {name: r.get("Condition") for name, r in webhook.items()} == dict.fromkeys(webhook, "HasDbtCloudWebhook")
    assert templates["translated"]["Outputs"]["DbtCloudWebhookUrl"]["Condition"] == "HasDbtCloudWebhook"


def test_the_webhook_may_only_start_the_planner_and_read_its_own_secret(resources):
    # Given the webhook function's role
    role = _of_type(resources, "AWS::IAM::Role")[_role_of(resources, "WebhookFunction")]

    # When we list its grants
    grants = sorted((tuple(actions), json.dumps(targets)) for actions, targets in _statements(role))

    # Then it writes its logs and traces, invokes the planner and reads its one secret: no table, queue or
    # other secret (the planner maps models to syncs)
    secret = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${DbtCloudSecretName}-??????"
    assert grants == sorted(
        [
            (("logs:CreateLogStream", "logs:PutLogEvents"), json.dumps([{"Fn::GetAtt": ["WebhookLogGroup", "Arn"]}])),
            (("xray:PutTraceSegments", "xray:PutTelemetryRecords"), json.dumps(["*"])),
            (("lambda:InvokeFunction",), json.dumps([{"Fn::GetAtt": ["PlannerFunction", "Arn"]}])),
            (("secretsmanager:GetSecretValue",), json.dumps([{"Fn::Sub": secret}])),
        ]
    )
    assert role.get("ManagedPolicyArns", []) == []


def test_the_webhook_url_is_public_because_the_signature_is_its_authentication(resources):
    # Given the function URL and the permissions SAM made for it
    url = resources["WebhookFunctionUrl"]["Properties"]
    permissions = [
        p
        for p in _of_type(resources, "AWS::Lambda::Permission").values()
        if p["FunctionName"] == {"Ref": "WebhookFunction"}
    ]

    # When / Then anyone may call the URL (dbt Cloud has no AWS identity), and only through the URL
    assert url == {"TargetFunctionArn": {"Ref": "WebhookFunction"}, "AuthType": "NONE"}
    assert sorted((p["Action"], p.get("FunctionUrlAuthType"), p.get("InvokedViaFunctionUrl")) for p in permissions) == [
        ("lambda:InvokeFunction", None, True),
        ("lambda:InvokeFunctionUrl", "NONE", None),
    ]


def test_the_webhook_gets_the_settings_it_reads(resources):
    from segsync.settings import WebhookSettings

    env = _env(resources, "WebhookFunction")
    assert env["PLANNER_FUNCTION"] == {"Ref": "PlannerFunction"}
    assert env["DBT_CLOUD_SECRET"] == {"Ref": "DbtCloudSecretName"}
    assert env["DBT_CLOUD_API"] == {"Ref": "DbtCloudApiBase"}
    required = {name.upper() for name, field in WebhookSettings.model_fields.items() if field.is_required()}
    assert required <= set(env)


def test_redshift_access_is_granted_only_for_listed_targets(templates, resources):
    # Given the planner's Redshift policy and the parameter that lists clusters and workgroups
    policy = resources["PlannerRedshiftPolicy"]
    parameter = templates["source"]["Parameters"]["RedshiftDataApiTargets"]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_id = [s for s in statements if "redshift-data:DescribeStatement" in s["Action"]]

    # When / Then none is granted by default, statements run only on the listed targets, and a statement
    # is read back by id only when the planner owns it
    assert parameter["Default"] == "" and policy["Condition"] == "HasRedshiftTargets"
    assert statements[0]["Resource"] == {"Ref": "RedshiftDataApiTargets"}
    assert by_id[0]["Condition"] == {
        "StringEquals": {"redshift-data:statement-owner-iam-userid": {"Fn::Sub": "${!aws:userid}"}}
    }
