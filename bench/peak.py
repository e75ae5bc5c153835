"""Peak resident memory of this process since it started (its own, not its parent's).

`resource.getrusage(RUSAGE_SELF).ru_maxrss` is not that for a subprocess: Linux carries the parent's high-water
mark across fork and exec, so a child started by a big parent reports the parent's peak. VmHWM belongs to the
process's current address space, which exec creates afresh.
"""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
