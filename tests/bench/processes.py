"""Helpers for benchmarks that measure or drive other processes."""

from __future__ import annotations

import gc
import subprocess


def rss_bytes() -> int:
    """This process's resident set size after a full collection (Linux ``/proc``; 0 elsewhere)."""
    gc.collect()
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM ``proc``, then SIGKILL it if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
