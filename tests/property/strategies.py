"""Hypothesis strategies shared by the parser properties: valid inputs and mutants."""

from __future__ import annotations

import random

from hypothesis import strategies as st

from tests.fuzz.mutations import MUTATORS

#: Bounded sizes: no property may be able to hang or eat memory.
MAX_BYTES = 4096


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid input damaged by 0-3 of the fuzzer's mutation operators."""
    data = draw(valid)
    seed = draw(st.integers(0, 2**32 - 1))
    names = draw(st.lists(st.sampled_from(sorted(MUTATORS)), max_size=3))
    rng = random.Random(seed)
    for name in names:
        data = MUTATORS[name](data, rng)
    return data[:MAX_BYTES * 4]


def damaged(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Mutants of ``valid`` most of the time, plain random bytes sometimes."""
    return st.one_of(mutated(valid), st.binary(max_size=MAX_BYTES))


text = st.text(max_size=512)
