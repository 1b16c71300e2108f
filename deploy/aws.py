"""The AWS boundary: boto3 clients are built here and botocore errors become DeployErrors here.

boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), so the same code talks to AWS or to
a local moto server without a branch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from deploy.errors import AwsError, DeployError, ResourceNotFound

# Error codes that mean "the thing you named does not exist" rather than "AWS failed".
_NOT_FOUND_CODES = {
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "ResourceNotFoundException",  # CloudWatch Logs: no such log group or stream (yet)
}
_INVALID_CODES = {"InvalidParameterException", "ClientException", "ValidationException", "ValidationError"}


def client(service: str, region: str | None = None):
    """A boto3 client for `service` (the one place clients are built)."""
    import boto3

    return boto3.client(service, region_name=region) if region else boto3.client(service)


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn botocore exceptions raised while doing `action` into the project's DeployErrors."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
    )
    from botocore.parsers import ResponseParserError

    from deploy.errors import InvalidInput

    try:
        yield
    except DeployError:
        raise
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
        text = f"{action}: {code}: {message}"
        if code in _NOT_FOUND_CODES:
            raise ResourceNotFound(text) from None
        if code in _INVALID_CODES:
            raise InvalidInput(text) from None
        raise AwsError(text) from None
    except NoCredentialsError:
        raise AwsError(f"{action}: no AWS credentials (set AWS_PROFILE or the AWS_* variables)") from None
    except NoRegionError:
        raise AwsError(f"{action}: no AWS region (set AWS_REGION)") from None
    except EndpointConnectionError as exc:
        raise AwsError(f"{action}: cannot reach AWS: {exc}") from None
    except ParamValidationError as exc:
        raise InvalidInput(f"{action}: {' '.join(str(exc).split())}") from None
    except BotoCoreError as exc:
        raise AwsError(f"{action}: {exc}") from None
    except ResponseParserError as exc:  # an endpoint answered something that is not its API
        raise AwsError(f"{action}: the endpoint's answer was not understood: {str(exc).splitlines()[0]}"
                       ) from None
