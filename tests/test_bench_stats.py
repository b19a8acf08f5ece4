"""Pure logic of the benchmark statistics and the exit metrics (no KVM)."""

from __future__ import annotations

import pytest

from pyvmm.bench.classes import BY_NAME, CLASSES
from pyvmm.bench.run import BenchError, select
from pyvmm.bench.stats import Distribution, median, quantile
from pyvmm.metrics import INTERRUPTED, OUT_OF_RANGE, Aggregate, Metrics, add, new_agg
from pyvmm.paravirt.abi import Feature, Hypercall


def test_quantile_interpolates_between_ranks():
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([5], 0.99) == 5
    values = list(range(1, 101))  # 1..100
    assert quantile(values, 0.0) == 1 and quantile(values, 1.0) == 100
    assert quantile(values, 0.99) == pytest.approx(99.01)
    assert median([9, 1, 5]) == 5


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_quantile_rejects_bad_q(q):
    with pytest.raises(ValueError):
        quantile([1, 2], q)


def test_quantile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_distribution_summarises_and_splits_repetitions():
    samples = [10.0] * 100 + [20.0] * 99 + [1000.0]  # rep 1: all 10, rep 2: mostly 20
    d = Distribution.of(samples, reps=2)
    assert d.count == 200
    assert d.median == 15.0
    assert d.min == 10.0 and d.max == 1000.0
    assert d.rep_medians == (10.0, 20.0)
    assert d.p99 == pytest.approx(quantile(sorted(samples), 0.99))
    assert d.to_dict()["rep_medians"] == [10.0, 20.0]


def test_aggregate_add_and_merge():
    agg = new_agg()
    for ns in (300, 100, 200):
        add(agg, ns)
    a = Aggregate.of(agg)
    assert (a.count, a.sum_ns, a.min_ns, a.max_ns) == (3, 600, 100, 300)
    assert a.mean_ns == 200
    assert Aggregate.of(new_agg()) == Aggregate()  # empty: min reads 0, not a sentinel
    b = a.merge(Aggregate(1, 50, 50, 50))
    assert (b.count, b.sum_ns, b.min_ns, b.max_ns) == (4, 650, 50, 300)
    assert a.merge(Aggregate()) is a


def test_metrics_summary_merges_vcpus_and_names_rows():
    m = Metrics()
    v0, v1 = m.for_vcpu(0), m.for_vcpu(1)
    assert m.for_vcpu(0) is v0
    for v, n in ((v0, 3), (v1, 2)):
        for i in range(n):
            add(v.kvm_run.setdefault(2, new_agg()), 1000 + i)  # 2 = KVM_EXIT_IO
            add(v.vmm.setdefault(2, new_agg()), 100 + i)
            add(v.hypercalls[Hypercall.SEND], 50)
        v.errors[Hypercall.SEND] += 1
    add(v1.kvm_run.setdefault(INTERRUPTED, new_agg()), 7)
    add(v1.hypercalls[OUT_OF_RANGE], 9)
    s = m.summary()
    io = s.exit("IO")
    assert io.kvm_run.count == 5 and io.vmm.count == 5 and io.kvm_run.min_ns == 1000 and io.kvm_run.max_ns == 1002
    assert s.exit("INTERRUPTED").kvm_run.count == 1
    send = s.hypercall("SEND")
    assert send.time.count == 5 and send.errors == 2
    assert s.hypercall(f"nr>={OUT_OF_RANGE}").time.count == 1
    assert s.hypercall("NULL") is None  # never called: no row
    assert s.total_kvm_run.count == 6
    d = s.to_dict()
    assert d["hypercalls"]["SEND"] == {"count": 5, "errors": 2, "handler": send.time.to_dict()}
    table = s.format()
    assert any(line.split()[:3] == ["SEND", "5", "2"] for line in table.splitlines())


def test_metrics_samples_only_when_asked():
    assert Metrics().for_vcpu(0).samples_vmm is None
    m = Metrics(keep_samples=True)
    v = m.for_vcpu(0)
    v.samples_kvm_run.append(5)
    v.samples_vmm.append(1)
    assert m.samples() == ([5], [1])


def test_registry_names_are_unique_and_declare_features():
    assert len(BY_NAME) == len(CLASSES)
    assert BY_NAME["as-switch"].features & Feature.ADDRESS_SPACES
    assert BY_NAME["notify-rtt"].vcpus == 2


def test_select_by_name_prefix_and_rejects_unknown():
    assert [c.name for c in select(["send"])] == ["send-0", "send-64", "send-4k", "send-64k", "send-1m"]
    assert [c.name for c in select(["null,base-c-exit"])] == ["null", "base-c-exit"]
    with pytest.raises(BenchError, match="no benchmark class 'nope'"):
        select(["nope"])
