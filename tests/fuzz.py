"""Fuzzing profiles: a short one for CI, a long one by hand (``scripts/fuzz_long.py``).

``PYVMM_FUZZ_EXAMPLES`` sets the number of examples per fuzz test (default: the short
profile); ``PYVMM_FUZZ_REPORT`` names a JSON file the tests add their case counts to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, settings

SHORT_EXAMPLES = 300


def examples() -> int:
    return int(os.environ.get("PYVMM_FUZZ_EXAMPLES", SHORT_EXAMPLES))


def fuzz_settings(**kw) -> settings:
    n = examples()
    return settings(
        max_examples=n,
        deadline=None,  # a real hypercall may take milliseconds (fsync of the disk)
        database=None,  # no .hypothesis/ directory left in the checkout
        derandomize=n <= SHORT_EXAMPLES,  # CI: the same cases every run
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **kw,
    )


def report(name: str, count: int, **extra) -> None:
    path = os.environ.get("PYVMM_FUZZ_REPORT")
    if not path:
        return
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {}
    data[name] = {"cases": count, **extra}
    p.write_text(json.dumps(data, indent=2))
