"""Sleeps through its first init (longer than the init limit), then imports at once."""

import os
import time

MARKER = os.environ["INIT_MARKER"]
if not os.path.exists(MARKER):
    open(MARKER, "w").close()
    time.sleep(float(os.environ.get("SLOW_INIT_SECONDS", "30")))


def handler(event, context):
    return {"pid": os.getpid()}
