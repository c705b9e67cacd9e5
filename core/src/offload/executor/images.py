"""The default Dockerfile for an image spec, and the content-addressed tag of a spec."""

from __future__ import annotations

import hashlib
import json

from offload.executor.models import ImageSpec

TAG_REPOSITORY = "offload-image"


def default_dockerfile(spec: ImageSpec) -> str:
    """``FROM <image>`` and one ``RUN`` per build line; nothing is copied in.

    Copying the project would invalidate the build cache on every change, so (as in
    Digdag) the project is mounted or shipped at run time instead.

    A build step of several lines (a YAML ``|`` block) is a small shell script: its lines
    are separate commands, and a line ending in ``\\`` continues on the next. The
    Dockerfile's shell form cannot hold a newline, so such a step becomes one exec-form
    ``RUN ["/bin/sh", "-ec", <script>]``, which keeps the script as written and stops at
    the first failing command, as separate ``RUN`` lines would. Blank steps are skipped.
    """
    lines = [f"FROM {spec.image}"]
    for step in spec.build:
        script = "\n".join(part.rstrip() for part in step.strip().splitlines())
        if not script:
            continue
        if "\n" in script:
            lines.append("RUN " + json.dumps(["/bin/sh", "-ec", script]))
        else:
            lines.append(f"RUN {script}")
    return "\n".join(lines) + "\n"


def spec_digest(spec: ImageSpec, dockerfile: str | None = None) -> str:
    """A stable hash of everything that changes the built image.

    With ``dockerfile`` (the text ``offload_dockerfile`` rendered), the hash covers that
    text instead of the build lines, so a plugin that renders differently, or a new
    default rendering, never reuses an image built from another Dockerfile.
    """
    content: dict[str, object] = {"image": spec.image, "build_options": list(spec.build_options)}
    if dockerfile is None:
        content["build"] = list(spec.build)
    else:
        content["dockerfile"] = dockerfile
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def image_tag(spec: ImageSpec, dockerfile: str | None = None) -> str:
    """The tag a built image gets: ``offload-image:<first 16 hex digits of the hash>``.

    Pass the rendered ``dockerfile`` when building: specs whose Dockerfiles or build
    options differ get different tags, so an image with its tag present is never rebuilt.
    """
    return f"{TAG_REPOSITORY}:{spec_digest(spec, dockerfile)[:16]}"
