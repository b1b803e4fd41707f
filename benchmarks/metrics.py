"""Text and classification metrics used by the quality benchmarks."""

from collections import Counter


def ngrams(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def distinct_n(replies: list[str], n: int) -> float:
    """Corpus-level Distinct-n (Li et al. 2016, as CDial-GPT reports it): distinct character n-grams over all
    replies divided by the total number of character n-grams. 0.0 when there are no n-grams at all."""
    grams = [g for reply in replies for g in ngrams(reply, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeats_ngram(text: str, min_count: int = 3, ns=(2, 3, 4)) -> bool:
    """Whether some character n-gram (n in `ns`) occurs `min_count` or more times in `text` (overlapping
    occurrences counted), the signature of degenerate looping output such as 好的好的好的."""
    return any(count >= min_count for n in ns for count in Counter(ngrams(text, n)).values())


def repetition_share(replies: list[str], min_count: int = 3, ns=(2, 3, 4)) -> float:
    if not replies:
        raise ValueError("repetition_share needs at least one reply.")
    return sum(repeats_ngram(r, min_count, ns) for r in replies) / len(replies)


def accuracy(labels: list[int], predictions: list[int]) -> float:
    if len(labels) != len(predictions) or not labels:
        raise ValueError("accuracy needs two equally long, non-empty label lists.")
    return sum(a == b for a, b in zip(labels, predictions)) / len(labels)


def macro_f1(labels: list[int], predictions: list[int]) -> float:
    """Unweighted mean over classes (those in `labels` or `predictions`) of F1; a class never predicted and never
    present cannot occur, one with no true positives scores 0."""
    if len(labels) != len(predictions) or not labels:
        raise ValueError("macro_f1 needs two equally long, non-empty label lists.")
    scores = []
    for cls in sorted(set(labels) | set(predictions)):
        tp = sum(1 for a, b in zip(labels, predictions) if a == cls and b == cls)
        fp = sum(1 for a, b in zip(labels, predictions) if a != cls and b == cls)
        fn = sum(1 for a, b in zip(labels, predictions) if a == cls and b != cls)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def classification_scores(labels: list[int], predictions: list[int]) -> dict:
    return {"accuracy": accuracy(labels, predictions), "macro_f1": macro_f1(labels, predictions), "n": len(labels)}
