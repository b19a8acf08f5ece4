"""``pyvmm bench``: hypercall latency against same-run baselines (see docs/bench.md)."""
