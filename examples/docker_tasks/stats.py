"""Task code for examples/docker.dig; it runs inside the container."""

import offload_env


def measure(path):
    with open(path) as f:
        numbers = [int(line) for line in f if line.strip()]
    print(f"{path}: {len(numbers)} numbers in a container")
    offload_env.store(lines=len(numbers), total=sum(numbers))
