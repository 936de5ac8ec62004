"""engine/: populations of chips, batched evaluation, seeding, calibration, campaigns, stores
and executors."""

from cimtest.engine.bank import InputBank
from cimtest.engine.batched import BatchedForward
from cimtest.engine.campaign import Campaign
from cimtest.engine.executors import ChunkTask, DaskExecutor, Executor, InProcessExecutor
from cimtest.engine.layout import weight_layout
from cimtest.engine.population import ChipSpec, Population, chip_accuracies
from cimtest.engine.seeding import chip_generators, chip_seed
from cimtest.engine.store import (
    BaseStore,
    CampaignRecord,
    ChipTable,
    ChunkRecord,
    ChunkResult,
    InMemoryStore,
    RunRecord,
    SQLiteStore,
    StoreStatus,
)
from cimtest.engine.stored import StoredChips

__all__ = [
    "BaseStore",
    "BatchedForward",
    "Campaign",
    "CampaignRecord",
    "ChipSpec",
    "ChipTable",
    "ChunkRecord",
    "ChunkResult",
    "ChunkTask",
    "DaskExecutor",
    "Executor",
    "InMemoryStore",
    "InProcessExecutor",
    "InputBank",
    "Population",
    "RunRecord",
    "SQLiteStore",
    "StoreStatus",
    "StoredChips",
    "chip_accuracies",
    "chip_generators",
    "chip_seed",
    "weight_layout",
]
