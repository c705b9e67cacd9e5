"""Keep boto3 to what a test gives it: no instance metadata service, empty shared config
files, and no credentials or region from the environment of whoever runs the tests."""

from __future__ import annotations

import os
import tempfile


def offline_aws_environment() -> None:
    empty = tempfile.NamedTemporaryFile(prefix="offload-aws-", delete=False)
    empty.close()
    os.environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=empty.name, AWS_SHARED_CREDENTIALS_FILE=empty.name)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        os.environ.pop(name, None)
