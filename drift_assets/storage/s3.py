"""S3 (and S3-compatible: MinIO, Ceph, moto) access for the storage layer.

Two clients talk to the same bucket, configured from the same settings:

- pyarrow's ``S3FileSystem`` streams tables (ranged GETs of parquet row groups, multipart uploads);
- dagster-aws's ``S3Resource`` (boto3) checks the bucket at the start of a run and uploads files
  that are produced on local disk first (Evidently HTML reports), with a content type.

Credentials are never passed around by this module: both clients use the standard AWS chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and
``~/.aws/{credentials,config}``, instance or container roles) unless the S3Resource was given keys
explicitly (as Dagster ``EnvVar``s). Error messages name the bucket and key and the error code,
never a secret.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import pyarrow.fs as pafs

# Checked in this order: the project's own variable, then the AWS SDKs' standard ones.
ENDPOINT_ENV_VARS = ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_ENV_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# pyarrow's client: a stopped server (connection refused) fails in about a second; a server that
# accepts but stalls fails after REQUEST_TIMEOUT seconds without a byte (per attempt, measured on
# Linux, where the SDK applies it as curl's low-speed limit), so at most ~MAX_ATTEMPTS x 20 s.
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 20.0
MAX_ATTEMPTS = 3


def endpoint_from_env() -> str | None:
    for name in ENDPOINT_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def region_from_env() -> str | None:
    for name in REGION_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def s3_filesystem(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for AWS or an S3-compatible endpoint (``http://127.0.0.1:9000``).

    Without keys, pyarrow's AWS SDK reads the standard credential chain itself.
    """
    kwargs: dict = {
        "connect_timeout": CONNECT_TIMEOUT,
        "request_timeout": REQUEST_TIMEOUT,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts),
    }
    if region:
        kwargs["region"] = region
    if endpoint_url:
        parsed = urlparse(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
        if not parsed.hostname:
            raise ValueError(f"S3 endpoint URL {endpoint_url!r} has no host")
        kwargs["scheme"] = parsed.scheme or "https"
        kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
    if access_key or secret_key:
        kwargs.update(access_key=access_key, secret_key=secret_key, session_token=session_token)
    return pafs.S3FileSystem(**kwargs)


def filesystem_for_uri(location: str) -> tuple[pafs.S3FileSystem, str]:
    """The filesystem and in-filesystem path of ``s3://bucket/key``, endpoint and region from the
    environment (``S3_ENDPOINT_URL``, ``AWS_REGION``). On AWS without a configured region, the
    bucket's own region is looked up (what ``FileSystem.from_uri`` does)."""
    bucket, key = split_s3_uri(location)
    endpoint, region = endpoint_from_env(), region_from_env()
    if not endpoint and not region:
        with contextlib.suppress(OSError, ValueError):
            region = pafs.resolve_s3_region(bucket)
    return s3_filesystem(endpoint_url=endpoint, region=region), f"{bucket}/{key}".rstrip("/")


def split_s3_uri(location: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` (or ``bucket/some/key``) -> ``("bucket", "some/key")``."""
    rest = location.removeprefix("s3://").lstrip("/")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{location!r}: no bucket in the S3 location")
    return bucket, key


def is_s3(filesystem: pafs.FileSystem) -> bool:
    return filesystem.type_name == "s3"


def display_path(filesystem: pafs.FileSystem, path: str) -> str:
    """How a path inside ``filesystem`` is shown to users: ``s3://bucket/key`` on S3."""
    return f"s3://{path}" if is_s3(filesystem) and not path.startswith("s3://") else path


# --------------------------------------------------------------------------- errors
class S3StorageError(OSError):
    """An S3 operation failed. ``str()`` names ``s3://bucket/key`` and the error code."""

    def __init__(self, message: str, *, uri: str, code: str | None) -> None:
        super().__init__(message)
        self.uri, self.code = uri, code

    def __str__(self) -> str:  # OSError's own __str__ would print the args tuple
        return self.args[0]


class S3NotFoundError(S3StorageError, FileNotFoundError):
    """The bucket or key does not exist."""


_AWS_CODE = re.compile(r"AWS Error (\w+)|An error occurred \((\w+)\)")
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NO_SUCH_KEY", "NO_SUCH_BUCKET", "RESOURCE_NOT_FOUND", "404"}
_DENIED_CODES = {
    "AccessDenied",
    "ACCESS_DENIED",
    "InvalidAccessKeyId",
    "INVALID_ACCESS_KEY_ID",
    "SignatureDoesNotMatch",
    "SIGNATURE_DOES_NOT_MATCH",
    "403",
    "ExpiredToken",
    "UNRECOGNIZED_CLIENT",
}
_NETWORK_CODES = {
    "NETWORK_CONNECTION",
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "REQUEST_TIMEOUT",
    "ConnectionClosedError",
}


def error_code(exc: BaseException) -> str | None:
    """The S3/AWS error code of a pyarrow or botocore exception, if it carries one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "") or None
    try:
        from botocore import exceptions as bx

        if isinstance(
            exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionClosedError)
        ):
            return type(exc).__name__
        if isinstance(exc, bx.NoCredentialsError):
            return "NoCredentials"
    except ImportError:  # pragma: no cover - boto3 is a dependency of dagster-aws
        pass
    match = _AWS_CODE.search(str(exc))
    if match:
        return match.group(1) or match.group(2)
    if isinstance(exc, FileNotFoundError):
        return "NoSuchKey"
    return None


def redact(text: str) -> str:
    """Remove secret values (if some library echoed one) from a message."""
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def _hint(code: str | None) -> str:
    if code in _NOT_FOUND_CODES:
        return "does not exist"
    if code in _DENIED_CODES:
        return (
            "access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and "
            "the bucket policy"
        )
    if code in _NETWORK_CODES:
        return "cannot reach the S3 endpoint"
    if code == "NoCredentials":
        return "no AWS credentials found (environment, ~/.aws, instance role)"
    return "S3 error"


def describe(exc: BaseException, uri: str, action: str) -> S3StorageError:
    """An S3StorageError for ``exc`` raised while ``action``-ing ``uri`` (s3://bucket/key)."""
    if isinstance(exc, S3StorageError):
        return exc
    code = error_code(exc)
    endpoint = endpoint_from_env()
    where = f" at {endpoint}" if endpoint and code in _NETWORK_CODES else ""
    detail = redact(" ".join(str(exc).split()))[:400]
    message = f"{uri}: cannot {action}: {_hint(code)}{where} [{code or type(exc).__name__}] ({detail})"
    cls = S3NotFoundError if code in _NOT_FOUND_CODES else S3StorageError
    return cls(message, uri=uri, code=code)


@contextlib.contextmanager
def s3_errors(uri: str, action: str) -> Iterator[None]:
    """Re-raise pyarrow/botocore errors as S3StorageError naming ``uri`` and the error code."""
    try:
        yield
    except S3StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - filtered below
        if isinstance(exc, OSError) or _is_boto_error(exc):
            raise describe(exc, uri, action) from exc
        raise


def _is_boto_error(exc: BaseException) -> bool:
    try:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (BotoCoreError, ClientError, Boto3Error))


# --------------------------------------------------------------------------- boto3 (dagster-aws) helpers
def check_bucket(client, bucket: str) -> None:
    """``head_bucket``: fail early, naming the bucket, when it is missing, forbidden or unreachable."""
    with s3_errors(f"s3://{bucket}", "access bucket"):
        client.head_bucket(Bucket=bucket)


def upload_file(client, local_path: str, uri: str, content_type: str | None = None) -> str:
    """Upload a local file to ``s3://bucket/key`` (multipart for large files; atomic per object)."""
    bucket, key = split_s3_uri(uri)
    extra = {"ContentType": content_type} if content_type else None
    with s3_errors(f"s3://{bucket}/{key}", "upload"):
        client.upload_file(str(local_path), bucket, key, ExtraArgs=extra)
    return f"s3://{bucket}/{key}"
