"""Dialogue corpora: one reader per format (LCCC pairs, chit-chat text, JSON, JSON lines, chatterbot-corpus YAML, a
Hub dataset), each yielding raw turns with the file and line they came from, and `iter_dialogues` /
`load_dialogues`, which pick the readers, clean and de-duplicate the dialogues and count what was dropped."""

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from datasets import Dataset, Features, IterableDataset, List, Value

from .cache import cached_dataset
from .cleaning import CleaningConfig, clean_text, length_problem, text_digest
from .sources import (
    _UNDECODABLE_HINT,
    _check_path,
    _check_sources,
    _load_json_document,
    _numbered_lines,
    _open_text,
    _undecodable,
    chatterbot_corpus_files,
)
from .summary import CorpusSummary, DataFormatError


DIALOGUE_FORMATS = ("auto", "lccc-pairs", "chitchat", "json", "jsonl", "chatterbot")
# Keys tried, in order, when a JSON dialogue or turn is an object rather than a list or a string.
_DIALOGUE_KEYS = ("turns", "dialog", "dialogue", "conversation", "conversations", "messages", "utterances")
_TURN_KEYS = ("content", "text", "message", "utterance", "value")


# ----------------------------------------------------------------------------------------------------------------------
# Dialogue readers: each yields (turns, path, where-in-file) for every dialogue; turns are raw (uncleaned) strings.


def _turn_text(turn) -> str:
    if isinstance(turn, str):
        return turn
    if isinstance(turn, dict):
        for key in _TURN_KEYS:
            if isinstance(turn.get(key), str):
                return turn[key]
        raise ValueError(f"a turn object needs one of the string fields {list(_TURN_KEYS)}, got keys {sorted(turn)}")
    raise ValueError(f"a turn must be a string or an object, got {type(turn).__name__}")


def turns_from_object(obj) -> list[str]:
    """Turns of one dialogue given as a JSON value: a list of strings or of turn objects (`{"content": ...}`,
    `{"message": ...}`, ...), or an object holding such a list under `turns`, `dialog`, `messages`, ..."""
    if isinstance(obj, dict):
        for key in _DIALOGUE_KEYS:
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
        else:
            raise ValueError(
                f"a dialogue object needs a list under one of {list(_DIALOGUE_KEYS)}, got keys {sorted(obj)}"
            )
    if not isinstance(obj, list):
        raise ValueError(f"a dialogue must be a list of turns, got {type(obj).__name__}")
    return [_turn_text(t) for t in obj]


def read_lccc_pairs(path, summary: CorpusSummary) -> Iterator[tuple[list[str], object, str]]:
    """LCCC's single-turn text format: one `post<TAB>response` a line (more tab-separated fields are more turns)."""
    path = Path(path)
    for number, line in _numbered_lines(path, summary):
        if not line.strip():
            continue  # blank lines separate nothing in this format and hold no data
        turns = line.split("\t")
        if len(turns) < 2:
            summary.malformed("no_tab", path, f"line {number}", "expected `post<TAB>response`, found no tab")
            continue
        yield turns, path, f"line {number}"


def read_chitchat(path, summary: CorpusSummary) -> Iterator[tuple[list[str], object, str]]:
    """One utterance a line, a blank line between dialogues (the common chit-chat corpus layout)."""
    path = Path(path)
    turns, start = [], None
    for number, line in _numbered_lines(path, summary):
        if line.strip():
            if start is None:
                start = number
            turns.append(line)
        elif turns:
            yield turns, path, f"line {start}"
            turns, start = [], None
    if turns:
        yield turns, path, f"line {start}"


