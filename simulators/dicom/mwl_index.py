"""Worklist items as plain values, and their encoded answers cached per query shape.

Why: 200 modalities asking the RIS for a broad worklist at once spent 73 % of the
burst in pydicom (issue 19 profile): ``match_dataset`` reading and deep-copying
each item's elements for every query (35 %), and encoding every match again
(37 %: 50,000 encodes a burst, nothing reused between identical queries).

Here each item is read once, when it changes, into a :class:`WorklistRecord`:
its values split into plain strings exactly as :func:`~simulators.dicom.matching.values_of`
does. A query is compiled once (:func:`compile_query`) and matched against those
strings with the *same* value matcher (:func:`~simulators.dicom.matching.match_values`)
and the same key rules as :func:`~simulators.dicom.matching.match_dataset`
(universal keys, sequence keys, combined date-time pairs); the unit tests compare
the two on many random queries.

What a matching item answers depends only on the item, the requested keys with
their VRs (the *signature*), which sequence items matched (the *shape*) and the
transfer syntax. So the first query of a signature builds the response with
``match_dataset`` and encodes it, and every later one reuses the bytes. A changed
item is a new record (the order book rebuilds it), so stale answers cannot be served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator

from pydicom.dataset import Dataset

from simulators.dicom.matching import (
    NON_KEY_TAGS, applicable_pairs, is_universal_key, match_dataset, match_date_time_pair,
    match_values, values_of,
)

#: Encoded answers kept per item; a query with a new signature beyond this starts over.
#: Real modalities send a handful of key sets, so this only bounds a hostile client.
MAX_CACHED_ANSWERS = 32

#: The requested keys of a query (tag, VR, sub-signature of a matching sequence key).
Signature = tuple[Any, ...]
#: Which items of each matching sequence key matched, recursively.
Shape = tuple[Any, ...]


class _Fallback(Exception):
    """A key/candidate combination the plain matcher does not model (e.g. a sequence
    key against a non-sequence element): that item is matched by ``match_dataset``."""


@dataclass(slots=True)
class PlainElement:
    """One element of an item as the matcher reads it."""

    vr: str
    values: list[str] | None  # values_of(value); None for a sequence
    text: str                 # "" for None, else str(value): combined date-time input
    items: tuple["PlainDataset", ...] | None  # a sequence's items


@dataclass(slots=True)
class PlainDataset:
    elements: dict[int, PlainElement]


def plain_dataset(ds: Dataset) -> PlainDataset:
    """Split every element's value once (sequences recursively)."""
    elements: dict[int, PlainElement] = {}
    for element in ds:
        value = element.value
        if element.VR == "SQ":
            items = tuple(plain_dataset(item) for item in (value or []))
            elements[int(element.tag)] = PlainElement("SQ", None, "", items)
        else:
            elements[int(element.tag)] = PlainElement(
                element.VR, values_of(value), "" if value is None else str(value), None)
    return PlainDataset(elements)


@dataclass(slots=True)
class WorklistRecord:
    """One worklist item: the dataset, its plain values, and its encoded answers.

    Immutable in meaning: the order book makes a new record whenever the item
    changes, which is what invalidates the cache.
    """

    dataset: Dataset
    plain: PlainDataset
    answers: dict[tuple[str, Signature, Shape], bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, dataset: Dataset) -> "WorklistRecord":
        return cls(dataset, plain_dataset(dataset))

    def answer(self, query: "CompiledQuery", shape: Shape, transfer_syntax: str,
               encode: Callable[[Dataset], bytes]) -> bytes:
        """The encoded response identifier for a query that matched with ``shape``."""
        key = (transfer_syntax, query.signature, shape)
        cached = self.answers.get(key)
        if cached is not None:
            return cached
        response = match_dataset(query.identifier, self.dataset,
                                 pn_case_sensitive=query.pn_case_sensitive,
                                 combined_pairs=query.pairs)
        if response is None:  # cannot happen: the plain matcher said it matches
            raise RuntimeError("worklist item matched plainly but not by match_dataset")
        encoded = encode(response)
        with self.lock:
            if len(self.answers) >= MAX_CACHED_ANSWERS:
                self.answers.clear()
            self.answers[key] = encoded
        return encoded


# ------------------------------------------------------------------ compiled query
@dataclass(slots=True)
class _Key:
    tag: int
    vr: str
    universal: bool
    values: list[str]
    item: "_Keys | None"  # a non-universal sequence key's item


@dataclass(slots=True)
class _Keys:
    keys: list[_Key]
    signature: Signature
    #: The combined date-time pairs that apply at this level (date tag, time tag, date
    #: key text, time key text): match_dataset carries the pairs into sequence items,
    #: where MWL's Scheduled Procedure Step Start Date/Time live.
    pairs: list[tuple[int, int, str, str]] = field(default_factory=list)


