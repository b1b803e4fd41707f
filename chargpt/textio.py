"""Reading the texts a command works on (plain text, CSV/TSV, JSON lines) and writing its results, atomically."""

import csv
import io
import json
import os
from dataclasses import dataclass, field

from .files import atomic_write_text
from .tokenization_chargpt import normalize_text


@dataclass
class TextRecord:
    row: int  # 1-based: line number for text files, data row for CSV (header excluded), line for JSON lines
    text: str | None  # None when the row has no usable text; `error` says why
    error: str = ""
    fields: dict = field(default_factory=dict)  # all columns of a CSV / JSON-lines row


def _format(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(".tsv"):
        return "tsv"
    if lower.endswith((".jsonl", ".json")):
        return "jsonl"
    return "text"


def read_records(path, text_column: str | None = None) -> list[TextRecord]:
    """Texts from a file: plain text (one per line), CSV/TSV with a header, or JSON lines (one object per line),
    the last two read from `text_column` (default "text"). Every row comes back; empty ones carry an `error` instead
    of text, so callers can count and report them. A missing column raises ValueError listing the columns there are."""
    path = str(path)
    if not os.path.isfile(path):
        raise ValueError(f"Input file {path!r} does not exist.")
    kind = _format(path)
    if kind == "text" and text_column is not None:
        raise ValueError(
            f"--text_column applies to CSV, TSV and JSON-lines files; {path} is read as plain text, "
            f"one text per line (name it *.csv, *.tsv or *.jsonl to read columns)."
        )
    with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: drop a byte-order mark at the start
        if kind == "text":
            return [make_record(n, line.rstrip("\r\n")) for n, line in enumerate(f, start=1)]
        if kind == "jsonl":
            return _read_jsonl(f, path, text_column or "text")
        return _read_csv(f, path, text_column or "text", "\t" if kind == "tsv" else ",")


def make_record(row: int, text, fields=None) -> TextRecord:
    """A TextRecord for `text`, or one with error 'empty text' when nothing visible is left of it (whitespace,
    byte-order marks and other invisible characters only: the tokenizer would read it as an empty string)."""
    text = "" if text is None else str(text)
    if not normalize_text(text).strip():
        return TextRecord(row, None, "empty text", fields or {})
    return TextRecord(row, text, "", fields or {})


def _read_csv(f, path, column, delimiter) -> list[TextRecord]:
    reader = csv.DictReader(f, delimiter=delimiter)
    if not reader.fieldnames:
        raise ValueError(f"{path} is empty: a CSV file needs a header row naming its columns.")
    if column not in reader.fieldnames:
        raise ValueError(
            f"{path} has no column {column!r}; its columns are: {', '.join(reader.fieldnames)}. "
            f"Choose the text column with --text_column."
        )
    return [make_record(n, row.get(column), row) for n, row in enumerate(reader, start=1)]


def _read_jsonl(f, path, column) -> list[TextRecord]:
    records = []
    for n, line in enumerate(f, start=1):
        if not line.strip():
            records.append(TextRecord(n, None, "empty line"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} line {n} is not valid JSON ({err.msg}); expected one JSON object per line."
            ) from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path} line {n} is a JSON {type(obj).__name__}; expected an object per line.")
        if column not in obj:
            raise ValueError(
                f"{path} line {n} has no key {column!r}; its keys are: {', '.join(obj) or '(none)'}. "
                f"Choose the text column with --text_column."
            )
        records.append(make_record(n, obj[column], obj))
    return records


def write_rows(rows: list[dict], path: str | None, columns: list[str] | None = None, fmt: str | None = None) -> str:
    """Write rows as CSV or JSON lines (chosen by `fmt` or the file name; default JSON lines) to `path` atomically,
    or return the text when `path` is None."""
    fmt = fmt or ("csv" if path and path.lower().endswith(".csv") else "jsonl")
    buffer = io.StringIO()
    if fmt == "csv":
        columns = columns or list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif fmt == "jsonl":
        for row in rows:
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"Unknown output format {fmt!r}; use csv or jsonl.")
    if path is not None:
        atomic_write_text(path, buffer.getvalue())
    return buffer.getvalue()


__all__ = [
    "TextRecord",
    "read_records",
    "make_record",
    "write_rows",
]
