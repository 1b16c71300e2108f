"""The stack's model bucket as `scripts/stack destroy` sees it: how many model versions, and emptying it."""

from __future__ import annotations

from deploy.aws import aws_errors


class ModelBucket:
    """The store bucket of a stack (`s3` is a boto3 S3 client, `uri` the stack's ModelStore output)."""

    def __init__(self, s3, bucket: str, uri: str):
        self.s3, self.bucket, self.uri = s3, bucket, uri

    def count(self) -> int:
        """Published model versions anywhere in the bucket (a version is complete once its manifest is)."""
        found = 0
        with aws_errors(f"list the model bucket {self.bucket}"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                found += sum(1 for o in page.get("Contents", [])
                             if o["Key"].endswith("/manifest.json") and "/versions/" in o["Key"])
        return found

    def empty(self) -> int:
        """Delete every object version and delete marker (the bucket is versioned); how many."""
        removed = 0
        with aws_errors(f"empty the model bucket {self.bucket}"):
            for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket):
                keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                for start in range(0, len(keys), 1000):
                    self.s3.delete_objects(Bucket=self.bucket,
                                           Delete={"Objects": keys[start:start + 1000], "Quiet": True})
                removed += len(keys)
        return removed