def _compile_keys(ds: Dataset, pairs: list[tuple[int, int]] | None = None) -> _Keys:
    pairs = pairs or []
    keys, signature = [], []
    for element in ds:
        tag = int(element.tag)
        if tag in NON_KEY_TAGS or element.tag.is_private or element.tag.element == 0:
            continue
        universal = is_universal_key(element)
        if element.VR == "SQ":
            item = None if universal else _compile_keys(element.value[0], pairs)
            keys.append(_Key(tag, "SQ", universal, [], item))
            signature.append((tag, "SQ", universal, item.signature if item else None))
        else:
            keys.append(_Key(tag, element.VR, universal, values_of(element.value), None))
            signature.append((tag, element.VR))
    return _Keys(keys, tuple(signature), applicable_pairs(ds, pairs))


@dataclass(slots=True)
class CompiledQuery:
    """A decoded, valid MWL identifier prepared for plain matching."""

    identifier: Dataset
    keys: _Keys
    pairs: list[tuple[int, int]]
    #: The combined pairs that apply: (date tag, time tag, date key text, time key text).
    active_pairs: list[tuple[int, int, str, str]]
    pn_case_sensitive: bool

    @property
    def signature(self) -> Signature:
        return self.keys.signature


def compile_query(identifier: Dataset, *, pn_case_sensitive: bool = False,
                  combined_pairs: Iterable[tuple[int, int]] = ()) -> CompiledQuery:
    """Prepare ``identifier`` once; ``combined_pairs`` as in ``match_dataset``."""
    pairs = list(combined_pairs)
    keys = _compile_keys(identifier, pairs)
    return CompiledQuery(identifier, keys, pairs, keys.pairs, pn_case_sensitive)


def match_plain(query: CompiledQuery, record: WorklistRecord) -> Shape | None:
    """The shape of the match, or None when ``record`` does not match ``query``.

    Same decision as ``match_dataset(query.identifier, record.dataset, ...) is not None``.
    """
    return _match_keys(query.keys, record.plain, query.pn_case_sensitive)


def _match_keys(keys: _Keys, candidate: PlainDataset, pn_case_sensitive: bool) -> Shape | None:
    shape = []
    elements = candidate.elements
    paired: set[int] = set()
    for date_tag, time_tag, date_key, time_key in keys.pairs:
        date_have, time_have = elements.get(date_tag), elements.get(time_tag)
        if (date_have is not None and date_have.vr == "SQ") or \
                (time_have is not None and time_have.vr == "SQ"):
            raise _Fallback
        if not match_date_time_pair(date_key, time_key,
                                    date_have.text if date_have else "",
                                    time_have.text if time_have else ""):
            return None
        paired.update((date_tag, time_tag))
    for key in keys.keys:
        have = elements.get(key.tag)
        if key.vr == "SQ":
            if key.universal:
                continue  # every candidate item is returned: no shape to record
            if have is None:
                return None
            if have.vr != "SQ":
                raise _Fallback
            if not have.items:
                return None
            matched = []
            for index, item in enumerate(have.items):
                sub = _match_keys(key.item, item, pn_case_sensitive)  # type: ignore[arg-type]
                if sub is not None:
                    matched.append((index, sub))
            if not matched:
                return None
            shape.append(tuple(matched))
            continue
        if key.universal or key.tag in paired:
            continue
        if have is None:
            return None
        if have.values is None:
            raise _Fallback
        if not match_values(key.values, have.values, key.vr, pn_case_sensitive=pn_case_sensitive):
            return None
    return tuple(shape)


def matching_answers(query: CompiledQuery, records: Iterable[WorklistRecord],
                     transfer_syntax: str, encode: Callable[[Dataset], bytes], *,
                     max_results: int | None = None) -> Iterator[bytes]:
    """The encoded response identifiers of the matching ``records``, in order."""
    sent = 0
    for record in records:
        if max_results is not None and sent >= max_results:
            return
        try:
            shape = match_plain(query, record)
        except _Fallback:  # match_dataset decides; such an answer is not cached
            response = match_dataset(query.identifier, record.dataset,
                                     pn_case_sensitive=query.pn_case_sensitive,
                                     combined_pairs=query.pairs)
            if response is not None:
                sent += 1
                yield encode(response)
            continue
        if shape is None:
            continue
        sent += 1
        yield record.answer(query, shape, transfer_syntax, encode)


class AnswerMemo:
    """The encoded answers of recent queries, each valid for one worklist version.

    Why: at a department's start of shift many modalities send the *same* broad
    query (same keys, same values) within seconds; with the worklist unchanged the
    answer is the same list of bytes, so only the first one matches. The key is
    (worklist version, the identifier's bytes as received, transfer syntax,
    options): any change of any order bumps the version (OrderBook), so a memo
    entry never outlives the worklist it was computed from. Bounded (LRU).
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, list[bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable) -> list[bytes] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: Hashable, answers: list[bytes]) -> None:
        with self._lock:
            self._entries[key] = answers
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


__all__ = [
    "AnswerMemo", "CompiledQuery", "MAX_CACHED_ANSWERS", "PlainDataset", "PlainElement", "WorklistRecord",
    "compile_query", "match_plain", "matching_answers", "plain_dataset",
]
