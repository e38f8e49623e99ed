"""Test handler: what the filesystem lets a function do, reported back."""

import os


def handler(event, context):
    marker = os.path.join("/tmp", event["marker"])
    with open(marker, "w") as out:
        out.write("mine")
    try:
        with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "written.txt"), "w") as out:
            out.write("x")
        code_writable = True
    except OSError:
        code_writable = False
    stats = os.statvfs("/tmp")
    return {
        "home": os.environ.get("HOME"),
        "tmpdir": os.environ.get("TMPDIR"),
        "tmp_mb": stats.f_blocks * stats.f_frsize // (1024 * 1024),
        "code_writable": code_writable,
        "sees": sorted(os.listdir("/tmp")),
        "private": [k for k in os.environ if k.startswith("_LOCAL_RUNTIME")],
    }
