"""The Lambda context object handed to handlers, with a real remaining-time clock."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

# Set by the runtime for each execution environment, read back by the worker, as on AWS.
LOG_GROUP_VARIABLE = "AWS_LAMBDA_LOG_GROUP_NAME"
LOG_STREAM_VARIABLE = "AWS_LAMBDA_LOG_STREAM_NAME"


@dataclass
class CognitoIdentity:
    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass
class LambdaContext:
    """Mirrors the attributes of AWS's Python LambdaContext (awslambdaric).

    As there, `memory_limit_in_mb` is the string from AWS_LAMBDA_FUNCTION_MEMORY_SIZE and the
    log group and stream come from the execution environment's variables.
    """

    function_name: str
    memory_limit_in_mb: str
    aws_request_id: str
    deadline_ms: int
    invoked_function_arn: str
    function_version: str = "$LATEST"
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: object | None = None
    tenant_id: str | None = None

    @property
    def log_group_name(self) -> str:
        return os.environ.get(LOG_GROUP_VARIABLE, f"/aws/lambda/{self.function_name}")

    @property
    def log_stream_name(self) -> str:
        return os.environ.get(LOG_STREAM_VARIABLE) or log_stream_name(self.function_version)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))

    def log(self, message: object) -> None:
        """Write to the function's log, like awslambdaric's context.log()."""
        print(message, end="", flush=True)


def log_stream_name(version: str = "$LATEST") -> str:
    """Shaped like Lambda's: date/[version]id; call once per execution environment."""
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{version}]{uuid.uuid4().hex}"
