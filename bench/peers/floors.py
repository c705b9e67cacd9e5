"""The floors: each job in plain Python, no workflow tool: ``python floors.py seq|parallel|chain``.

seq: a ``subprocess.run`` loop; parallel: a thread per command; chain: each command
gets the value the one before printed.
"""

from __future__ import annotations

import subprocess
import sys
import threading


def sh(command: str) -> str:
    return subprocess.run(["/bin/sh", "-c", command], check=True, capture_output=True, text=True).stdout.strip()


def main() -> None:
    job = sys.argv[1]
    if job == "seq":
        for i in range(50):
            print(sh(f"echo {i}"))
    elif job == "parallel":
        threads = [threading.Thread(target=sh, args=("sleep 0.2",)) for _ in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        v = 0
        for _ in range(20):
            v = int(sh(f"echo $(({v} + 1))"))
        print(f"result={v}")


if __name__ == "__main__":
    main()
