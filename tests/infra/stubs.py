"""A Stubber-backed stand-in for Lambda's Amazon MQ event source mappings, which moto refuses.

Every request still goes through botocore's Stubber, so its parameters are validated against
the real Lambda API model; what the requests did is remembered, so a later list call returns
the mappings as AWS would.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from botocore.stub import ANY, Stubber

ACCOUNT = "123456789012"
LISTED_FIELDS = (
    "EventSourceArn",
    "Queues",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "SourceAccessConfigurations",
)


class MappingStubs:
    """Queue the responses a deploy or teardown will ask for, in the order it asks."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.stubber = Stubber(client)
        self.mappings: dict[str, dict[str, Any]] = {}  # UUID -> mapping as AWS lists it
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._next_ids: deque[str] = deque()
        client.meta.events.register("before-parameter-build.lambda.*", self._record)
        self.stubber.activate()

    def expect_create(
        self, function_name: str, queue: str, batch_size: int = 100, window: int | None = 0
    ) -> None:
        """window: the MaximumBatchingWindowInSeconds expected (the repository's functions
        declare 0); None when the declaration keeps AWS's 0.5 s default and omits it."""
        expected = {
            "FunctionName": function_name,
            "EventSourceArn": ANY,
            "Queues": [queue],
            "BatchSize": batch_size,
            "Enabled": True,
            "SourceAccessConfigurations": ANY,
        }
        if window is not None:
            expected["MaximumBatchingWindowInSeconds"] = window
        mapping_id = str(uuid.uuid4())
        self._next_ids.append(mapping_id)
        response = {"UUID": mapping_id, "Queues": [queue], "BatchSize": batch_size}
        self.stubber.add_response("create_event_source_mapping", response, expected)

    def expect_list(self, function_name: str) -> None:
        listed = [
            m for m in self.mappings.values() if m["FunctionArn"].endswith(f":{function_name}")
        ]
        self.stubber.add_response(
            "list_event_source_mappings",
            {"EventSourceMappings": listed},
            {"FunctionName": function_name},
        )

    def expect_update(self, mapping_id: str, **expected: Any) -> None:
        expected = {"UUID": mapping_id, "FunctionName": ANY, "Enabled": True, **expected}
        expected.setdefault("BatchSize", ANY)
        expected.setdefault("SourceAccessConfigurations", ANY)
        self.stubber.add_response("update_event_source_mapping", {"UUID": mapping_id}, expected)

    def expect_delete(self, function_name: str) -> None:
        for mapping in self.of(function_name):
            mapping_id = mapping["UUID"]
            self.stubber.add_response(
                "delete_event_source_mapping",
                {"UUID": mapping_id, "State": "Deleting"},
                {"UUID": mapping_id},
            )

    def of(self, function_name: str) -> list[dict[str, Any]]:
        return [m for m in self.mappings.values() if m["FunctionArn"].endswith(f":{function_name}")]

    def requested(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.requests if name == operation]

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.name, dict(params)))
        if model.name == "CreateEventSourceMapping" and self._next_ids:
            arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{params['FunctionName']}"
            mapping = {key: params[key] for key in LISTED_FIELDS if key in params}
            mapping_id = self._next_ids.popleft()
            self.mappings[mapping_id] = {
                "UUID": mapping_id,
                "FunctionArn": arn,
                "State": "Enabled",
                **mapping,
            }
        elif model.name == "UpdateEventSourceMapping" and params["UUID"] in self.mappings:
            changed = {key: params[key] for key in LISTED_FIELDS if key in params}
            self.mappings[params["UUID"]].update(changed)
        elif model.name == "DeleteEventSourceMapping":
            self.mappings.pop(params["UUID"], None)
