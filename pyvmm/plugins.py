"""``pyvmm run --plugin FILE.py``: a prototype hypercall, channel or hook without changing pyvmm.

A plugin is a Python file defining ``setup(vm)``. *vm* is the registration half of
:class:`pyvmm.VM` (:class:`pyvmm.extensions.Extensions`): ``vm.hypercall(nr, fn)``,
``vm.add_channel(channel)``, ``vm.on(event, fn)``, and ``vm.options`` (the run's
options, read-only). Plugins load in the order given, before the VM is built, and their
code then runs inside the contained pyvmm: after the seccomp filter is loaded a plugin
cannot open files, sockets or processes, so it opens what it needs in ``setup``.

A plugin that cannot be read, fails to import, has no ``setup``, raises in it, or
registers a reserved or taken number is a :class:`PluginError`: one line naming the
plugin and the problem (``pyvmm run`` exits 2).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from types import ModuleType

from pyvmm.extensions import ExtensionError, Extensions


class PluginError(Exception):
    """A plugin could not be loaded or set up; the message is one line naming it."""


@dataclass
class PluginVM:
    """What ``setup(vm)`` gets: registration (forwarded to :class:`Extensions`) and the options."""

    _ext: Extensions
    options: object

    def hypercall(self, nr, fn) -> None:
        self._ext.hypercall(nr, fn)

    def add_channel(self, channel) -> int:
        return self._ext.add_channel(channel)

    def on(self, event, fn) -> None:
        self._ext.on(event, fn)


def load(path: str, ext: Extensions, options: object = None) -> ModuleType:
    """Import the plugin at *path* and run its ``setup`` against *ext*. Raises :class:`PluginError`."""
    name = f"pyvmm_plugin_{len(sys.modules)}_{os.path.splitext(os.path.basename(path))[0]}"
    if not os.path.isfile(path):
        raise PluginError(f"--plugin {path}: no such file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"--plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # a plugin's SystemExit or syntax error is still its problem, not ours
        raise PluginError(f"--plugin {path}: cannot import it: {_one_line(e)}") from None
    setup = getattr(module, "setup", None)
    if not callable(setup):
        raise PluginError(f"--plugin {path}: defines no setup(vm) function")
    try:
        setup(PluginVM(ext, options))
    except ExtensionError as e:
        raise PluginError(f"--plugin {path}: {e}") from None
    except BaseException as e:
        raise PluginError(f"--plugin {path}: setup() raised {_one_line(e)}") from None
    return module


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
