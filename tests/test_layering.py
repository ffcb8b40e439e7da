"""The import rule of the tree: science core ← NequIP adapter ← LAMMPS plugin ← app.

Every module of the four layers is read (not imported): module- and function-level ``import``
statements, ``importlib.import_module(...)`` / ``__import__(...)`` calls and strings naming a
module (``"pkg.mod"`` / ``"pkg.mod:Attr"``, the form entry points and hydra targets take) must point
to the module's own layer or one below it, and third-party packages must be ones its layer may use.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ORDER = ("core", "adapter", "plugin", "app")
# what each layer may import besides the standard library and the layers below it
THIRD_PARTY = {
    "core": {"numpy", "scipy", "faiss", "matplotlib", "ase", "ase_db_backends", "psycopg2", "yaml", "gpaw"},
    "adapter": {"torch", "torchmetrics", "nequip", "lightning", "hydra", "omegaconf", "vesin"},
    "plugin": {"lammps", "mpi4py"},
    "app": {"parsl"},
}
MODULE_STRING = re.compile(r"^([A-Za-z_]\w*)(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if module == "ltau_md.nequip" or module.startswith("ltau_md.nequip."):
        return "adapter"
    return {"ltau_md": "core", "lammps_plugin": "plugin", "ltau_app": "app"}.get(top)


def allowed_third_party(layer: str) -> set[str]:
    out: set[str] = set()
    for name in ORDER[: ORDER.index(layer) + 1]:
        out |= THIRD_PARTY[name]
    return out


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, module: str):
    """(line, imported module, how) for every import-like reference in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, "from-import"
            for alias in node.names:  # `from ltau_md import nequip` reaches ltau_md.nequip
                yield node.lineno, f"{target}.{alias.name}", "from-import"
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                yield node.lineno, str(node.args[0].value), f"{name}()"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if MODULE_STRING.match(node.value) and ("." in node.value or ":" in node.value):
                target = node.value.split(":")[0]
                if layer_of(target) or target.split(".")[0] in set().union(*THIRD_PARTY.values()):
                    yield node.lineno, target, "string"


def violations(root: Path) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    out = []
    for pkg in ("ltau_md", "lammps_plugin", "ltau_app"):
        for path in sorted((root / pkg).rglob("*.py")):
            module = module_name(root, path)
            mine = layer_of(module)
            for line, target, how in imports_of(path, module):
                top = target.split(".")[0]
                theirs = layer_of(target)
                where = f"{path.relative_to(root)}:{line}"
                if theirs is not None:
                    if ORDER.index(theirs) > ORDER.index(mine):
                        out.append(f"{where}: {mine} module {module} reaches up into the {theirs} layer ({how} {target})")
                elif top not in stdlib and top not in allowed_third_party(mine) and top != "__future__":
                    if mine != "app":
                        out.append(f"{where}: {mine} module {module} uses {top} ({how}), not allowed in the {mine} layer")
    return list(dict.fromkeys(out))


def test_every_import_points_down_the_layers():
    assert violations(REPO) == []


def core_modules() -> list[Path]:
    return [p for p in sorted((REPO / "ltau_md").rglob("*.py")) if layer_of(module_name(REPO, p)) == "core"]


PLANTS = {
    "import torch in a function": "\n\ndef _planted():\n    import torch\n",
    "from-import of the plugin": "\n\ndef _planted():\n    from lammps_plugin import driver\n",
    "importlib string": "\n\ndef _planted():\n    import importlib\n    importlib.import_module('ltau_md.nequip.model')\n",
    "module:Class string": "\n\n_PLANTED = {'x': 'lammps_plugin.meam_reference:MeamCalculator'}\n",
    "the app": "\n\ndef _planted():\n    import ltau_app.loop\n",
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_wrong_way_import_planted_in_any_core_module_is_caught(tmp_path, plant):
    for pkg in ("ltau_md", "lammps_plugin", "ltau_app"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    modules = core_modules()
    assert len(modules) >= 20
    for path in modules:
        target = tmp_path / path.relative_to(REPO)
        target.write_text(path.read_text() + PLANTS[plant])
    found = violations(tmp_path)
    for path in modules:
        assert any(v.startswith(f"{path.relative_to(REPO)}:") for v in found), (path, found)


def test_the_nequip_adapter_may_not_reach_lammps():
    assert any("adapter module" in v for v in _planted_in("ltau_md/nequip/model.py", "\n\ndef _p():\n    import lammps\n"))


def _planted_in(relpath: str, code: str) -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for pkg in ("ltau_md", "lammps_plugin", "ltau_app"):
            shutil.copytree(REPO / pkg, Path(d) / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        (Path(d) / relpath).write_text((REPO / relpath).read_text() + code)
        return violations(Path(d))


def test_importing_every_core_module_loads_no_torch_lammps_or_mpi():
    names = [module_name(REPO, p) for p in core_modules()]
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        "bad = [m for m in ('torch', 'nequip', 'lammps', 'mpi4py', 'lammps_plugin', 'ltau_app') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
