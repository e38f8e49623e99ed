"""Prints and returns the environment its execution environment was given."""

import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    environment = dict(os.environ)
    print("ENVIRONMENT " + json.dumps(environment, sort_keys=True))
    with open(environment["RECORD_FILE"], "a") as out:
        out.write(json.dumps({"function": context.function_name, "environment": environment}))
        out.write("\n")
    return environment
