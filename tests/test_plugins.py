"""``pyvmm run --plugin``: a Python file's setup(vm) adds hypercalls, channels and hooks, contained."""

from __future__ import annotations

import textwrap

import pytest

from .conftest import ROOT, assert_one_line_error, pyvmm

pytestmark = pytest.mark.kvm


def _plugin(tmp_path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_the_example_plugin_serves_a_hypercall_and_hooks():
    run = pyvmm("run", "--plugin", str(ROOT / "examples" / "plugin_shout.py"), "--cmdline", "test=ext")
    assert run.returncode == 0, run
    assert "registered=1" in run.stdout
    assert "ext 64: 12 buf=PING" in run.stdout  # upper-cased in guest memory by the plugin
    assert "ext 65 unregistered: -38" in run.stdout
    calls = int(run.stderr.split("plugin_shout: ")[1].split()[0])
    assert calls > 5, run.stderr


def test_a_plugin_channel_and_two_plugins(tmp_path):
    """Two plugins, one numbering its hypercall after the other's; a Python channel the guest
    sends to by name (test=request talks to a channel called "kv")."""
    first = _plugin(
        tmp_path,
        "first",
        """
        import pyvmm
        def setup(vm):
            vm.hypercall(pyvmm.EXT_BASE + 2, lambda vcpu, args, mem: 7)
        """,
    )
    kv = _plugin(
        tmp_path,
        "kv",
        """
        import pyvmm
        from pyvmm.paravirt.abi import ChannelKind

        class Echo(pyvmm.Channel):
            kind = ChannelKind.STREAM
            name = "kv"
            def __init__(self):
                self.pending = b""
            def send(self, data, offset):
                self.pending += b"echo:" + bytes(data).upper() + b"\\n"
                return len(data)
            def recv(self, buf, offset):
                if not self.pending:
                    raise pyvmm.ChannelError(pyvmm.Errno.EAGAIN, "nothing yet")
                n = min(len(buf), len(self.pending))
                buf[:n], self.pending = self.pending[:n], self.pending[n:]
                return n

        def setup(vm):
            assert vm.options.cmdline.startswith("test=")
            vm.add_channel(Echo())
        """,
    )
    run = pyvmm("run", "--plugin", first, "--plugin", kv, "--cmdline", "test=ext")
    assert run.returncode == 0, run
    assert "ext 66: 7 buf=ping" in run.stdout
    run = pyvmm("run", "--plugin", first, "--plugin", kv, "--cmdline", "test=request msg=hi;there")
    assert run.returncode == 0, run
    assert "request: hi -> echo:HI" in run.stdout and "request: there -> echo:THERE" in run.stdout


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("import nonexistent_module_xyz\n", "cannot import it: ModuleNotFoundError"),
        ("def setup(:\n", "cannot import it: SyntaxError"),
        ("x = 1\n", "defines no setup(vm)"),
        ("def setup(vm):\n    raise RuntimeError('no\\nluck')\n", "setup() raised RuntimeError: no luck"),
        ("def setup(vm):\n    vm.hypercall(1, lambda *a: 0)\n", "not in the extension range"),
        ("def setup(vm):\n    vm.hypercall(64, lambda *a: 0)\n    vm.hypercall(64, lambda *a: 0)\n", "twice"),
        ("def setup(vm):\n    vm.on('bogus', print)\n", "unknown event 'bogus'"),
        ("def setup(vm):\n    vm.add_channel(object())\n", "is not a pyvmm.Channel"),
        ("import sys\nsys.exit(3)\n", "cannot import it: SystemExit"),
    ],
)
def test_bad_plugins_are_one_line_naming_the_plugin(tmp_path, body, fragment):
    path = _plugin(tmp_path, "bad", body)
    assert_one_line_error(pyvmm("run", "--plugin", path), path, fragment)


def test_a_missing_plugin_file():
    assert_one_line_error(pyvmm("run", "--plugin", "/nonexistent/p.py"), "/nonexistent/p.py", "no such file")


def test_a_plugin_is_contained(tmp_path):
    """A plugin's hypercall runs under the seccomp filter: opening a file there fails (the
    handler's exception is the guest's -EIO), while setup() ran before it and could."""
    secret = tmp_path / "secret"
    secret.write_text("host file")
    path = _plugin(
        tmp_path,
        "nosy",
        f"""
        import pyvmm
        seen = open({str(secret)!r}).read()  # at load time: allowed
        def peek(vcpu, args, mem):
            open({str(secret)!r}).read()  # contained: refused
            return 0
        def setup(vm):
            assert seen == "host file"
            vm.hypercall(pyvmm.EXT_BASE, peek)
        """,
    )
    run = pyvmm("run", "--plugin", path, "--cmdline", "test=ext", "--stats")
    assert run.returncode == 0, run
    assert "ext 64: -5 buf=ping" in run.stdout
    assert "pyvmm: stats: -EIO from exceptions in Python: nr64=1" in run.stderr
