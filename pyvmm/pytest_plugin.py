"""pyvmm's pytest plugin, registered through the ``pytest11`` entry point: installing pyvmm
is enough for a project's tests to use it.

- the ``pyvmm_vm`` fixture: a factory that boots a guest with the options of
  :class:`pyvmm.VM` and returns a :class:`GuestSession` (wait for console output
  matching a pattern, send console input, wait for the exit, read guest memory and
  counts); every VM it started is stopped and closed when the test ends, and a failing
  test's report shows each guest's console;
- the ``kvm`` marker: ``@pytest.mark.kvm`` tests are skipped, with the reason printed,
  where ``/dev/kvm`` is missing or not usable (the fixture skips the same way).

See docs/api.md, "Testing a guest with pytest".
"""

from __future__ import annotations

import os
import re
import threading
import time

import pytest

KVM_DEVICE = "/dev/kvm"


def kvm_unavailable() -> str | None:
    """Why KVM tests cannot run here (None: they can)."""
    path = os.environ.get("PYVMM_KVM_DEVICE", KVM_DEVICE)
    if not os.path.exists(path):
        return f"{path} is absent on this machine"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"no read/write permission on {path}"
    return None


class GuestSession:
    """One running guest, as a test drives it. Made by the ``pyvmm_vm`` fixture."""

    def __init__(self, vm) -> None:
        self.vm = vm
        self._buf = bytearray()
        self._pos = 0  # where the next expect() starts looking
        self._cond = threading.Condition()
        self._stopped = False

    # The console callback: on pyvmm's console thread.
    def _feed(self, chunk: bytes) -> None:
        with self._cond:
            self._buf += chunk
            self._cond.notify_all()

    def _on_stop(self, result) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def output(self) -> str:
        """Everything the guest wrote to its console so far."""
        return bytes(self._buf).decode(errors="replace")

    def expect(self, pattern: str | bytes | re.Pattern, timeout: float = 30) -> re.Match:
        """Wait until console output after the previous match matches *pattern* (a regular
        expression, ``str`` matched against the decoded text); returns the match. Fails the
        test (``AssertionError``, with the output) at *timeout* or when the guest stops first."""
        if isinstance(pattern, (str, bytes)):
            pattern = re.compile(pattern)
        textual = isinstance(pattern.pattern, str)
        deadline = time.monotonic() + timeout
        final = False
        with self._cond:
            while True:
                data = bytes(self._buf[self._pos :])
                match = pattern.search(data.decode(errors="replace") if textual else data)
                if match:
                    consumed = len(match.string[: match.end()].encode()) if textual else match.end()
                    self._pos += consumed
                    return match
                remaining = deadline - time.monotonic()
                if self._stopped and not final:
                    final = True  # the console thread may still hold output: read it all once more
                    self._cond.release()
                    try:
                        self.vm.wait(5)
                    finally:
                        self._cond.acquire()
                    continue
                if remaining <= 0 or self._stopped:
                    why = "the guest stopped" if self._stopped else f"{timeout:g}s passed"
                    raise AssertionError(
                        f"{why} before its console matched {pattern.pattern!r}; console:\n{self.output}"
                    )
                self._cond.wait(remaining)

    def send(self, data: str | bytes) -> None:
        """Write *data* to the guest's console input."""
        self.vm.write_console(data.encode() if isinstance(data, str) else data)

    def close_input(self) -> None:
        """End of input on the guest's console."""
        self.vm.close_console_input()

    def wait(self, timeout: float = 60):
        """The guest's :class:`pyvmm.Result` once it stops; fails the test at *timeout*."""
        try:
            return self.vm.wait(timeout)
        except TimeoutError:
            raise AssertionError(f"the guest still runs after {timeout:g}s; console:\n{self.output}") from None

    def exit_code(self, timeout: float = 60) -> int:
        return self.wait(timeout).exit_code

    @property
    def memory(self):
        """Guest RAM through the checked accessor (``read``, ``write``, ``read_obj``...)."""
        return self.vm.memory

    def stop(self) -> None:
        self.vm.stop()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "kvm: needs /dev/kvm (skipped, with the reason, where it is absent)")


def pytest_collection_modifyitems(config, items) -> None:
    reason = kvm_unavailable()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"KVM test skipped: {reason}")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config) -> str:
    reason = kvm_unavailable()
    return f"pyvmm: KVM tests {'SKIPPED: ' + reason if reason else 'run on ' + KVM_DEVICE}"


@pytest.fixture
def pyvmm_vm(request):
    """``pyvmm_vm(guest=None, **options) -> GuestSession``: boot a guest (the bundled kernel
    by default) with :class:`pyvmm.VM`'s options and start it; ``hypercalls={nr: fn}`` and
    ``channels=[...]`` register before the boot. Stopped and closed after the test."""
    reason = kvm_unavailable()
    if reason is not None:
        pytest.skip(f"KVM test skipped: {reason}")
    import pyvmm

    sessions: list[GuestSession] = []
    request.node._pyvmm_sessions = sessions  # for the failure report's console sections

    def boot(guest=None, *, hypercalls=None, channels=(), timeout=None, **options) -> GuestSession:
        options.setdefault("stdin", pyvmm.PIPE)
        holder: list[GuestSession] = []
        vm = pyvmm.VM(guest, console=lambda chunk: holder[0]._feed(chunk), timeout=timeout, **options)
        session = GuestSession(vm)
        holder.append(session)
        for nr, fn in (hypercalls or {}).items():
            vm.hypercall(nr, fn)
        for channel in channels:
            vm.add_channel(channel)
        vm.on("stop", session._on_stop)
        sessions.append(session)
        vm.start()
        return session

    yield boot
    for session in sessions:
        session.vm.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report shows the console of each guest it booted."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, session in enumerate(getattr(item, "_pyvmm_sessions", ())):
            report.sections.append((f"pyvmm guest {i} console", session.output))
