"""Load a file of scripts/ as a module, for the tests of its pure parts.

The scripts import their shared module (scripts/nestedkit.py) by name, as a script's
own directory is on ``sys.path`` when it runs; here it is put there too.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from ..conftest import ROOT

SCRIPTS = ROOT / "scripts"


def load_script(name: str) -> ModuleType:
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
