"""The boto3 clients deploy and teardown use, passed in as one argument (the test seam)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_mq import MQClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"})


@dataclass(frozen=True)
class Clients:
    """One client per service; `mappings` is a Lambda client used only for event source mappings.

    In production `mappings` is the same client as `lambda_`. Tests give it a separate client
    wrapped in botocore's Stubber, because moto does not support Amazon MQ mappings.
    """

    iam: IAMClient
    secrets: SecretsManagerClient
    mq: MQClient
    lambda_: LambdaClient
    mappings: LambdaClient

    @classmethod
    def from_session(cls, session: boto3.Session) -> Clients:
        lambda_client = session.client("lambda", config=RETRIES)
        return cls(
            iam=session.client("iam", config=RETRIES),
            secrets=session.client("secretsmanager", config=RETRIES),
            mq=session.client("mq", config=RETRIES),
            lambda_=lambda_client,
            mappings=lambda_client,
        )
