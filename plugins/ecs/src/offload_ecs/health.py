"""``offload check ecs``: no credentials, rejected credentials, access denied, cluster
not found, temporal storage missing or refused, or healthy, each said plainly."""

from __future__ import annotations

from offload import BackendError, Health, Storage
from offload_ecs.aws import CREDENTIAL_ERRORS, Aws, error_code, error_message
from offload_ecs.config import EcsConfig

DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "403")


def _credentials_found(aws: Aws) -> bool:
    s = aws.config.settings
    if s.access_key_id:
        return True
    import boto3

    return boto3.session.Session().get_credentials() is not None


def check(aws: Aws, config: EcsConfig, storage: Storage | None) -> Health:
    from botocore.exceptions import ClientError

    if not config.configured:
        return Health(False, "ecs: not configured (no command_executor.ecs section with name and temporal_storage)")
    cluster = config.cluster
    assert cluster is not None and storage is not None
    details: list[str] = []
    if not _credentials_found(aws):
        return Health(
            False, "ecs: no AWS credentials found", ("set access_key_id/secret_access_key, or AWS_ACCESS_KEY_ID, ~/.aws/credentials or an instance role",)
        )
    details.append(f"region: {aws.region}")
    try:
        response = aws.call("ecs", "describe_clusters", clusters=[cluster])
    except BackendError as e:
        return Health(False, f"ecs: {e}".replace("ecs: ecs: ", "ecs: "), tuple(details))
    except ClientError as e:
        code = error_code(e)
        if code in DENIED:
            return Health(False, f"ecs: access denied to cluster {cluster}", (*details, error_message(e)))
        if code in CREDENTIAL_ERRORS:
            return Health(False, "ecs: AWS rejected the credentials", (*details, code))
        return Health(False, f"ecs: cannot describe cluster {cluster}", (*details, error_message(e)))
    clusters = [c for c in response.get("clusters") or [] if c.get("status") == "ACTIVE"]
    if not clusters:
        return Health(False, f"ecs: cluster {cluster} not found in {aws.region}", tuple(details))
    found = clusters[0]
    details.append(f"cluster {cluster}: {found.get('runningTasksCount', 0)} running, {found.get('pendingTasksCount', 0)} pending")
    found_storage = storage.check()
    details.extend(found_storage.details)
    if not found_storage.ok:
        return Health(False, f"ecs: temporal storage: {found_storage.summary}", tuple(details))
    return Health(True, f"ecs: ready (cluster {cluster}, storage {storage.uri('')})", tuple(details))
