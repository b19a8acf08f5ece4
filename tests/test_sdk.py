"""The guest SDK (pyvmm/sdk): `pyvmm new` + make + `pyvmm run`, in the tree and from a built wheel
in a fresh virtual environment, which also runs the examples/ as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyvmm import sdk
from pyvmm.paravirt import abi, cheader

from .conftest import ROOT, assert_one_line_error, pyvmm

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make")


def test_the_sdk_headers_are_the_generated_ones():
    include = Path(sdk.INCLUDE_DIR)
    assert (include / "pyvmm_abi.h").read_text() == cheader.render(), (
        "pyvmm/sdk/include/pyvmm_abi.h is stale: python -m pyvmm.paravirt.cheader > pyvmm/sdk/include/pyvmm_abi.h"
    )
    assert (include / "pyvmm_calls.h").read_text() == cheader.render_calls(), (
        "pyvmm/sdk/include/pyvmm_calls.h is stale: "
        "python -m pyvmm.paravirt.cheader --calls > pyvmm/sdk/include/pyvmm_calls.h"
    )


def test_new_overwrites_nothing(tmp_path):
    (tmp_path / "hello.c").write_text("mine")
    assert_one_line_error(pyvmm("new", str(tmp_path)), "hello.c already exists")
    assert (tmp_path / "hello.c").read_text() == "mine"
    assert not (tmp_path / "Makefile").exists()


def _make(directory: Path, pyvmm_command: str, env=None) -> None:
    run = subprocess.run(
        ["make", "-C", str(directory), f"PYVMM={pyvmm_command}", "CFLAGS=-Werror"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@needs_gcc
@pytest.mark.kvm
def test_hello_world_guest_from_the_tree(tmp_path):
    project = tmp_path / "hello"
    assert pyvmm("new", str(project)).returncode == 0
    _make(project, f"{sys.executable} -m pyvmm")
    run = pyvmm("run", str(project / "hello.elf"), "--cmdline", "name=sdk code=3", "--memory", "32M")
    assert run.returncode == 3, run
    minor = abi.ABI_VERSION_MINOR
    assert run.stdout == f"hello, sdk, from a pyvmm guest (ABI 1.{minor}, 32 MiB)\n"


@needs_gcc
@pytest.mark.kvm
def test_from_a_built_wheel_in_a_fresh_venv(tmp_path):
    """What a user outside this repository does: install the wheel, build the SDK's
    hello-world, run it, and run the examples (the pytest one with the plugin the wheel
    registers). cwd is outside the tree, so nothing is imported from the checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("pyvmm-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", f"{wheel}[test]"], check=True, capture_output=True, timeout=600
    )
    home = tmp_path / "user"
    home.mkdir()
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PYVMM_CACHE_DIR": str(home / "cache")}

    def user(*args, timeout=120):
        return subprocess.run(args, cwd=home, env=env, capture_output=True, text=True, timeout=timeout)

    where = user(str(py), "-c", "import pyvmm.sdk; print(pyvmm.sdk.SDK_DIR)")
    assert where.stdout.startswith(str(venv)), where
    assert user("pyvmm", "new", "hello").returncode == 0
    _make(home / "hello", "pyvmm", env=env)
    run = user("pyvmm", "run", "hello/hello.elf", "--cmdline", "name=wheel")
    assert run.returncode == 0, run
    assert "hello, wheel, from a pyvmm guest" in run.stdout
    # The bundled kernel from the wheel (built into the user's cache), and the examples.
    assert user("pyvmm", "run", "--cmdline", "test=errno").returncode == 0
    for example in ("ext_hypercall.py", "kv_channel.py"):
        run = user(str(py), str(ROOT / "examples" / example))
        assert run.returncode == 0, (example, run)
    run = user("pyvmm", "run", "--plugin", str(ROOT / "examples" / "plugin_shout.py"), "--cmdline", "test=ext")
    assert run.returncode == 0 and "ext 64: 12 buf=PING" in run.stdout, run
    shutil.copy(ROOT / "examples" / "test_guest.py", home / "test_guest.py")
    run = user(str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_guest.py")
    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout + run.stderr
