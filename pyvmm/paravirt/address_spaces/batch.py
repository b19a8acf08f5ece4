"""AS_MAP_BATCH: an array of map/unmap/protect/lazy entries run in one exit.

Entries run in order and stop at the first failure. Consecutive MAP entries with
contiguous va and gpa and one prot are applied as one range, and one-page MAP entries
with one prot as one pass (the usual batch: a buffer's pages); the validation is
all-or-nothing per run, and a failing run is replayed entry by entry to find the entry
at fault. Only the ``result`` fields are written back (as MULTICALL does): the rest of
the array is the guest's, and another vCPU may be changing it.
"""

from __future__ import annotations

import ctypes
import struct
from array import array

from pyvmm.memory import GuestMemory, GuestMemoryError
from pyvmm.paravirt.abi import AsOp, AsOpCode, Errno
from pyvmm.paravirt.address_spaces.leaves import Leaves
from pyvmm.paravirt.address_spaces.policy import PAGE_MASK
from pyvmm.paravirt.address_spaces.space import AddressSpace
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86.paging import PAGE_4K

_CODES = {ctypes.c_uint32: "I", ctypes.c_uint64: "Q", ctypes.c_int64: "q"}
#: ``struct pvm_as_op`` for the struct module, derived from :class:`~pyvmm.paravirt.abi.AsOp`.
OP = struct.Struct("<" + "".join(_CODES[ctype] for _, ctype in AsOp._fields_))
assert OP.size == ctypes.sizeof(AsOp), "AsOp has padding the struct format does not show"
_FIELDS = [name for name, _ in AsOp._fields_]
_WORDS = OP.size // 8  # u64 words per entry
_RESULT_WORD = AsOp.result.offset // 8
# Word 0 holds op | prot << 32; words 1..3 va, gpa, len (the column slices below rely on it).
assert _FIELDS == ["op", "prot", "va", "gpa", "len", "result"] and _WORDS == 5
_ONE_PAGE = struct.pack("<Q", PAGE_4K)

Failure = tuple[int, int]  # (index, errno) of the first entry that failed


def run_batch(leaves: Leaves, space: AddressSpace, raw: bytes, count: int) -> tuple[bool, Failure | None]:
    """Run the *count* entries in *raw*: (reload CR3?, the first failure or None)."""
    words = array("Q", raw)
    # The usual batch, all one-page MAPs with one prot: checked and written as
    # whole columns, without unpacking an entry (the ops' heads and lengths
    # compared as bytes).
    if (
        words[0] & 0xFFFF_FFFF == AsOpCode.MAP
        and words[0::5].tobytes() == raw[:8] * count
        and words[3::5].tobytes() == _ONE_PAGE * count
    ):
        try:
            return leaves.map_pages(space, words[1::5], words[2::5], words[0] >> 32), None
        except (HypercallError, GuestMemoryError):
            return _run_ops(leaves, space, list(OP.iter_unpack(raw)), 0, count)  # nothing changed: replay
    ops = list(OP.iter_unpack(raw))
    flush = False
    i = 0
    while i < count:
        j = _map_run_end(ops, i)  # contiguous MAP entries: one range
        jp = _page_run_end(ops, i)  # one-page MAP entries anywhere: one pass
        try:
            if jp > j:
                run = ops[i:jp]
                vas, gpas = array("Q", [op[2] for op in run]), array("Q", [op[3] for op in run])
                flush |= leaves.map_pages(space, vas, gpas, ops[i][1])
                i = jp
                continue
            if j - i > 1:
                _, prot, va, gpa, _, _ = ops[i]
                flush |= leaves.map(space, va, gpa, sum(op[4] for op in ops[i:j]), prot)
                i = j
                continue
        except (HypercallError, GuestMemoryError):
            j = max(j, jp)  # nothing changed: replay entry by entry to find the one at fault
        more, failed = _run_ops(leaves, space, ops, i, j)
        flush |= more
        if failed:
            return flush, failed
        i = j
    return flush, None


def write_results(memory: GuestMemory, ops_gpa: int, done: int, failed: Failure | None) -> None:
    """Store ``result = 0`` in the first *done* entries and ``-errno`` in the failing one;
    nothing else of the array is written (the caller checked it is the guest's to write)."""
    written = done + (1 if failed else 0)
    if not written:
        return
    results = array("q", bytes(8 * written))
    if failed:
        results[done] = -failed[1]
    view = memory.view(ops_gpa, written * OP.size)
    try:
        view.cast("q")[_RESULT_WORD::_WORDS] = results
    finally:
        view.release()


def _run_ops(leaves: Leaves, space: AddressSpace, ops: list[tuple], i: int, j: int) -> tuple[bool, Failure | None]:
    """Run ``ops[i:j]`` one by one: (reload CR3?, the first failure or None)."""
    flush = False
    for k in range(i, j):
        try:
            flush |= _run_op(leaves, space, ops[k])
        except HypercallError as e:
            return flush, (k, int(e.errno))
        except GuestMemoryError:
            return flush, (k, int(Errno.EFAULT))
    return flush, None


def _run_op(leaves: Leaves, space: AddressSpace, op: tuple) -> bool:
    code, prot, va, gpa, length, _ = op
    if code == AsOpCode.MAP:
        return leaves.map(space, va, gpa, length, prot)
    if code == AsOpCode.UNMAP:
        return leaves.unmap(space, va, length)
    if code == AsOpCode.PROTECT:
        return leaves.protect(space, va, length, prot)
    if code == AsOpCode.LAZY:
        return leaves.lazy(space, va, length, prot)
    raise HypercallError(Errno.EINVAL, f"unknown op {code}")


def _page_run_end(ops: list[tuple], i: int) -> int:
    """End of the run of one-page MAP entries from *i* with one prot (any addresses)."""
    code, prot, _, _, length, _ = ops[i]
    if code != AsOpCode.MAP or length != PAGE_4K:
        return i + 1
    j = i + 1
    n = len(ops)
    while j < n and ops[j][0] == code and ops[j][1] == prot and ops[j][4] == PAGE_4K:
        j += 1
    return j


def _map_run_end(ops: list[tuple], i: int) -> int:
    """End of the run of MAP entries from *i* with contiguous va and gpa and one prot."""
    code, prot, va, gpa, length, _ = ops[i]
    # Only whole-page entries merge: then the run is valid exactly when each entry is.
    if code != AsOpCode.MAP or not length or length & PAGE_MASK:
        return i + 1
    j = i + 1
    n = len(ops)
    while j < n:
        c2, p2, va2, gpa2, len2, _ = ops[j]
        if c2 != code or p2 != prot or va2 != va + length or gpa2 != gpa + length or not len2 or len2 & PAGE_MASK:
            break
        va, gpa, length = va2, gpa2, len2
        j += 1
    return j
