"""Vocabularies: `build_vocabulary` makes a `CharGPTTokenizerFast` from the cleaned texts of the given corpora, and
`grow_vocabulary` adds the characters a new corpus needs (for a classifier fine-tuned from a causal LM)."""

import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from transformers.utils import logging as hf_logging

from ..data import CleaningConfig, CorpusSummary, iterate_texts, write_json_atomic
from ..tokenization_chargpt_fast import CharGPTTokenizerFast
from .arguments import VocabArguments


logger = hf_logging.get_logger(__name__)


def build_vocabulary(args: VocabArguments, cleaning: CleaningConfig) -> tuple[CharGPTTokenizerFast, dict]:
    """Build a `CharGPTTokenizerFast` from the cleaned texts of the given corpora and save it to `args.output_dir`
    (`vocab.json` and `tokenizer.json`, which both tokenizer classes load). The tokenizer keeps the cleaning's
    normalisation, so inference text is normalised the same way."""
    if not args.dialogue_files and not args.labelled_files:
        raise ValueError("Give at least one corpus: --dialogue_files and/or --labelled_files.")
    summaries = {}

    def texts():
        if args.dialogue_files:
            summaries["dialogues"] = CorpusSummary(on_error=args.on_error)
            yield from iterate_texts(
                args.dialogue_files,
                "dialogues",
                format=args.dialogue_format,
                cleaning=cleaning,
                summary=summaries["dialogues"],
                json_split=args.json_split,
            )
        if args.labelled_files:
            labelled_cleaning = CleaningConfig(**{**asdict(cleaning), "min_turns": 1})
            summaries["labelled"] = CorpusSummary(on_error=args.on_error)
            yield from iterate_texts(
                args.labelled_files,
                "labelled",
                format=args.labelled_format,
                cleaning=labelled_cleaning,
                summary=summaries["labelled"],
                text_column=args.text_column,
                label_column=args.label_column,
            )

    tokenizer = CharGPTTokenizerFast.from_texts(
        texts(),
        min_frequency=args.min_frequency,
        max_size=args.max_size,
        normalization=cleaning.normalization,
        strip_control_chars=cleaning.strip_control_chars,
        model_max_length=args.model_max_length,
    )
    for name, summary in summaries.items():
        summary.log(name)
    out = Path(args.output_dir).resolve()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tokenizer.save_pretrained(str(tmp))
    report = {"vocab_size": len(tokenizer), **{name: s.as_dict() for name, s in summaries.items()}}
    write_json_atomic(tmp / "vocab_summary.json", report)
    out.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        os.replace(item, out / item.name)
    tmp.rmdir()
    logger.info(f"Vocabulary of {len(tokenizer)} tokens written to {out}")
    return tokenizer, report


def grow_vocabulary(tokenizer, texts, min_frequency: int = 1) -> list[str]:
    """Add the characters of `texts` missing from the vocabulary of a CharGPT tokenizer (slow or fast; seen at least
    `min_frequency` times), most frequent first, ties by code point, so every process and every run adds the same
    ids. Returns them."""
    counts = Counter()
    for text in texts:
        counts.update(tokenizer.normalize(text))
    vocab = tokenizer.get_vocab()
    missing = sorted(
        (c for c, n in counts.items() if n >= min_frequency and c not in vocab), key=lambda c: (-counts[c], ord(c))
    )
    tokenizer.add_characters(missing)
    return missing


__all__ = [
    "build_vocabulary",
    "grow_vocabulary",
]
