"""Soak, short profile (the long one: scripts/soak.py): VMs created, booted and torn down
sequentially in this process and concurrently as processes, with no fd, memory or thread growth."""

from __future__ import annotations

import pytest

from .soak import soak_concurrent, soak_sequential

pytestmark = pytest.mark.kvm


def test_sequential_vms_leak_no_fds_threads_or_memory(guest_kernel):
    s = soak_sequential(guest_kernel, 100)
    print(s.summary())
    assert s.exit_codes == {3}
    assert s.fds_after == s.fds_before, s.summary()
    assert s.threads_after == s.threads_before, s.summary()
    # Each VM maps 16 MiB of guest RAM and a kvm_run page: a leak of either would show as
    # 100 x 16 MiB; what remains is allocator noise.
    assert s.rss_after_kib - s.rss_before_kib < 8 * 1024, s.summary()


def test_concurrent_vm_processes(guest_kernel):
    c = soak_concurrent(10, 5, kernel=guest_kernel)
    print(c.summary())
    assert not c.failures, c.failures
    assert c.exit_codes == {3: 10}
    assert 0 < min(c.max_rss_kib) and max(c.max_rss_kib) < 100 * 1024, c.summary()
