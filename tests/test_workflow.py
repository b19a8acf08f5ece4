"""The GitHub Actions workflow is valid (checked against the published schema, bundled with
check-jsonschema) and runs the README's two commands."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_workflow_validates_against_the_schema():
    beside = Path(sys.executable).parent / "check-jsonschema"  # installed with pyvmm[test]
    tool = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is not installed (pip install -e '.[test]')"
    run = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_workflow_runs_the_readmes_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL).group(1).strip().splitlines()
    assert len(first_block) == 2
    text = WORKFLOW.read_text()
    for command in first_block:
        assert f"run: {command}" in text, command
    assert "udevadm trigger --name-match=kvm" in text
