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
    `examples[reason]` lists where the first few dropped rows were.
    """

    on_error: str = "raise"
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    from_cache: bool = False

    def __post_init__(self):
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}.")

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
        self.read += 1
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
        )

    def log(self, name: str = "corpus") -> None:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        logger.info(
            f"{name}: read {self.read} rows, kept {self.kept}, dropped {sum(self.dropped.values())} ({reasons})"
        )


__all__ = [
    "DataFormatError",
    "CorpusSummary",
]
