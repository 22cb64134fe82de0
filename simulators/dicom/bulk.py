"""Bulk loading of the archive's index: many object files, few transactions.

Why apart from :mod:`simulators.dicom.store`: the store's contract is one durable
object per acknowledged C-STORE; a bulk load (the legacy seeder writing a history of
100,000 studies) trades that for speed, one transaction per ``batch`` objects and one
file-system sync at the end, and a crash mid-load is repaired by re-running it (or by
:meth:`DicomStore.reconcile`, which indexes unindexed files).

Store-internal: only :meth:`DicomStore.bulk_loader` builds one, and it knows no SQL -
it queues :func:`~simulators.dicom.store.index_rows` tuples and hands each batch to
:meth:`DicomStore.index_batch` (one ``executemany`` per table in one transaction).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simulators.dicom.store import DicomStore, index_rows


class BulkIndexer:
    """Batched index inserts for files written outside :meth:`DicomStore.put`."""

    def __init__(self, store: DicomStore, batch: int = 5000) -> None:
        self._store, self._batch = store, max(1, batch)
        self._pending: list[tuple[tuple[Any, ...], ...]] = []
        self.indexed = 0

    def add(self, keys: dict[str, str], path: Path, *, transfer_syntax: str, size: int) -> None:
        """Queue one written object file for the index."""
        self._pending.append(index_rows(keys, self._store.relative(path), transfer_syntax, "",
                                        size, ""))
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Commit the queued rows in one transaction."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        self._store.index_batch(rows)
        self.indexed += len(rows)

    def close(self) -> None:
        """Commit what is left, make the files and the index durable, and seal the store:
        opening a sealed store skips the reconcile walk (minutes at 500k files)."""
        self.flush()
        os.sync()
        self._store.seal()

    def __enter__(self) -> "BulkIndexer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["BulkIndexer"]
