"""Deterministic randomness and UIDs derived from ``(seed, kind, parts...)``.

Why not one ``random.Random(seed)`` for the whole world? Because then patient 7 would
depend on how many patients, orders or images were drawn before it, and two scenarios
asking for the same patient in a different order would disagree. Hashing the full key
gives every record its own independent stream, so results never depend on call order.
"""

from __future__ import annotations

import hashlib
import random
import re

from simulators.errors import ConfigError

MAX_UID_LENGTH = 64
#: Leave at least this many digits for the generated component, so UIDs stay unique.
MIN_UID_DIGITS = 20

_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.$")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def digest(seed: int, kind: str, *parts: object) -> bytes:
    """SHA-256 over an unambiguous encoding of the key (``repr`` keeps 1 != "1")."""
    key = "\x1f".join([repr(seed), kind, *(repr(part) for part in parts)])
    return hashlib.sha256(key.encode("utf-8")).digest()


def derived_int(seed: int, kind: str, *parts: object) -> int:
    """A large non-negative integer that only depends on the key."""
    return int.from_bytes(digest(seed, kind, *parts), "big")


def derived_random(seed: int, kind: str, *parts: object) -> random.Random:
    """An independent ``random.Random`` stream for one record."""
    return random.Random(derived_int(seed, kind, *parts))


def normalise_uid_root(root: str) -> str:
    """Check a UID root and return it with exactly one trailing dot.

    Raises ConfigError for roots that would yield invalid UIDs (letters, leading zeros
    in a component) or leave too little room for a unique suffix within 64 characters.
    """
    candidate = root.strip()
    if candidate and not candidate.endswith("."):
        candidate += "."
    if not _UID_ROOT.match(candidate):
        raise ConfigError("UID root must be dot-separated numbers without leading zeros",
                          uid_root=root)
    if len(candidate) > MAX_UID_LENGTH - MIN_UID_DIGITS:
        raise ConfigError(f"UID root is too long; keep it under "
                          f"{MAX_UID_LENGTH - MIN_UID_DIGITS} characters", uid_root=root)
    return candidate


def derived_uid(root: str, seed: int, kind: str, *parts: object) -> str:
    """A valid UID under ``root`` (already normalised) that only depends on the key.

    The suffix is the decimal digest truncated to fill the 64 characters: its first digit
    is never 0 (no leading zero) and >= 20 digits keep collisions negligible.
    """
    room = MAX_UID_LENGTH - len(root)
    return root + str(derived_int(seed, kind, *parts))[:room]


def is_valid_uid(uid: str) -> bool:
    """True for a syntactically valid DICOM UID (PS3.5 9.1)."""
    return len(uid) <= MAX_UID_LENGTH and bool(_UID.match(uid))


__all__ = ["digest", "derived_int", "derived_random", "derived_uid", "normalise_uid_root",
           "is_valid_uid", "MAX_UID_LENGTH"]
