"""Task code for examples/hello/flow.dig: plain functions, params by argument name."""

import offload_env


def count_lines(path):
    with open(path) as f:
        lines = sum(1 for _ in f)
    print(f"{path} has {lines} lines")
    offload_env.store(lines=lines)


class Summer:
    def total(self, path, region="nowhere"):
        with open(path) as f:
            total = sum(int(line) for line in f)
        print(f"total {total} (region {region})")
        # Digdag's API works unchanged too
        import digdag

        digdag.env.store({"total": total})


def check(total, expected_total):
    if int(total) != int(expected_total):
        raise ValueError(f"total is {total}, expected {expected_total}")
    print("check passed")
