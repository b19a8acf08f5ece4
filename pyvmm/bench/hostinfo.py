"""What a benchmark result depends on: machine, kernel, KVM backend, CPU, Python."""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict:
    from pyvmm.info import kvm_backend

    return {
        "machine": platform.node(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "kvm_backend": kvm_backend(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
