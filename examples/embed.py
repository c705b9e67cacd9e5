"""Embedding offload: run one command from Python, without a workflow file.

    python examples/embed.py

Submit returns a handle at once; poll, collect and cancel take the handle, which
serialises to JSON, so another process can pick the task up later.
"""

import json
import os
import tempfile

import offload
from offload import from_json, to_json

project = tempfile.mkdtemp(prefix="offload-embed-")
io_dir = ".offload/io/embedded-1"
os.makedirs(os.path.join(project, io_dir))

request = offload.TaskRequest(
    task_id="embedded-1",
    argv=["/bin/sh", "-c", 'echo "hello from an embedded task"; echo "$OUTPUT" > "$OFFLOAD_IO_DIR/output.json"'],
    project_dir=project,
    io_dir=io_dir,
    env={"OFFLOAD_IO_DIR": io_dir, "OUTPUT": json.dumps({"store_params": {"answer": 42}})},
    timeout=60,
)

with offload.Executor() as executor:  # reads $OFFLOAD_CONFIG or ./offload.yml, else defaults
    print("backend:", executor.select(request).backend)
    handle = executor.submit(request)
    saved = to_json(handle)  # keep this anywhere; it is all another process needs
    result = executor.wait(from_json(saved, offload.Handle), on_log=lambda line: print("log:", line))
    print(f"result: {result.state.value} exit={result.exit_code} store_params={result.store_params}")
