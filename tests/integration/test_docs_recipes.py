"""The secret recipes of the deployment guide, run as written: each makes a secret segsync can use.

``docs/deploy.md`` tells readers to make the Snowflake key pair and the dbt Cloud secret with openssl, jq and
the AWS CLI. Each block (named ``<!-- test: NAME -->`` in the page) runs here in bash, as written, in a
temporary directory; ``aws`` is ``tests/aws_cli.py``, which checks the command against botocore's model and
makes the call with boto3 against moto's server. Then segsync reads the secret the recipe stored, as the
functions would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from segsync.local.stack import moto_endpoint
from segsync.warehouse.snowflake import _auth
from segsync.webhook import WebhookSecret

from ..markdown import DOCS, ROOT, RUN_BY, blocks

PAGE = DOCS / "deploy.md"
RECIPES = {tag for tag, test in RUN_BY.items() if test == f"tests/integration/{Path(__file__).name}"}


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's server, empty, as the AWS the recipes' ``aws`` commands and boto3 here reach."""
    endpoint = moto_endpoint()
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


def _run(tag: str, directory: Path, **env: str) -> None:
    """Run the block named ``tag`` as written, in bash, with ``aws`` as tests/aws_cli.py."""
    (block,) = [b for b in blocks(PAGE) if b.tag == tag]
    script = "\n".join(["set -euo pipefail", f'aws() {{ "{sys.executable}" -m tests.aws_cli "$@"; }}', *block.lines])
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{block.where}: {done.stderr}"


def _secret(name: str) -> str:
    return boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]


def test_every_recipe_the_page_names_is_run_here():
    assert {b.tag for b in blocks(PAGE) if b.tag} == RECIPES == {"snowflake-key-pair", "dbt-cloud-secret"}


def test_the_snowflake_key_pair_recipe_stores_a_key_the_planner_can_sign_in_with(secrets_manager, tmp_path):
    # Given a passphrase, as the recipe expects it in the environment
    passphrase = "correct horse battery staple"

    # When the recipe runs as written
    _run("snowflake-key-pair", tmp_path, KEY_PASSPHRASE=passphrase)

    # Then the secret it stored opens, with its passphrase, into the key whose public half goes to Snowflake
    login = _auth(_secret("segsync/warehouse/snowflake"))
    private_key = serialization.load_der_private_key(login["private_key"], password=None)
    public = (tmp_path / "segsync_key.pub").read_bytes()
    assert (
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public
    )
    # And the private key file is gone: the secret is the only copy
    assert not (tmp_path / "segsync_key.p8").exists()


def test_the_dbt_cloud_recipe_stores_the_secret_the_webhook_reads(secrets_manager, tmp_path):
    # Given the webhook's secret token and an API token, as dbt Cloud gives them
    token, api = "whsec-from-dbt-cloud", "dbtc_service_token"

    # When the recipe runs as written
    _run("dbt-cloud-secret", tmp_path, DBT_WEBHOOK_SECRET=token, DBT_CLOUD_TOKEN=api)

    # Then the webhook function reads both from the secret the stack names by default
    default_name = "segsync/dbt-cloud"
    assert f"Default: {default_name}" in (ROOT / "template.yaml").read_text().split("DbtCloudSecretName:")[1][:200]
    keys = WebhookSecret.model_validate_json(_secret(default_name))
    assert (keys.webhook_secret, keys.api_token) == (token, api)
