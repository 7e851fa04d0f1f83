"""Counter-based randomness: every synthetic value is a pure function of (seed, key, name).

Orders are never stored as objects; they are re-rendered on every request. That only works if
the random choices behind an order (its lines, payment method, address...) come back identical
each time, in any order of access and for any page size. A stateful RNG cannot do that, so we
hash instead: SplitMix64 over (seed, salt of the field name, key). The vectorised form turns a
page of order indices into a column of values with a handful of numpy operations.
"""

from __future__ import annotations

import zlib

import numpy as np

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_INV_2_53 = 1.0 / float(1 << 53)


def mix64(x: int) -> int:
    """SplitMix64 finaliser on a Python int (wrapping at 64 bits)."""
    z = (x + _GOLDEN) & _M64
    z = ((z ^ (z >> 30)) * _C1) & _M64
    z = ((z ^ (z >> 27)) * _C2) & _M64
    return z ^ (z >> 31)


def _mix_array(x: np.ndarray) -> np.ndarray:
    # uint64 arithmetic wraps silently for arrays, which is exactly what SplitMix needs.
    z = x + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_C1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_C2)
    return z ^ (z >> np.uint64(31))


class Hasher:
    """Deterministic per-field random streams keyed by integers."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._salts: dict[str, int] = {}

    def salt(self, name: str) -> int:
        salt = self._salts.get(name)
        if salt is None:
            salt = mix64(mix64(self.seed & _M64) ^ zlib.crc32(name.encode()))
            self._salts[name] = salt
        return salt

    def u64(self, keys: np.ndarray, name: str) -> np.ndarray:
        x = np.asarray(keys).astype(np.uint64) * np.uint64(_GOLDEN)
        return _mix_array(x ^ np.uint64(self.salt(name)))

    def uniform(self, keys: np.ndarray, name: str) -> np.ndarray:
        """Floats in [0, 1)."""
        return (self.u64(keys, name) >> np.uint64(11)).astype(np.float64) * _INV_2_53

    def below(self, keys: np.ndarray, name: str, n: int | np.ndarray) -> np.ndarray:
        """Ints in [0, n); `n` may be an array (one bound per key)."""
        return (self.uniform(keys, name) * n).astype(np.int64)

    def scalar(self, key: int, name: str) -> float:
        """One float in [0, 1) without numpy overhead (for per-object rendering)."""
        z = mix64(((key * _GOLDEN) & _M64) ^ self.salt(name))
        return (z >> 11) * _INV_2_53

    def scalar_below(self, key: int, name: str, n: int) -> int:
        return int(self.scalar(key, name) * n)

    def hex32(self, key: int, name: str) -> str:
        """32 lowercase hex digits, like Centra's selectionId."""
        a = mix64(((key * _GOLDEN) & _M64) ^ self.salt(name))
        b = mix64(a ^ self.salt(name + "/2"))
        return f"{a:016x}{b:016x}"


def pick_weighted(u: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """Map uniforms to indices 0..len(weights)-1 with the given relative weights."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    cumulative /= cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, u, side="right"), len(weights) - 1)
