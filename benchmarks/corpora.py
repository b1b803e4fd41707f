"""Readers for the benchmark data (../shared/data) and the fixed-seed splits the report describes.

Every reader raises a ValueError naming the file and line for malformed input rather than skipping it.
"""

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path


LCCC_PAIRS = "lccc/lccc_toy_train_pairs.txt"
LCCC_DIALOGS = "lccc/lccc_toy_train_dialogs.json"
CHNSENTICORP = "chnsenticorp/ChnSentiCorp_htl_train.csv"
KDCONV_GLOB = "kdconv/kdconv_*_*.json"


def _unspace(text: str) -> str:
    """LCCC separates every character by a space; the text itself is the characters joined."""
    return text.replace(" ", "").strip()


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; pass --data_dir pointing at the shared data folder (../shared/data)."
        )
    return path


def load_lccc_pairs(path: Path) -> list[list[str]]:
    """`post<TAB>response` lines -> [[post, response], ...]."""
    pairs = []
    with open(_require(Path(path)), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            turns = [_unspace(t) for t in fields]
            if len(fields) != 2 or not all(turns):
                raise ValueError(
                    f"{path}:{lineno}: expected 'post<TAB>response' with both non-empty, got {line!r:.120}"
                )
            pairs.append(turns)
    return pairs


def load_lccc_dialogs(path: Path) -> list[list[str]]:
    with open(_require(Path(path)), encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("train"), list):
        raise ValueError(f"{path}: expected a JSON object with a 'train' list of dialogues.")
    dialogs = []
    for i, dialog in enumerate(data["train"]):
        turns = [_unspace(t) for t in dialog] if isinstance(dialog, list) else None
        if not turns or len(turns) < 2 or not all(turns):
            raise ValueError(
                f"{path}: dialogue {i} must be a list of at least two non-empty turns, got {dialog!r:.120}"
            )
        dialogs.append(turns)
    return dialogs


def load_kdconv(data_dir: Path) -> list[list[str]]:
    """All KdConv dialogues found (film, music, travel; dev and test files), as lists of utterances."""
    files = sorted(Path(data_dir).glob(KDCONV_GLOB))
    if not files:
        raise FileNotFoundError(f"No KdConv files match {Path(data_dir) / KDCONV_GLOB}.")
    dialogs = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for i, dialog in enumerate(json.load(f)):
                try:
                    turns = [m["message"].strip() for m in dialog["messages"]]
                except (KeyError, TypeError) as err:
                    raise ValueError(f"{path}: dialogue {i} lacks messages[].message ({err}).") from err
                dialogs.append([t for t in turns if t])
    return dialogs


def load_chnsenticorp(path: Path) -> list[tuple[str, int]]:
    """`label,review` CSV (quoted multi-line reviews allowed) -> [(review, label), ...]."""
    reviews = []
    with open(_require(Path(path)), encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["label", "review"]:
            raise ValueError(f"{path}: expected the header 'label,review', got {header!r}.")
        for row in reader:
            if len(row) != 2 or row[0] not in ("0", "1") or not row[1].strip():
                raise ValueError(f"{path}:{reader.line_num}: expected 'label,review' with label 0/1, got {row!r:.120}")
            reviews.append((row[1].strip(), int(row[0])))
    return reviews


@dataclass
class DialogueSplits:
    train_dialogs: list  # LCCC pairs and multi-turn dialogues used for training (lists of turns)
    valid_dialogs: list  # held out for character perplexity
    test_pairs: list  # held-out [post, response] pairs: posts are prompted, responses are the human reference


def dialogue_splits(pairs, dialogs, seed: int, n_valid_pairs: int, n_valid_dialogs: int, n_test: int) -> DialogueSplits:
    """Shuffle pairs and dialogues with `seed`; take test posts and validation items off the front."""
    if n_valid_pairs + n_test >= len(pairs) or n_valid_dialogs >= len(dialogs):
        raise ValueError(
            f"Not enough dialogue data ({len(pairs)} pairs, {len(dialogs)} dialogues) for {n_test} test posts, "
            f"{n_valid_pairs} validation pairs and {n_valid_dialogs} validation dialogues."
        )
    rng = random.Random(seed)
    pairs, dialogs = list(pairs), list(dialogs)
    rng.shuffle(pairs)
    rng.shuffle(dialogs)
    test = pairs[:n_test]
    valid = pairs[n_test : n_test + n_valid_pairs] + dialogs[:n_valid_dialogs]
    train = pairs[n_test + n_valid_pairs :] + dialogs[n_valid_dialogs:]
    return DialogueSplits(train_dialogs=train, valid_dialogs=valid, test_pairs=test)


@dataclass
class SentimentSplits:
    train: list  # [(review, label)], balanced
    test: list  # n_test_per_class of each label
    n_dropped_majority: int  # reviews of the majority class removed by down-sampling


def sentiment_splits(reviews, seed: int, n_test_per_class: int = 250, max_train: int | None = None) -> SentimentSplits:
    """The seed course's protocol: down-sample the majority class to the minority's size, then hold out
    `n_test_per_class` reviews of each class as the test set. `max_train` (quick mode) caps the balanced training
    set, still balanced."""
    rng = random.Random(seed)
    by_label = {0: [r for r in reviews if r[1] == 0], 1: [r for r in reviews if r[1] == 1]}
    size = min(len(v) for v in by_label.values())
    if size <= n_test_per_class:
        raise ValueError(
            f"Each class needs more than {n_test_per_class} reviews for the test split; the smaller has {size}."
        )
    dropped = sum(len(v) for v in by_label.values()) - 2 * size
    test, train = [], []
    per_class_train = size - n_test_per_class
    if max_train is not None:
        per_class_train = min(per_class_train, max_train // 2)
    for label in (0, 1):
        items = list(by_label[label])
        rng.shuffle(items)
        items = items[:size]
        test += items[:n_test_per_class]
        train += items[n_test_per_class : n_test_per_class + per_class_train]
    rng.shuffle(train)
    rng.shuffle(test)
    return SentimentSplits(train=train, test=test, n_dropped_majority=dropped)
