"""The evaluation splits written out as files the training scripts read, so that a recipe trains on exactly the
training part: labelled splits as CSV (`label,text`, plus `group` when present; labels as ids, 0 negative and
1 positive, for `--class_names negative positive`), dialogue splits as JSON lines (one list of turns a line, for
`--train_files`), held-out posts as JSON lines (`{"post", "reply"}`). Every file is written atomically."""

import csv
import io
import json
from pathlib import Path

from datasets import Dataset, DatasetDict

from ..files import atomic_write_text, write_json_atomic


def _labelled_csv(split: Dataset) -> str:
    columns = ["label", "text"] + (["group"] if "group" in split.column_names else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*(split[c] for c in columns)))
    return out.getvalue()


def _json_lines(rows) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _split_text(split: Dataset) -> tuple[str, str]:
    """(file suffix, content) of one split, by what its columns hold."""
    if "turns" in split.column_names:
        return ".jsonl", _json_lines(split["turns"])
    if "post" in split.column_names:
        return ".jsonl", _json_lines({"post": p, "reply": r} for p, r in zip(split["post"], split["reply"]))
    if {"text", "label"} <= set(split.column_names):
        return ".csv", _labelled_csv(split)
    raise ValueError(
        f"Cannot write a split with the columns {split.column_names}; expected turns, post and reply, or text, label."
    )


def write_split_files(splits: DatasetDict, directory, name: str, info: dict | None = None) -> list[Path]:
    """`DIRECTORY/NAME_SPLIT.csv|.jsonl` for every split, and `NAME_splits.json` with `info` (the protocol and
    counts the split function returned); returns the files written."""
    directory = Path(directory)
    written = []
    for split_name, split in splits.items():
        suffix, text = _split_text(split)
        path = directory / f"{name}_{split_name}{suffix}"
        atomic_write_text(path, text)
        written.append(path)
    if info is not None:
        write_json_atomic(directory / f"{name}_splits.json", info)
        written.append(directory / f"{name}_splits.json")
    return written


__all__ = [
    "write_split_files",
]
