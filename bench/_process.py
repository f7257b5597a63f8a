"""Running a whole command as a benchmark measures it: wall time, output, peak memory."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def timed(*command: str, cwd: Path) -> tuple[float, str, int]:
    """Wall seconds, stdout, and the peak RSS in MB of the process (its largest child included).

    The commands print a few lines, so the pipes are read after the process ends.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out}\n{err}")
    return elapsed, out, usage.ru_maxrss // 1024
