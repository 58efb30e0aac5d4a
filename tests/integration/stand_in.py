"""Pieces of stand-in CloudFormation stacks, created in moto where the SAM template cannot be."""

from __future__ import annotations

from typing import Any


def table_resource(keys: tuple[str, str]) -> dict[str, Any]:
    """A DynamoDB table keyed as segsync's syncs or runs table."""
    return {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in keys],
            "KeySchema": [
                {"AttributeName": keys[0], "KeyType": "HASH"},
                {"AttributeName": keys[1], "KeyType": "RANGE"},
            ],
        },
    }
