"""Reply metrics of a chat model, on characters (each Chinese character is a word here): Distinct-n, the share of
replies stuck in a loop, and the summary of a set of replies that evaluation reports."""

from collections import Counter


def ngrams(text: str, n: int) -> list[str]:
    """The character n-grams of `text`, overlapping, in order."""
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def distinct_n(replies: list[str], n: int) -> float:
    """Corpus-level Distinct-n (Li et al. 2016, as CDial-GPT reports it): distinct character n-grams over all
    replies divided by the total number of character n-grams. 0.0 when there are no n-grams at all."""
    grams = [g for reply in replies for g in ngrams(reply, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeats_ngram(text: str, min_count: int = 3, ns=(2, 3, 4)) -> bool:
    """Whether some character n-gram (n in `ns`) occurs `min_count` or more times in `text` (overlapping
    occurrences counted), the signature of degenerate looping output such as 好的好的好的. Single characters do
    not count: 哈哈哈 is laughter, not a loop."""
    return any(count >= min_count for n in ns for count in Counter(ngrams(text, n)).values())


def repetition_share(replies: list[str], min_count: int = 3, ns=(2, 3, 4)) -> float:
    """The share of `replies` for which `repeats_ngram` holds."""
    if not replies:
        raise ValueError("repetition_share needs at least one reply.")
    return sum(repeats_ngram(r, min_count, ns) for r in replies) / len(replies)


def reply_metrics(replies: list[str]) -> dict:
    """Distinct-1/2, the repetitive share, the mean length in characters and the share of empty replies."""
    if not replies:
        raise ValueError("reply_metrics needs at least one reply.")
    return {
        "distinct_1": distinct_n(replies, 1),
        "distinct_2": distinct_n(replies, 2),
        "repetition_share": repetition_share(replies),
        "mean_length": sum(len(r) for r in replies) / len(replies),
        "empty_share": sum(not r for r in replies) / len(replies),
        "n": len(replies),
    }


__all__ = [
    "ngrams",
    "distinct_n",
    "repeats_ngram",
    "repetition_share",
    "reply_metrics",
]
