"""Test handlers whose results and errors Lambda marshals and classifies in its own way."""

import datetime
import decimal


def decimal_result(event, context):
    return {"amount": decimal.Decimal("1.50"), "tiny": decimal.Decimal("1E-7")}


def bytes_result(event, context):
    return b"\x00raw\xff"


def unmarshallable(event, context):
    return {"when": datetime.datetime(2026, 1, 1)}


def raises_type_error(event, context):
    return len(5)


def logs(event, context):
    import logging

    logging.getLogger("orders").info("order %s seen", "o-1", extra={"order": "o-1"})
    logging.getLogger().debug("debug detail")
    print("plain print")
    return {"ok": True}
