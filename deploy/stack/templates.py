"""Where a template too large to send inline goes: a bucket of the deployer's own, as `sam deploy` does.

CloudFormation takes at most 51,200 bytes of TemplateBody; a larger template is read from S3
(TemplateURL). The stack cannot hold that bucket itself (a first deploy has no stack yet), so
`scripts/stack` makes one per account and region when it first needs it: private (public access
blocked), encrypted, its objects expiring after 30 days. A template's key is its sha256, so an unchanged
template is uploaded once.
"""

from __future__ import annotations

import hashlib

from deploy.aws import aws_errors

# CloudFormation's limit on TemplateBody, in bytes.
BODY_LIMIT = 51_200
EXPIRE_DAYS = 30


def bucket_name(account: str, region: str) -> str:
    """The templates bucket of an account and region (S3 names are global, so both are in it)."""
    return f"mlops-stack-templates-{account}-{region}"


class TemplateBucket:
    """Uploads templates for TemplateURL; `s3` and `sts` are boto3 clients (STS names the account)."""

    def __init__(self, s3, sts, region: str, name: str | None = None):
        self.s3, self.sts, self.region, self._name = s3, sts, region, name

    @property
    def name(self) -> str:
        if self._name is None:
            with aws_errors("read the caller's account (sts get-caller-identity)"):
                self._name = bucket_name(self.sts.get_caller_identity()["Account"], self.region)
        return self._name

    def source(self, stack: str, body: str) -> dict:
        """CreateChangeSet's template argument: TemplateBody when it fits, else a TemplateURL here."""
        if len(body.encode()) <= BODY_LIMIT:
            return {"TemplateBody": body}
        return {"TemplateURL": self.put(stack, body)}

    def put(self, stack: str, body: str) -> str:
        """Upload `body` (once per content) and return its URL."""
        self.ensure()
        key = f"{stack}/{hashlib.sha256(body.encode()).hexdigest()}.json"
        with aws_errors(f"upload the template to s3://{self.name}/{key}"):
            self.s3.put_object(Bucket=self.name, Key=key, Body=body.encode(), ContentType="application/json")
        return f"https://{self.name}.s3.{self.region}.amazonaws.com/{key}"

    def ensure(self) -> None:
        """Create the bucket, locked down, unless it exists."""
        from botocore.exceptions import ClientError

        with aws_errors(f"look for the templates bucket {self.name}"):
            try:
                self.s3.head_bucket(Bucket=self.name)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
        with aws_errors(f"create the templates bucket {self.name}"):
            location = {} if self.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": self.region}}
            self.s3.create_bucket(Bucket=self.name, **location)
            self.s3.put_public_access_block(Bucket=self.name, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            self.s3.put_bucket_encryption(Bucket=self.name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
            self.s3.put_bucket_lifecycle_configuration(Bucket=self.name, LifecycleConfiguration={"Rules": [{
                "ID": "expire-templates", "Status": "Enabled", "Filter": {"Prefix": ""},
                "Expiration": {"Days": EXPIRE_DAYS}}]})
