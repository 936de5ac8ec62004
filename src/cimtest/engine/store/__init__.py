"""Campaign stores: a campaign's record and per-chip results, kept so a killed run resumes.

A store holds one campaign. `BaseStore` (``base``) has a few abstract create/read methods
returning the frozen records of ``records`` and builds the rest (resume or refuse, missing
chip ranges, tables, status) from them. `InMemoryStore` (``memory``) is the default and the
reference for tests; `SQLiteStore` (``sqlite``, schema in ``schema``) is a file in WAL mode,
one row per chip, committed per chunk, plus a folder of safetensors side files when chip
outputs are kept. See ``docs/store.md``.
"""

from cimtest.engine.store.base import BaseStore
from cimtest.engine.store.memory import InMemoryStore
from cimtest.engine.store.records import (
    CampaignRecord,
    ChipTable,
    ChunkRecord,
    ChunkResult,
    RunRecord,
    StoreStatus,
)
from cimtest.engine.store.schema import SCHEMA_VERSION
from cimtest.engine.store.sqlite import SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "BaseStore",
    "CampaignRecord",
    "ChipTable",
    "ChunkRecord",
    "ChunkResult",
    "InMemoryStore",
    "RunRecord",
    "SQLiteStore",
    "StoreStatus",
]
