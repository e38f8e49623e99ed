"""Greets whoever the path names (API Gateway's REST proxy event, payload 1.0)."""

import json
import os


def handler(event, context):
    name = event["pathParameters"]["name"]
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({os.environ["GREETING"]: name, "method": event["httpMethod"]}),
    }
