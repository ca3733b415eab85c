"""Reading check results: :class:`CheckExecutionFeed` pages
``instance.event_log_storage.get_asset_check_execution_history`` per check key and keeps a JSON
cursor per key. Dagster inserts a check's execution row (status PLANNED) when the run starts and
updates the SAME row (same id) when the evaluation arrives, so a high-water mark alone would skip
evaluations that finish after a later row was read. The cursor therefore holds, per check key,
``after`` (every id <= after is done) and ``seen`` (done ids above it), and the watermark only
moves over rows that are done.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import AssetCheckKey, DagsterRunStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecord

PAGE_SIZE = 200
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def check_key_id(key: AssetCheckKey) -> str:
    return f"{key.asset_key.to_user_string()}:{key.name}"


@dataclass
class KeyCursor:
    after: int = 0
    seen: set[int] = field(default_factory=set)

    def to_json(self) -> dict:
        return {"after": self.after, "seen": sorted(self.seen)}


class CheckExecutionFeed:
    """Unconsumed executions of some checks, oldest first, with a JSON cursor per check key.

    ``records(key)`` returns every execution with id > the key's watermark (consumed ones
    included, for context such as "is there a later evaluation of this window?");
    ``is_consumed`` tells which are done; ``consume`` marks more; ``cursor()`` serialises.
    """

    def __init__(self, instance, keys: Sequence[AssetCheckKey], cursor: str | None):
        self.instance, self.keys = instance, list(keys)
        data = json.loads(cursor) if cursor else {}
        stored = data.get("checks", {}) if isinstance(data, dict) else {}
        self.state = {
            k: KeyCursor(
                int(stored.get(check_key_id(k), {}).get("after", 0)),
                set(stored.get(check_key_id(k), {}).get("seen", [])),
            )
            for k in self.keys
        }
        self._records: dict[AssetCheckKey, list[AssetCheckExecutionRecord]] = {}

    def records(self, key: AssetCheckKey) -> list[AssetCheckExecutionRecord]:
        if key not in self._records:
            after = self.state[key].after
            out: list[AssetCheckExecutionRecord] = []
            page_cursor = None
            storage = self.instance.event_log_storage
            while True:
                # Newest first; `cursor` returns ids < cursor.
                page = storage.get_asset_check_execution_history(key, limit=PAGE_SIZE, cursor=page_cursor)
                out += [rec for rec in page if rec.id > after]
                if len(page) < PAGE_SIZE or page[-1].id <= after:
                    break
                page_cursor = page[-1].id
            self._records[key] = sorted(out, key=lambda rec: rec.id)
        return self._records[key]

    def is_consumed(self, key: AssetCheckKey, record_id: int) -> bool:
        state = self.state[key]
        return record_id <= state.after or record_id in state.seen

    def unconsumed(self, key: AssetCheckKey) -> list[AssetCheckExecutionRecord]:
        return [rec for rec in self.records(key) if not self.is_consumed(key, rec.id)]

    def consume(self, key: AssetCheckKey, record_id: int) -> None:
        self.state[key].seen.add(record_id)

    def cursor(self) -> str:
        for key, state in self.state.items():
            # Move the watermark over the contiguous run of consumed records.
            for rec in self.records(key) if key in self._records else []:
                if rec.id in state.seen:
                    state.after = rec.id
                else:
                    break
            state.seen = {i for i in state.seen if i > state.after}
        return json.dumps({"checks": {check_key_id(k): s.to_json() for k, s in self.state.items()}}, sort_keys=True)
