"""Containment probe: a contained ``pyvmm run`` reaches its own channels' sockets and nothing else.

A ``--plugin`` stands in for a guest that took over the VMM: its hook runs inside the
contained process, on a vCPU thread, at the guest's first hypercall (after the seccomp
filter and, where the kernel has it, Landlock). It tries what such a guest would try
(connect to a Unix socket the test listens on, by path and abstract; reuse a socket
pyvmm already holds; pass a file descriptor; open, stat, unlink, rename a host file)
and records the errno of each attempt in a file opened during ``setup`` (before the
filter). Meanwhile the two VMs' own channel works: one listens, the other connects
after the filter, and a message and a megabyte cross it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pyvmm import sandbox
from pyvmm.devices.base import DeviceError
from pyvmm.devices.broker import Op, SocketBroker
from pyvmm.devices.spec import StreamSpec

from .conftest import ROOT

PROBE_PLUGIN = r"""
import array, errno, json, os, socket

OUT = open({out!r}, "w")  # opened in setup's module import: before the filter
OUTSIDE, ABSTRACT, SECRET = {outside!r}, {abstract!r}, {secret!r}
done = []


def attempt(results, name, fn):
    try:
        fn()
        results[name] = 0
    except OSError as e:
        results[name] = e.errno


def held_sockets():
    # Sockets pyvmm holds (its channels', the broker's): a taken-over VMM would reuse them.
    found = []
    for fd in range(3, 256):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)
        except OSError:
            continue
        try:
            s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
            found.append(s)
        except OSError:
            s.detach()
    return found


def probe():
    r = {{}}
    attempt(r, "socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    attempt(r, "socketpair", lambda: socket.socketpair())
    held = held_sockets()
    r["held"] = len(held)
    for i, s in enumerate(held):
        attempt(r, f"connect-held-{{i}}", lambda: s.connect(OUTSIDE))
        attempt(r, f"connect-abstract-held-{{i}}", lambda: s.connect(ABSTRACT))
        attempt(r, f"sendto-held-{{i}}", lambda: s.sendto(b"x", OUTSIDE))
        fds = array.array("i", [0])
        attempt(r, f"sendmsg-fd-held-{{i}}", lambda: s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]))
        attempt(r, f"bind-held-{{i}}", lambda: s.bind(OUTSIDE + ".new"))
        s.detach()
    attempt(r, "open", lambda: os.open(SECRET, os.O_RDONLY))
    attempt(r, "creat", lambda: os.open(SECRET + ".new", os.O_WRONLY | os.O_CREAT, 0o600))
    attempt(r, "stat", lambda: os.stat(SECRET))
    attempt(r, "lstat", lambda: os.lstat(SECRET))
    attempt(r, "unlink", lambda: os.unlink(SECRET))
    attempt(r, "unlink-socket", lambda: os.unlink(OUTSIDE))
    attempt(r, "rename", lambda: os.rename(SECRET, SECRET + ".moved"))
    attempt(r, "mkdir", lambda: os.mkdir(SECRET + ".d"))
    attempt(r, "symlink", lambda: os.symlink(SECRET, SECRET + ".lnk"))
    attempt(r, "chmod", lambda: os.chmod(SECRET, 0o777))
    attempt(r, "truncate", lambda: os.truncate(SECRET, 0))
    attempt(r, "mknod-fifo", lambda: os.mkfifo(SECRET + ".fifo"))
    OUT.write(json.dumps(r) + "\n")
    OUT.flush()


def on_hypercall(vcpu, nr, args, result, ns):
    done.append(1)
    if len(done) in (1, 20, 100, 400):  # at boot, and once the channel is connected
        probe()


def setup(vm):
    vm.on("hypercall", on_hypercall)
