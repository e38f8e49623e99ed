"""Records each order it is given; an order without an id fails the batch, as a bug would."""

import base64
import json
import os


def handler(event, context):
    orders = []
    for messages in event["rmqMessagesByQueue"].values():
        for message in messages:
            orders.append(json.loads(base64.b64decode(message["data"])))
    if any("id" not in order for order in orders):
        raise ValueError("an order without an id")
    with open(os.environ["OUT_FILE"], "a") as out:
        out.write(
            json.dumps(
                {
                    "function": context.function_name,
                    "arn": context.invoked_function_arn,
                    "source": event["eventSourceArn"],
                    "queues": list(event["rmqMessagesByQueue"]),
                    "orders": [order["id"] for order in orders],
                    "table": os.environ["TABLE_NAME"],
                    "stage": os.environ["STAGE"],
                    "discount": os.environ["DISCOUNT"],
                }
            )
            + "\n"
        )
    return {"processed": len(orders)}