def read_json_dialogues(
    path, summary: CorpusSummary, split: str | None = None
) -> Iterator[tuple[list[str], object, str]]:
    """A JSON document: a list of dialogues, or an object of lists keyed by split (LCCC: `{"train": [...]}`), where
    `split` picks one (default: `train` when present, else the only key)."""
    path = Path(path)
    data = _load_json_document(path)
    label = "item"
    if isinstance(data, dict):  # named lists of dialogues: {"train": [...], "valid": [...]}
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if split is None:
            split = "train" if "train" in lists else (lists[0] if len(lists) == 1 else None)
        if split not in lists:
            raise DataFormatError(
                path, None, f"the JSON object holds the lists {lists}; choose one with json_split / --json_split"
            )
        data, label = data[split], f"item of {split!r}"
    if not isinstance(data, list):
        raise DataFormatError(
            path, None, f"expected a list of dialogues (or an object of such lists), got {type(data).__name__}"
        )
    for index, obj in enumerate(data):
        where = f"{label} {index}"
        try:
            turns = turns_from_object(obj)
        except ValueError as e:
            summary.malformed("bad_dialogue", path, where, str(e))
            continue
        if any(_undecodable(t) for t in turns):
            summary.malformed("undecodable", path, where, _UNDECODABLE_HINT)
            continue
        yield turns, path, where


def read_jsonl_dialogues(path, summary: CorpusSummary) -> Iterator[tuple[list[str], object, str]]:
    """JSON lines: each line a list of turns or an object with one (see `turns_from_object`)."""
    path = Path(path)
    for number, line in _numbered_lines(path, summary):
        if not line.strip():
            continue
        try:
            turns = turns_from_object(json.loads(line))
        except json.JSONDecodeError as e:
            summary.malformed("bad_json", path, f"line {number}", f"not valid JSON: {e.msg}")
            continue
        except ValueError as e:
            summary.malformed("bad_dialogue", path, f"line {number}", str(e))
            continue
        yield turns, path, f"line {number}"


