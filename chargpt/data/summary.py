"""The record of a read and its error: `CorpusSummary` counts every row that came in, went out or was dropped (and
why), and `DataFormatError` names the file, line and fix for a row that cannot be read."""

from collections import Counter
from dataclasses import dataclass, field

from transformers.utils import logging


logger = logging.get_logger(__name__)

ON_ERROR = ("raise", "skip")
_EXAMPLES_PER_REASON = 5


class DataFormatError(ValueError):
    """A file or row that cannot be read. The message names the file, the line (or item) and what to change."""

    def __init__(self, path, where: str | None, message: str):
        self.path = str(path)
        self.where = where
        super().__init__(f"{path}, {where}: {message}" if where else f"{path}: {message}")


@dataclass
class CorpusSummary:
    """What happened to every row: `read` rows came in, `kept` went out, `dropped[reason]` were dropped.

    Reasons: `malformed:*` (the reader could not use the row; only with `on_error="skip"`), `empty`, `empty_turn`,
    `too_short`, `too_long` (a text or one turn of a dialogue outside the length bounds), `too_few_turns`,
    `duplicate`, `duplicate_other_label` (a repeated text with another label; the first one is kept).
    `examples[reason]` lists where the first few dropped rows were. `by_source[file]` holds the `read` and `kept`
    counts of each file, so that a mix of corpora (LCCC, KdConv, CPED, ...) reports what each one gave.
    """

    on_error: str = "raise"
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    by_source: dict = field(default_factory=dict)
    from_cache: bool = False

    def __post_init__(self):
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}.")

    def count_read(self, source) -> None:
        """One more row came in from `source` (a file, or a `hub:` / package source)."""
        self.read += 1
        self.by_source.setdefault(str(source), {"read": 0, "kept": 0})["read"] += 1

    def count_kept(self, source) -> None:
        """One more row of `source` went out (after `count_read` for it)."""
        self.kept += 1
        self.by_source[str(source)]["kept"] += 1

    def drop(self, reason: str, where: str | None = None) -> None:
        self.dropped[reason] += 1
        if where is not None:
            seen = self.examples.setdefault(reason, [])
            if len(seen) < _EXAMPLES_PER_REASON:
                seen.append(where)

    def malformed(self, reason: str, path, where: str | None, detail: str) -> None:
        """Report a row the reader cannot use: raise (on_error="raise") or count it and go on ("skip")."""
        if self.on_error == "raise":
            raise DataFormatError(
                path, where, f"{detail} (pass on_error='skip' / --on_error skip to count and skip such rows)"
            )
        self.count_read(path)
        self.drop(f"malformed:{reason}", f"{path}, {where}" if where else str(path))
        if self.dropped[f"malformed:{reason}"] <= _EXAMPLES_PER_REASON:
            logger.warning(f"Skipping a malformed row: {path}, {where}: {detail}")

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped_total": sum(self.dropped.values()),
            "dropped": dict(sorted(self.dropped.items())),
            "examples": self.examples,
            "sources": list(self.sources),
            "by_source": {source: dict(counts) for source, counts in self.by_source.items()},
            "from_cache": self.from_cache,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "CorpusSummary":
        return cls(
            read=data["read"],
            kept=data["kept"],
            dropped=Counter(data["dropped"]),
            examples=dict(data["examples"]),
            sources=list(data["sources"]),
            by_source={source: dict(counts) for source, counts in data.get("by_source", {}).items()},
        )

    def log(self, name: str = "corpus") -> None:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        logger.info(
            f"{name}: read {self.read} rows, kept {self.kept}, dropped {sum(self.dropped.values())} ({reasons})"
        )
        if len(self.by_source) > 1:
            for source, counts in self.by_source.items():
                logger.info(f"  {source}: read {counts['read']}, kept {counts['kept']}")


__all__ = [
    "DataFormatError",
    "CorpusSummary",
]
