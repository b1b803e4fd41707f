"""The fixed dialogue evaluation split of LCCC-base (`lccc_base_splits`).

LCCC-base comes from Weibo, where one post is often answered several times, so several dialogues open with the same
turn. The split therefore deals out groups of dialogues that share their first turn, never single dialogues: the
groups are permuted with `seed`, the first `n_posts` groups give the held-out posts (the first dialogue of each: its
first turn is the post, its second the human reference reply; the group's other dialogues are set aside), the next
groups give `test` (about `test_size` dialogues, for perplexity), then `validation` (about `validation_size`), and
the rest is `train`. So no held-out post opens a training dialogue, and no dialogue is in two splits. A split takes
whole groups until it has at least its size, so it may hold a few dialogues more.

The files are read with the library's dialogue reader and default cleaning (LCCC's character spacing undone,
repeated dialogues dropped); the split depends only on the files, the seed and the sizes.
"""

import numpy as np
from datasets import Dataset, DatasetDict

from chargpt.data import CleaningConfig, load_dialogues


# Paths inside the shared data folder (../shared/data from the project root).
LCCC_BASE_FILES = ["lccc_base/lccc_base_valid_part.json", "lccc_base/lccc_base_test_part.json"]


def _groups_by_first_turn(first_turns: list[str]) -> list[list[int]]:
    """Row indices grouped by first turn, groups in order of first appearance."""
    groups = {}
    for index, turn in enumerate(first_turns):
        groups.setdefault(turn, []).append(index)
    return list(groups.values())


def _deal(groups: list[list[int]], sizes: list[tuple[str, int]]) -> dict[str, list[list[int]]]:
    """Whole groups, in the given order, to each named split until it holds at least its size; the rest to train."""
    dealt, position = {}, 0
    for name, size in sizes:
        taken, count = [], 0
        while count < size and position < len(groups):
            taken.append(groups[position])
            count += len(groups[position])
            position += 1
        dealt[name] = taken
    dealt["train"] = groups[position:]
    return dealt


def lccc_base_splits(
    paths,
    seed: int = 42,
    n_posts: int = 500,
    test_size: int = 1000,
    validation_size: int = 1000,
    cache_dir: str | None = None,
) -> tuple[DatasetDict, dict]:
    """`train`, `validation`, `test` (column `turns`) and `posts` (columns `post`, `reply`) of LCCC-base dialogue
    files, and a description of the split for reports."""
    dialogues, summary = load_dialogues([str(p) for p in paths], cleaning=CleaningConfig(), cache_dir=cache_dir)
    groups = _groups_by_first_turn([turns[0] for turns in dialogues["turns"]])
    order = np.random.default_rng(seed).permutation(len(groups))
    groups = [groups[i] for i in order]
    if len(groups) <= n_posts:
        raise ValueError(f"{len(groups)} distinct first turns in {paths} leave nothing beside {n_posts} posts.")
    posts_groups, rest = groups[:n_posts], groups[n_posts:]
    dealt = _deal(rest, [("test", test_size), ("validation", validation_size)])
    if not dealt["train"]:
        raise ValueError(
            f"The {len(dialogues)} dialogues leave no training data after {n_posts} posts, test_size={test_size} "
            f"and validation_size={validation_size}; ask for fewer."
        )
    splits = {name: dialogues.select(sorted(i for g in taken for i in g)) for name, taken in dealt.items()}
    firsts = dialogues.select([group[0] for group in posts_groups])["turns"]
    splits["posts"] = Dataset.from_dict({"post": [t[0] for t in firsts], "reply": [t[1] for t in firsts]})
    splits = DatasetDict({name: splits[name] for name in ("train", "validation", "test", "posts")})
    info = {
        "protocol": (
            f"dialogues grouped by first turn; groups permuted with numpy.random.default_rng({seed}); the first "
            f"{n_posts} groups give the posts (first turn + second turn of their first dialogue), then whole groups "
            f"to test until >= {test_size} dialogues, to validation until >= {validation_size}, the rest = train"
        ),
        "seed": seed,
        "rows": {name: len(split) for name, split in splits.items()},
        "set_aside_with_posts": sum(len(g) - 1 for g in posts_groups),
        "read": summary.as_dict(),
    }
    return splits, info


__all__ = [
    "LCCC_BASE_FILES",
    "lccc_base_splits",
]
