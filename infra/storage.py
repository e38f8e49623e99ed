"""The S3 bucket the stack's code and template are read from, filled by content hash.

An object's key is its SHA-256, so an unchanged zip is found with one HEAD and not sent
again, and a template names exactly the bytes it was built with.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from infra.errors import DeployError
from infra.package import Artifact

LOGGER = logging.getLogger(__name__)
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
OWNED_TAG = {"Key": "managed-by", "Value": "credit-infra"}


def default_bucket(account: str, region: str) -> str:
    return f"credit-deploy-{account}-{region}"


@dataclass
class Bucket:
    """Uploads by content hash; `uploaded` lists the keys this run actually sent."""

    s3: Any
    name: str
    prefix: str
    uploaded: list[str] = field(default_factory=list)

    def ensure(self, region: str) -> None:
        """Create the bucket (private, tagged) unless it is there already."""
        try:
            self.s3.head_bucket(Bucket=self.name)
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in NOT_FOUND:
                raise DeployError(f"bucket {self.name}: {exc}") from exc
        LOGGER.info("creating bucket %s", self.name)
        arguments: dict[str, Any] = {"Bucket": self.name}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.s3.create_bucket(**arguments)
        self.s3.put_public_access_block(
            Bucket=self.name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self.s3.put_bucket_tagging(Bucket=self.name, Tagging={"TagSet": [OWNED_TAG]})

    def code(self, artifact: Artifact) -> dict[str, str]:
        """Where CloudFormation finds the artifact: uploaded only if its hash is new."""
        key = f"{self.prefix}/code/{artifact.sha256}.zip"
        self._put(key, artifact.path.read_bytes())
        return {"Bucket": self.name, "Key": key}

    def template(self, body: str, region: str) -> str:
        """The template's URL (TemplateURL takes up to 1 MB, TemplateBody only 51,200 bytes)."""
        data = body.encode()
        key = f"{self.prefix}/templates/{hashlib.sha256(data).hexdigest()}.json"
        self._put(key, data)
        host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
        return f"https://{self.name}.{host}/{key}"

    def _put(self, key: str, data: bytes) -> None:
        if self._exists(key):
            LOGGER.info("s3://%s/%s is there already", self.name, key)
            return
        self.s3.put_object(Bucket=self.name, Key=key, Body=data)
        self.uploaded.append(key)

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in NOT_FOUND:
                return False
            raise DeployError(f"s3://{self.name}/{key}: {exc}") from exc
        return True
