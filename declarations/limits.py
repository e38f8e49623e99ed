"""The limits AWS enforces on Lambda functions and their Amazon MQ event source mappings.

One table, read by the local runtime (which refuses what AWS would refuse) and by deploy.
Figures are from the Lambda quotas page and the CreateFunction / CreateEventSourceMapping API
references.
"""

from __future__ import annotations

import re

# Functions
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 1, 900  # whole seconds
DEFAULT_TIMEOUT_SECONDS = 3
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10_240
DEFAULT_MEMORY_MB = 128
MIN_EPHEMERAL_MB, MAX_EPHEMERAL_MB = 512, 10_240
DEFAULT_EPHEMERAL_MB = 512
MAX_ENVIRONMENT_BYTES = 4096  # every name and value together
MAX_FUNCTION_NAME = 64
FUNCTION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VARIABLE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
HANDLER_PATTERN = re.compile(r"^[^\s]+$")  # Lambda's own pattern: any non-blank text
INIT_TIMEOUT_SECONDS = 10  # the init phase of an on-demand environment
PYTHON_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13", "python3.14")
LOG_FORMATS = ("Text", "JSON")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
# Set by Lambda itself: a function configuration that declares one is refused.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

# Amazon MQ (RabbitMQ) event source mappings
MIN_BATCH_SIZE, MAX_BATCH_SIZE = 1, 10_000
DEFAULT_BATCH_SIZE = 100
MAX_BATCHING_WINDOW_SECONDS = 300  # whole seconds
DEFAULT_BATCHING_WINDOW_SECONDS = 0.5  # what AWS uses for Amazon MQ when the field is left out
MAX_QUEUES_PER_MAPPING = 1
MAX_FILTERS = 5
MAX_FILTER_PATTERN_BYTES = 4096
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a synchronous invocation's payload, so an event's size
# Lambda stops waiting for an MQ-triggered invocation after 14 minutes and retries it, even
# though the function's own timeout may be up to 15.
MQ_INVOCATION_WAIT_SECONDS = 840

# API Gateway (REST): the largest request payload it passes to a function.
MAX_API_PAYLOAD_BYTES = 10 * 1024 * 1024

# The local runtime's own knob: how many execution environments one mapping may use.
MAX_LOCAL_CONCURRENCY = 64
