"""Several real Python processes that start their work at the same moment, for tests of concurrent writers."""

from __future__ import annotations

import subprocess
import sys


def run_together(script: str, *argv: list[str], timeout: float = 60) -> list[str]:
    """Run ``script`` once per argument list; each prints "ready" and waits for a line on stdin before working.

    Returns each process's output after "ready"; fails if one exits with an error.
    """
    processes = [
        subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
        for args in argv
    ]  # fmt: skip
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = []
        for process in processes:
            out, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0, out
            outputs.append(out)
        return outputs
    finally:
        for process in processes:  # a failed start must not leave processes and pipes behind
            if process.poll() is None:
                process.kill()
            process.communicate()
