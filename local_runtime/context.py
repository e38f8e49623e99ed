"""The Lambda context object handed to handlers, with a real remaining-time clock."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from local_runtime.events import LOCAL_ACCOUNT, LOCAL_REGION


@dataclass
class CognitoIdentity:
    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass
class LambdaContext:
    """Mirrors the attributes of AWS's Python LambdaContext."""

    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    region: str = LOCAL_REGION
    account: str = LOCAL_ACCOUNT
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: object | None = None

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return log_stream_name(self.function_version)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


_STREAM_ID = uuid.uuid4().hex


def log_stream_name(version: str = "$LATEST") -> str:
    """Shaped like Lambda's: date/[version]id, one stream per execution environment."""
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{version}]{_STREAM_ID}"
