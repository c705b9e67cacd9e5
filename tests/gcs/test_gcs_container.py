"""A real container fetches the project and sends its output back with curl, through the signed URLs.

This is what a remote task does: it holds no credentials, only the two URLs. The container
shares the host's network (``--network host``) so that the emulator on 127.0.0.1 is the
only thing it talks to.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from offload import PUT_CONTENT_TYPE
from offload_gcs import GcsStorage

IMAGE = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")
SCRIPT = (
    'curl -fsS "$GET" -o /tmp/project'
    " && { cat /tmp/project; printf ' came back'; } > /tmp/output"
    f' && curl -fsS -T /tmp/output -H "Content-Type: {PUT_CONTENT_TYPE}" "$PUT"'
)


def _docker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def docker_image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine")
    try:
        if _docker("info", "--format", "{{.ServerVersion}}", timeout=20).returncode != 0:
            pytest.skip("no Docker Engine answers (docker info failed)")
    except subprocess.TimeoutExpired:
        pytest.skip("the Docker Engine did not answer docker info in 20 s")
    if _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip(f"the image {IMAGE} is missing (scripts/setup_docker.sh builds it)")
    return IMAGE


def test_a_container_uses_the_signed_urls(docker_image: str, storage: GcsStorage) -> None:
    storage.put("run-1/project.tar.gz", b"the project")
    get_url = storage.presign_get("run-1/project.tar.gz", storage.url_lifetime(600))
    put_url = storage.presign_put("run-1/output.tar.gz", storage.url_lifetime(600))
    assert get_url.startswith("http://127.0.0.1:") and put_url.startswith("http://127.0.0.1:")
    done = _docker("run", "--rm", "--network", "host", "-e", f"GET={get_url}", "-e", f"PUT={put_url}", docker_image, "sh", "-c", SCRIPT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert storage.get("run-1/output.tar.gz") == b"the project came back"
