"""Byte mutations of recorded valid exchanges, shared by the property tests and the
socket fuzzer.

Why these operators: they are the ways a real network, a broken peer or an attacker
damages a valid message - a flipped bit, a cut-off tail, a length field that lies, a
repeated or spliced chunk, random junk. Starting from a *valid* exchange keeps the
mutants deep enough to reach the decoders behind the framing; pure random bytes
rarely get past the first length check. Every operator is a pure function of a
``random.Random`` so a failing case is replayed from its seed.
"""

from __future__ import annotations

import random
import struct
from typing import Callable

Mutator = Callable[[bytes, random.Random], bytes]


def bit_flip(data: bytes, rng: random.Random) -> bytes:
    """Flip 1-8 random bits."""
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    """Cut the tail off at a random point."""
    return data[:rng.randrange(len(data))] if data else data


def lying_length(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a 2- or 4-byte big-endian word with a boundary value.

    PDU, item and PDV lengths are big-endian words; the values chosen are the ones
    that break naive decoders (0, 1, just over the real size, the maximum).
    """
    if len(data) < 6:
        return data
    width = rng.choice((2, 4))
    offset = rng.choice([2, 4] if width == 4 else [2, 4]) if rng.random() < 0.5 \
        else rng.randrange(len(data) - width)
    limit = (1 << (8 * width)) - 1
    value = rng.choice((0, 1, 2, 6, len(data), len(data) + 1, limit, limit - 1,
                        rng.randrange(limit + 1)))
    out = bytearray(data)
    out[offset:offset + width] = value.to_bytes(width, "big")
    return bytes(out)


def duplicate(data: bytes, rng: random.Random) -> bytes:
    """Repeat a random slice in place (a retransmitted or looping chunk)."""
    if not data:
        return data
    start = rng.randrange(len(data))
    end = rng.randint(start, min(len(data), start + 256))
    return data[:end] + data[start:end] * rng.randint(1, 4) + data[end:]


def insert_junk(data: bytes, rng: random.Random) -> bytes:
    """Insert 1-64 random bytes at a random point."""
    at = rng.randint(0, len(data))
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return data[:at] + junk + data[at:]


def delete_slice(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 2:
        return data
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 32):]


def special_bytes(data: bytes, rng: random.Random) -> bytes:
    """Plant protocol delimiters (MLLP VT/FS/CR, 0x00, 0xFF) at random points."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out.insert(rng.randint(0, len(out)), rng.choice((0x0B, 0x1C, 0x0D, 0x00, 0xFF, 0x7C)))
    return bytes(out)


MUTATORS: dict[str, Mutator] = {
    "bit_flip": bit_flip, "truncate": truncate, "lying_length": lying_length,
    "duplicate": duplicate, "insert_junk": insert_junk, "delete_slice": delete_slice,
    "special_bytes": special_bytes,
}


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> tuple[bytes, list[str]]:
    """Apply 1-3 random operators; returns the mutant and the operator names used."""
    names = []
    for _ in range(rounds if rounds is not None else rng.randint(1, 3)):
        name = rng.choice(sorted(MUTATORS))
        data = MUTATORS[name](data, rng)
        names.append(name)
    return data, names


def pdu(pdu_type: int, body: bytes) -> bytes:
    """A PDU with a correct header around ``body`` (for building valid exchanges)."""
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


__all__ = ["MUTATORS", "Mutator", "mutate", "pdu", "bit_flip", "truncate", "lying_length",
           "duplicate", "insert_junk", "delete_slice", "special_bytes"]
