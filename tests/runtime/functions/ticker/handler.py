"""Test function: records every event it is given; an event with "fail": true raises."""

import json
import os


def handler(event, context):
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps({"kind": "invoke", "event": event, "pid": os.getpid()}) + "\n")
    if isinstance(event, dict) and event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
