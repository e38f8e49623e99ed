"""The nightly report: notes that it ran, and the event it ran on."""

import json
import os


def lambda_handler(event, context):
    with open(os.environ["OUT_FILE"], "a") as out:
        out.write(json.dumps({"function": context.function_name, "event": event}) + "\n")
