"""Reading MANO model pickles without letting them run code.

A pickle names the functions and classes it calls while it loads (its *globals*); a plain
``pickle.load`` imports and calls whatever the file names (``os.system`` included). MANO's
``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (Python 2 pickles) need only these:

- numpy arrays, dtypes and scalars (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy.core.multiarray.scalar``; ``_frombuffer`` for protocol-5 pickles);
- ``J_regressor``: a ``scipy.sparse`` CSC matrix (``scipy.sparse.csc.csc_matrix``, or
  ``scipy.sparse._csc`` as newer scipy names it);
- chumpy arrays (``chumpy.ch.Ch`` and other ``chumpy.*`` classes) for some arrays: chumpy is not
  imported (it does not import on numpy >= 1.24); a stand-in object keeps their state and
  ``unchumpy`` turns it into a numpy array;
- the generic object rebuilders of protocols 0-2 (``copy_reg._reconstructor``,
  ``__builtin__.object``), ``__builtin__.set`` (a ``Ch``'s state holds one: ``_dirty_vars``) and
  ``_codecs.encode`` (bytes in protocol-2 pickles written by Python 3);
- plain dicts, lists, tuples and strings (opcodes, no globals).

Every other global is refused before it is imported: ``UnsafePickleError`` names it.
"""

import copyreg
import pickle
from typing import BinaryIO

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allowed set (``self.name`` is ``module.name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"it asks for '{name}', which a MANO model file never needs")
        self.name = name


class ChumpyStandIn:
    """Holds a chumpy object's pickled state (``x`` for ``Ch``, ``a`` for reorderings) without chumpy."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):  # (dict, slots)
            state = state[0]
        self.__dict__.update(state if isinstance(state, dict) else {"x": state})

    def __array__(self, dtype=None, copy=None):
        return np.asarray(unchumpy(self), dtype=dtype)


def unchumpy(value: object) -> object:
    """A chumpy stand-in (possibly nested) -> numpy array; anything else unchanged."""
    for _ in range(16):  # a Ch may wrap another Ch (chumpy expressions): unwrap a bounded depth
        if not isinstance(value, ChumpyStandIn):
            return value
        state = value.__dict__
        if "x" in state:
            value = state["x"]
        elif "a" in state:
            value = state["a"]
        else:
            raise pickle.UnpicklingError(f"a chumpy object without an array value (fields {sorted(state)[:8]})")
    raise pickle.UnpicklingError("chumpy objects nested too deeply")


def _numpy_globals():
    arr = np.zeros(1)
    table = {
        "_reconstruct": arr.__reduce__()[0],
        "scalar": np.float64(0).__reduce__()[0],
        "_frombuffer": arr.__reduce_ex__(5)[0],
        "ndarray": np.ndarray,
        "dtype": np.dtype,
    }
    modules = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
               "numpy._core.numeric")
    return {(m, n): obj for m in modules for n, obj in table.items()}


def _sparse(name):
    import scipy.sparse

    return getattr(scipy.sparse, name)


SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")
ALLOWED = {
    **_numpy_globals(),
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # Python 2's copy_reg (fix_imports maps it)
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("builtins", "object"): object,  # __builtin__.object: the base _reconstructor builds on
    ("__builtin__", "object"): object,
    ("_codecs", "encode"): __import__("_codecs").encode,
    ("builtins", "set"): set,  # a chumpy Ch's state holds a set (``_dirty_vars``)
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
}


class ManoUnpickler(pickle.Unpickler):
    """An unpickler that builds only what MANO files hold (see the module docstring)."""

    def find_class(self, module: str, name: str) -> type:
        key = (module, name)
        if key in ALLOWED:
            return ALLOWED[key]
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in SPARSE_CLASSES:
            return _sparse(name)
        if (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier():
            return ChumpyStandIn  # chumpy's classes (Ch, Select, ...): never imported, state kept
        raise UnsafePickleError(f"{module}.{name}")


def load_mano_pickle(fh: BinaryIO) -> dict:
    """Unpickle an open MANO ``.pkl`` (binary file) -> dict with chumpy arrays turned into numpy.

    Raises ``UnsafePickleError`` for any global outside the allowed set (nothing it names is
    imported or called), ``pickle.UnpicklingError`` / ``ValueError`` etc. for a damaged file.
    """
    data = ManoUnpickler(fh, encoding="latin1").load()
    if not isinstance(data, dict):
        raise pickle.UnpicklingError(f"expected a dict of arrays, got {type(data).__name__}")
    return {k: unchumpy(v) for k, v in data.items()}
