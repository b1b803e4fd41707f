"""The floor a sentiment model has to clear: character 1-3-gram TF-IDF features and logistic regression, trained on
the same training texts as the model. Needs scikit-learn (in the `dev` extra: `pip install 'chargpt[dev]'`)."""

from .classification import classification_scores


def _sklearn():
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError:
        message = "The TF-IDF baseline needs scikit-learn: pip install scikit-learn (or 'chargpt[dev]')."
        raise ImportError(message) from None
    return TfidfVectorizer, LogisticRegression, make_pipeline


def fit_tfidf_baseline(texts: list[str], labels: list[int]):
    """A fitted scikit-learn pipeline: TF-IDF of character 1-3-grams seen in at least two texts, with sublinear term
    frequency (a review repeating 好 ten times is not ten times as positive), and logistic regression with
    scikit-learn's defaults otherwise."""
    TfidfVectorizer, LogisticRegression, make_pipeline = _sklearn()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    return make_pipeline(vectorizer, LogisticRegression(max_iter=2000)).fit(texts, labels)


def tfidf_predictions(train: list[tuple[str, int]], texts: list[str]) -> list[int]:
    """Fit on `train` (text, label) pairs and predict a label for each of `texts`."""
    model = fit_tfidf_baseline([text for text, _ in train], [label for _, label in train])
    return model.predict(list(texts)).tolist()


def tfidf_baseline(train: list[tuple[str, int]], test: list[tuple[str, int]], intervals: bool = False) -> dict:
    """Fit on `train` (text, label) pairs and score on `test`: `classification_scores` of the predictions (with
    `intervals`, their bootstrap intervals over the test rows)."""
    predictions = tfidf_predictions(train, [text for text, _ in test])
    return classification_scores([label for _, label in test], predictions, intervals=intervals)


__all__ = [
    "fit_tfidf_baseline",
    "tfidf_predictions",
    "tfidf_baseline",
]