def read_chatterbot_yaml(path, summary: CorpusSummary) -> Iterator[tuple[list[str], object, str]]:
    """A chatterbot-corpus YAML file: `conversations:` holds lists of turns."""
    import yaml  # a dependency of accelerate, so always present with chargpt

    path = Path(path)
    with _open_text(path) as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise DataFormatError(path, f"line {mark.line + 1}" if mark else None, f"not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
        raise DataFormatError(path, None, "a chatterbot-corpus file needs a `conversations:` list")
    for index, conversation in enumerate(data["conversations"]):
        where = f"conversation {index}"
        if not isinstance(conversation, list) or not all(isinstance(t, (str, int, float)) for t in conversation):
            summary.malformed("bad_dialogue", path, where, "a conversation must be a list of strings")
            continue
        yield [str(t) for t in conversation], path, where


def guess_dialogue_format(path) -> str:
    """The reader for a file from its name (and, for .txt, its first non-blank line: a tab means LCCC pairs)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".yml", ".yaml"):
        return "chatterbot"
    if suffix == ".tsv":
        return "lccc-pairs"
    with _open_text(Path(path)) as f:
        for line in f:
            if line.strip():
                return "lccc-pairs" if "\t" in line else "chitchat"
    return "chitchat"


def _hub_dialogues(spec: str, summary: CorpusSummary, split: str | None) -> Iterator[tuple[list[str], object, str]]:
    """`hub:NAME[:CONFIG]`: a dialogue dataset from the Hugging Face Hub (e.g. `hub:thu-coai/lccc:base`), streamed.
    Needs network; each row's turns are found as in `turns_from_object` (LCCC's column is `dialog`)."""
    from datasets import load_dataset

    name, _, config = spec[len("hub:") :].partition(":")
    try:
        rows = load_dataset(name, config or None, split=split or "train", streaming=True)
    except Exception as e:  # offline, unknown name, ...: say what was tried
        raise DataFormatError(
            spec, None, f"could not load the Hub dataset {name!r} (config {config or None!r}): {e}"
        ) from e
    for index, row in enumerate(rows):
        try:
            turns = turns_from_object(row)
        except ValueError as e:
            summary.malformed("bad_dialogue", spec, f"row {index}", str(e))
            continue
        yield turns, spec, f"row {index}"


def _dialogue_rows(sources, fmt: str, summary: CorpusSummary, json_split: str | None):
    readers = {
        "lccc-pairs": read_lccc_pairs,
        "chitchat": read_chitchat,
        "json": lambda p, s: read_json_dialogues(p, s, json_split),
        "jsonl": read_jsonl_dialogues,
        "chatterbot": read_chatterbot_yaml,
    }
    for source in sources:
        source = str(source)
        if source.startswith("hub:"):
            summary.sources.append(source)
            yield from _hub_dialogues(source, summary, json_split)
            continue
        if source == "chatterbot" or source.startswith("chatterbot:"):
            paths, source_fmt = chatterbot_corpus_files(source.partition(":")[2] or "chinese"), "chatterbot"
        else:
            paths, source_fmt = [_check_path(source)], fmt
        for path in paths:
            summary.sources.append(str(path))
            yield from readers[guess_dialogue_format(path) if source_fmt == "auto" else source_fmt](path, summary)


# ----------------------------------------------------------------------------------------------------------------------
# Dialogue corpora


def iter_dialogues(
    sources: Iterable,
    format: str = "auto",
    cleaning: CleaningConfig | None = None,
    summary: CorpusSummary | None = None,
    json_split: str | None = None,
) -> Iterator[dict]:
    """Read and clean dialogues from `sources` (paths, `chatterbot[:LANG]`, `hub:NAME[:CONFIG]`), yielding
    `{"turns": [...]}`. Counts go into `summary` as the generator is consumed."""
    if format not in DIALOGUE_FORMATS:
        raise ValueError(f"format must be one of {DIALOGUE_FORMATS}, got {format!r}.")
    cleaning = cleaning or CleaningConfig()
    summary = summary if summary is not None else CorpusSummary()
    seen = set()
    for raw_turns, path, at in _dialogue_rows(sources, format, summary, json_split):
        summary.count_read(path)
        where = f"{path}, {at}"
        turns = [clean_text(t, cleaning) for t in raw_turns]
        problems = [length_problem(t, cleaning) for t in turns]
        if len(turns) < cleaning.min_turns:
            summary.drop("too_few_turns", where)
            continue
        problem = "empty_turn" if "empty" in problems else next((p for p in problems if p), None)
        if problem:
            summary.drop(problem, where)
            continue
        if cleaning.deduplicate:
            key = text_digest(*turns)
            if key in seen:
                summary.drop("duplicate", where)
                continue
            seen.add(key)
        summary.count_kept(path)
        yield {"turns": turns}


def load_dialogues(
    sources,
    format: str = "auto",
    cleaning: CleaningConfig | None = None,
    on_error: str = "raise",
    json_split: str | None = None,
    streaming: bool = False,
    cache_dir: str | None = None,
) -> tuple[Dataset | IterableDataset, CorpusSummary]:
    """Dialogues as a `Dataset` with one column `turns` (list of strings), and the `CorpusSummary` of the read.

    The dataset is written to the `datasets` cache under a fingerprint of the files (path, size, modification time)
    and the options, so a second call with unchanged inputs reuses it (its summary is read back from beside the cache).
    With `streaming=True` an `IterableDataset` comes back instead (one shard per source, read only as it is
    iterated) and the summary fills in as it is iterated. De-duplication keeps a 16-byte digest of every kept
    dialogue in memory (about 90 bytes each with Python's overhead, so about 1 GB for 12 million dialogues); turn it
    off (`CleaningConfig(deduplicate=False)`) for corpora of that size.
    """
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, os.PathLike)) else sources)]
    _check_sources(sources, ("chatterbot",))
    cleaning = cleaning or CleaningConfig()
    summary = CorpusSummary(on_error=on_error)
    if streaming:
        # One shard per source: `split_dataset_by_node` then gives each process whole files when their number
        # divides by the world size (each process reads only its own), and every n-th dialogue otherwise.
        gen = lambda sources: iter_dialogues(sources, format, cleaning, summary, json_split)  # noqa: E731
        features = Features({"turns": List(Value("string"))})
        return IterableDataset.from_generator(gen, features=features, gen_kwargs={"sources": sources}), summary
    key = ["dialogues", format, json_split, on_error]
    dataset, summary = cached_dataset(
        lambda s: iter_dialogues(sources, format, cleaning, s, json_split),
        sources,
        key,
        cleaning,
        summary,
        Features({"turns": List(Value("string"))}),
        cache_dir,
    )
    summary.log("dialogues")
    return dataset, summary


__all__ = [
    "DIALOGUE_FORMATS",
    "turns_from_object",
    "read_lccc_pairs",
    "read_chitchat",
    "read_json_dialogues",
    "read_jsonl_dialogues",
    "read_chatterbot_yaml",
    "iter_dialogues",
    "load_dialogues",
]
