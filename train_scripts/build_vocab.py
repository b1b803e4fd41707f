#!/usr/bin/env python
"""Build the CharGPT tokenizer vocabulary from one or more corpora.

    python train_scripts/build_vocab.py --output_dir runs/tokenizer \
        --dialogue_files ../shared/data/lccc/lccc_toy_train_pairs.txt \
        --labelled_files ../shared/data/chnsenticorp/ChnSentiCorp_htl_train.csv \
        --text_files articles.txt   # plain text, one document a line (as train_lm.py --text_files reads it)

Texts are cleaned as for training (LCCC spacing undone, NFKC, ...; see `--help`), and the tokenizer records the
normalisation so that inference text is treated the same way. Also accepts a JSON file of arguments. Under
`accelerate launch` only the first process builds (the others have nothing to do).
"""

import os

from chargpt.data import CleaningConfig
from chargpt.training import VocabArguments, build_vocabulary, parse_arguments, run_script, setup_logging


def main(argv: list[str] | None = None) -> dict:
    vocab_args, cleaning = parse_arguments((VocabArguments, CleaningConfig), argv)
    setup_logging()
    if int(os.environ.get("RANK", "0")) != 0:
        print(f"Process {os.environ['RANK']}: the vocabulary is built by process 0 only.")
        return {}
    tokenizer, report = build_vocabulary(vocab_args, cleaning)
    print(f"Vocabulary: {len(tokenizer)} tokens (normalization={tokenizer.normalization}) -> {vocab_args.output_dir}")
    for name in ("dialogues", "labelled", "text_documents"):
        if name in report:
            r = report[name]
            print(f"  {name}: read {r['read']}, kept {r['kept']}, dropped {r['dropped_total']} {r['dropped']}")
    return report


if __name__ == "__main__":
    run_script(main)
