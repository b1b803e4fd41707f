"""Vocabularies: `build_vocabulary` makes a `CharGPTTokenizerFast` from the cleaned texts of the given corpora, and
`grow_vocabulary` adds the characters a new corpus needs (for a classifier fine-tuned from a causal LM)."""

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

from transformers.utils import logging as hf_logging

from ..data import CleaningConfig, CorpusSummary, iter_texts, iterate_texts
from ..files import write_json_atomic
from ..tokenization_chargpt_fast import CharGPTTokenizerFast
from .arguments import VocabArguments
from .run_directory import (
    clean_interrupted_saves,
    install_final_directory,
    inventory,
    is_earlier_vocabulary_file,
    staging_directory,
)


logger = hf_logging.get_logger(__name__)


def build_vocabulary(args: VocabArguments, cleaning: CleaningConfig) -> tuple[CharGPTTokenizerFast, dict]:
    """Build a `CharGPTTokenizerFast` from the cleaned texts of the given corpora and save it to `args.output_dir`
    (`vocab.json` and `tokenizer.json`, which both tokenizer classes load). The tokenizer keeps the cleaning's
    normalisation, so inference text is normalised the same way."""
    if not args.dialogue_files and not args.labelled_files and not args.text_files:
        raise ValueError("Give at least one corpus: --dialogue_files, --labelled_files and/or --text_files.")
    _check_vocabulary_output_dir(args)
    summaries = {}
    single_texts = replace(cleaning, min_turns=1)  # a review or a document is one text, not a dialogue of turns

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
            summaries["labelled"] = CorpusSummary(on_error=args.on_error)
            yield from iterate_texts(
                args.labelled_files,
                "labelled",
                format=args.labelled_format,
                cleaning=single_texts,
                summary=summaries["labelled"],
                text_column=args.text_column,
                label_column=args.label_column,
            )
        if args.text_files:
            summaries["text_documents"] = CorpusSummary(on_error=args.on_error)
            documents = iter_texts(
                args.text_files,
                text_column=args.text_column,
                cleaning=single_texts,
                summary=summaries["text_documents"],
            )
            yield from (document["text"] for document in documents)

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
    if not any(summary.kept for summary in summaries.values()):
        files = [*args.dialogue_files, *args.labelled_files, *args.text_files]
        counts = "; ".join(
            f"{name}: read {c['read']}, dropped {c['dropped_total']} {c['dropped']}"
            for name, c in ((name, summary.as_dict()) for name, summary in summaries.items())
        )
        raise ValueError(
            f"No text to build a vocabulary from in {', '.join(files)} ({counts}). Check that the files are not "
            f"empty and that the format and cleaning options fit them."
        )
    report = {"vocab_size": len(tokenizer), **{name: s.as_dict() for name, s in summaries.items()}}
    out = Path(args.output_dir).resolve()
    staging = staging_directory(out, os.getpid())
    tokenizer.save_pretrained(str(staging))
    write_json_atomic(staging / "vocab_summary.json", report)
    install_final_directory(staging, out, drop=is_earlier_vocabulary_file)
    logger.info(f"Vocabulary of {len(tokenizer)} tokens written to {out}")
    return tokenizer, report


def _check_vocabulary_output_dir(args: VocabArguments) -> None:
    """A trained model's vocabulary must never change; a tokenizer is replaced only when asked
    (`--overwrite_output_dir`), and then in one step: staged beside output_dir and put in place (`run_directory`)."""
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out} is a file; give a directory for the tokenizer.")
    clean_interrupted_saves(out)
    if not out.is_dir():
        return
    found = inventory(out)
    model = found["model"] + found["checkpoints"]
    if model:
        raise ValueError(
            f"{out} holds a trained model ({', '.join(model[:5])}): the vocabulary of a trained model must not change "
            f"(its embeddings are indexed by it). Pick another --output_dir for the new vocabulary."
        )
    if (out / "vocab.json").exists() and not args.overwrite_output_dir:
        raise ValueError(
            f"{out} already holds a tokenizer (vocab.json). Pass --overwrite_output_dir to replace it, or pick another "
            f"--output_dir."
        )


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