"""

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(not sandbox.available(), reason="libseccomp.so.2 is not installed"),
]


def _listen_outside(tmp_path):
    outside = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    outside.bind(str(tmp_path / "outside.sock"))
    outside.listen(8)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    name = f"\0pyvmm-probe-{os.getpid()}-{time.monotonic_ns()}"
    abstract.bind(name)
    abstract.listen(8)
    return outside, abstract, name


def _vm(plugin, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", "--plugin", str(plugin), *args, "--timeout", "60"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_contained_vmm_reaches_its_channels_and_nothing_else(tmp_path):
    outside, abstract, abstract_name = _listen_outside(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    link = str(tmp_path / "link.sock")
    plugins, outs = [], []
    for who in ("server", "client"):
        out = tmp_path / f"probe-{who}.json"
        plugin = tmp_path / f"probe_{who}.py"
        plugin.write_text(
            PROBE_PLUGIN.format(
                out=str(out), outside=str(tmp_path / "outside.sock"), abstract=abstract_name, secret=str(secret)
            )
        )
        plugins.append(plugin)
        outs.append(out)
    # The client starts first: it connects (through the broker) only after its filter is loaded.
    client = _vm(plugins[1], "--channel", f"link=unix:{link}", "--cmdline", "test=chanrecv")
    time.sleep(0.5)
    server = _vm(plugins[0], "--channel", f"link=unix:{link},server", "--cmdline", "test=chansend msg=contained")
    try:
        out_s, err_s = server.communicate(timeout=90)
        out_c, err_c = client.communicate(timeout=90)
    finally:
        for p in (server, client):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert (server.returncode, client.returncode) == (0, 0), (out_s, err_s, out_c, err_c)
    assert "chanrecv: message 'contained'" in out_c and ": ok" in out_c  # the VM's own channel works
    assert "peer acknowledged" in out_s and ": ok" in out_s
    assert not os.path.exists(link)  # the broker removed the socket file the server made

    probes = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    assert len(probes) >= 4, probes
    # It found pyvmm's own sockets to misuse: the broker's always, a connected channel's too.
    assert min(r["held"] for r in probes) >= 1 and max(r["held"] for r in probes) >= 2, probes
    for results in probes:
        allowed = {name: err for name, err in results.items() if name != "held" and err == 0}
        assert not allowed, f"a contained pyvmm could: {sorted(allowed)}"
    # Nothing reached the outside listeners, and the host file is as it was.
    for listener in (outside, abstract):
        with pytest.raises(BlockingIOError):
            listener.accept()
        listener.close()
    assert secret.read_text() == "host data"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("secret")) == ["secret.txt"]
    assert os.path.exists(tmp_path / "outside.sock")


# -- the broker itself ------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path):
    specs = (StreamSpec("srv", str(tmp_path / "s.sock"), True), StreamSpec("cli", str(tmp_path / "c.sock"), False))
    b = SocketBroker.for_channels(specs)
    yield b, specs
    b.close()


def test_broker_serves_only_its_own_table(broker, tmp_path):
    b, specs = broker
    assert b.pid > 0
    with pytest.raises(OSError) as e:
        b.request(Op.CONNECT, 0)  # the server channel: listen only
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        b.request(Op.LISTEN, 1)  # the client channel: connect only
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        b.request(Op.CONNECT, 7)  # no such channel
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        b.request(9, 0)  # no such operation
    assert e.value.errno == errno.EINVAL
    listener = b.endpoint_for(specs[0]).listen()
    with pytest.raises(OSError) as e:
        b.request(Op.LISTEN, 0)  # one listener per channel
    assert e.value.errno == errno.EPERM
    listener.close()
    with pytest.raises(OSError) as e:
        b.endpoint_for(specs[1]).connect()  # nobody listens at c.sock yet: retry later
    assert e.value.errno == errno.ENOENT
    assert os.path.exists(tmp_path / "s.sock")
    b.close()
    assert not os.path.exists(tmp_path / "s.sock")  # closing the broker removed what it made


def test_broker_reports_the_listen_error_as_one_line(tmp_path):
    (tmp_path / "s.sock").write_text("not a socket")
    b = SocketBroker.for_channels((StreamSpec("srv", str(tmp_path / "s.sock"), True),))
    try:
        with pytest.raises(DeviceError, match=r"--channel srv: .* already exists and is not a socket"):
            b.endpoint_for(b._specs[0]).listen()
    finally:
        b.close()
    assert (tmp_path / "s.sock").read_text() == "not a socket"


def test_no_broker_without_stream_channels():
    assert SocketBroker.for_channels(()) is None


def test_socket_file_removed_after_sigkill(tmp_path):
    """SIGKILL cannot be handled, but the broker sees its VMM go and removes the socket file."""
    path = tmp_path / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", "--channel", f"link=unix:{path},server", "--cmdline", "test=spin"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.stdout.readline()  # the banner: the VM runs, the socket listens
        assert path.exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    end = time.monotonic() + 10
    while path.exists() and time.monotonic() < end:
        time.sleep(0.01)
    assert not path.exists()


def test_stale_socket_from_a_dead_pyvmm_does_not_block_the_next_run(tmp_path):
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on, as a power cut leaves it
    stale.close()
    run = subprocess.run(
        [sys.executable, "-m", "pyvmm", "run", "--channel", f"link=unix:{path},server", "--cmdline", "exit=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3 and run.stderr == "", run
    assert not path.exists()


# -- Landlock, the second wall -------------------------------------------------------------------
LANDLOCK_PROBE = r"""
import json, os, signal, socket, sys, threading
from pyvmm import landlock

ABSTRACT = "\0" + sys.argv[2]
listener = socket.socket(socket.AF_UNIX)
listener.bind(ABSTRACT)
listener.listen(1)
abi = landlock.restrict()
out = {"abi": abi}

def attempt(name, fn):
    try:
        fn()
        out[name] = 0
    except OSError as e:
        out[name] = e.errno

attempt("open", lambda: os.open(sys.argv[1], os.O_RDONLY))
attempt("unlink", lambda: os.unlink(sys.argv[1]))
attempt("mkdir", lambda: os.mkdir(sys.argv[1] + ".d"))
attempt("abstract", lambda: socket.socket(socket.AF_UNIX).connect(ABSTRACT))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
t = threading.Thread(target=lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1))
t.start(); t.join()
out["thread-signal"] = got == [1]
print(json.dumps(out))
"""


@pytest.mark.skipif(__import__("pyvmm.landlock").landlock.abi_version() < 1, reason="the kernel has no Landlock")
def test_landlock_alone_refuses_files_abstract_sockets_and_tcp(tmp_path):
    """Without seccomp's help: what :func:`pyvmm.landlock.restrict` refuses on its own."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    abstract = f"pyvmm-landlock-{os.getpid()}"  # the probe adds the NUL: argv cannot hold one
    run = subprocess.run(
        [sys.executable, "-c", LANDLOCK_PROBE, str(secret), abstract],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["abi"] >= 1
    for name in ("open", "unlink", "mkdir"):
        assert out[name] == errno.EACCES, (name, out)
    if out["abi"] >= 4:
        assert out["tcp"] == errno.EACCES, out
    if out["abi"] >= 6:  # scoped: an abstract socket outside the domain is out of reach
        assert out["abstract"] == errno.EPERM, out
    assert out["thread-signal"], out  # vCPU kicks (signals between our own threads) still arrive
    assert secret.read_text() == "host data"
