"""chargpt.evaluation and the recipes' splits: the fixed splits (deterministic, disjoint, as documented), the
metrics, the TF-IDF floor, the split files, a model's scores, and train_scripts/run_evaluation.py on tiny models; the
real splits on the shared data."""

import csv
import json
import math

import pytest
import torch

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification, CharGPTTokenizer
from chargpt.data import encode_texts, holdout_per_class, load_dialogues, load_labelled, render_chats
from chargpt.evaluation import (
    accuracy,
    bootstrap_settings,
    corpus_perplexity,
    distinct_n,
    macro_f1,
    repeats_ngram,
    repetition_share,
    reply_metrics,
    tfidf_baseline,
    write_split_files,
)
from chargpt.tasks import sample_replies
from recipes.dialogue_splits import LCCC_BASE_FILES, lccc_base_splits
from recipes.sentiment_splits import (
    CHNSENTICORP_FILE,
    ONLINE_SHOPPING_FILE,
    chnsenticorp_splits,
    cross_domain_splits,
    holdout_file_stem,
)

from ._helpers_training import load_script


CATEGORIES = ["书籍", "水果", "衣服"]


def write_reviews(path, n_negative: int, n_positive: int, categories=None):
    """Distinct `label,review` rows (with a `cat` column when `categories` are given), negatives first."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow((["cat"] if categories else []) + ["label", "review"])
        for i in range(n_negative + n_positive):
            label = int(i >= n_negative)
            text = ("很好很喜欢" if label else "太差了失望") + str(i)
            writer.writerow(([categories[i % len(categories)]] if categories else []) + [label, text])
    return path


def write_dialogues(path, n: int, shared_first_turns: int = 0):
    """`n` LCCC-style dialogues (a JSON list of turn lists, characters spaced); the first `shared_first_turns`
    pairs of dialogues open with the same post, as Weibo posts answered twice do."""
    dialogues = []
    for i in range(n):
        post = f"帖子{i // 2 if i < 2 * shared_first_turns else i}"
        dialogues.append([" ".join(post), " ".join(f"回复{i}"), *([" ".join(f"再说{i}")] if i % 3 == 0 else [])])
    path.write_text(json.dumps(dialogues, ensure_ascii=False), encoding="utf-8")
    return path


def texts_of(dataset) -> set:
    return set(dataset["text"]) if "text" in dataset.column_names else {tuple(t) for t in dataset["turns"]}


def assert_disjoint(splits):
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not texts_of(splits[a]) & texts_of(splits[b]), f"{a} and {b} share rows"


# ----------------------------------------------------------------------------------------------------------------------
# Metrics


def test_distinct_n_counts_unique_over_total_ngrams():
    replies = ["好的好的", "好吗"]
    assert distinct_n(replies, 1) == pytest.approx(3 / 6)  # 好 的 吗 over 6 characters
    assert distinct_n(replies, 2) == pytest.approx(3 / 4)  # 好的 的好 好吗 over 4 bigrams
    assert distinct_n(["", "a"], 2) == 0.0


def test_repetition_flags_an_ngram_seen_three_times():
    assert repeats_ngram("好的好的好的")  # 好的 three times
    assert not repeats_ngram("好的好的")
    assert not repeats_ngram("的的的")  # single characters do not count (n >= 2)
    assert repetition_share(["哈哈哈哈", "你好", "我我我我我", "是吗"]) == 0.5
    assert reply_metrics(["你好", ""])["empty_share"] == 0.5


def test_macro_f1_and_accuracy_match_hand_computation():
    labels, predictions = [1, 1, 0, 0], [1, 0, 0, 0]
    # class 1: tp 1 fp 0 fn 1 -> 2/3; class 0: tp 2 fp 1 fn 0 -> 4/5
    assert macro_f1(labels, predictions) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert accuracy(labels, predictions) == 0.75
    assert macro_f1([1, 1], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="equally long"):
        accuracy([1], [1, 0])


def test_tfidf_baseline_separates_an_easy_task():
    pytest.importorskip("sklearn", reason="scikit-learn (the `dev` extra) is not installed")
    train = [(f"很好很喜欢{i}", 1) for i in range(20)] + [(f"太差了失望{i}", 0) for i in range(20)]
    test = [("很喜欢", 1), ("太失望", 0)]
    assert tfidf_baseline(train, test) == {"accuracy": 1.0, "macro_f1": 1.0, "n": 2}


# ----------------------------------------------------------------------------------------------------------------------
# Splits


def test_holdout_per_class_is_balanced_seeded_and_disjoint(tmp_path):
    dataset, _ = load_labelled([write_reviews(tmp_path / "r.csv", 30, 50)], cache_dir=str(tmp_path / "cache"))
    splits = holdout_per_class(dataset, {"test": 5, "validation": 3}, seed=1)
    assert [len(splits[n]) for n in ("train", "test", "validation")] == [64, 10, 6]
    assert sorted(splits["test"]["label"]) == [0] * 5 + [1] * 5
    assert_disjoint(splits)
    assert holdout_per_class(dataset, {"test": 5, "validation": 3}, seed=1)["test"]["text"] == splits["test"]["text"]
    assert holdout_per_class(dataset, {"test": 5}, seed=2)["test"]["text"] != splits["test"]["text"]
    with pytest.raises(ValueError, match="Class 0 has 30 rows, but 30 are held out"):
        holdout_per_class(dataset, {"test": 30})


def test_chnsenticorp_split_holds_out_a_balanced_test_and_validation(tmp_path):
    path = write_reviews(tmp_path / "senti.csv", 300, 700)
    splits, info = chnsenticorp_splits(path, seed=3, validation_per_class=25, cache_dir=str(tmp_path / "cache"))
    assert info["label_counts"]["test"] == {"negative": 250, "positive": 250}
    assert info["label_counts"]["validation"] == {"negative": 25, "positive": 25}
    assert info["label_counts"]["train"] == {"negative": 25, "positive": 425}
    assert_disjoint(splits)
    again, _ = chnsenticorp_splits(path, seed=3, validation_per_class=25, cache_dir=str(tmp_path / "cache"))
    assert all(again[name]["text"] == splits[name]["text"] for name in splits)


def test_cross_domain_split_tests_on_the_whole_held_out_category_only(tmp_path):
    path = write_reviews(tmp_path / "shop.csv", 60, 60, categories=CATEGORIES)
    splits, info = cross_domain_splits(path, "books", seed=0, validation_size=10, cache_dir=str(tmp_path / "cache"))
    assert info["holdout_category"] == "书籍" and set(splits["test"]["group"]) == {"书籍"}
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [70, 10, 40]
    assert "书籍" not in set(splits["train"]["group"]) | set(splits["validation"]["group"])
    assert info["label_counts"]["validation"] == {"negative": 5, "positive": 5}  # stratified by label
    assert_disjoint(splits)
    by_chinese_name, _ = cross_domain_splits(path, "书籍", seed=0, validation_size=10, cache_dir=str(tmp_path / "c"))
    assert by_chinese_name["validation"]["text"] == splits["validation"]["text"]


def test_several_held_out_categories_pool_into_one_cross_domain_test(tmp_path):
    path = write_reviews(tmp_path / "shop.csv", 60, 60, categories=CATEGORIES)
    splits, info = cross_domain_splits(path, "books, 水果", seed=0, validation_size=10, cache_dir=str(tmp_path / "c"))
    assert info["holdout_category"] == "书籍,水果" and info["holdout_categories"] == ["书籍", "水果"]
    assert set(splits["test"]["group"]) == {"书籍", "水果"} and len(splits["test"]) == 80
    assert set(splits["train"]["group"]) | set(splits["validation"]["group"]) == {"衣服"}
    assert "categories 书籍, 水果 = test" in info["protocol"]
    assert holdout_file_stem(info["holdout_categories"]) == "online_shopping_holdout_books+fruit"
    with pytest.raises(ValueError, match="names a category twice"):
        cross_domain_splits(path, "books,书籍", validation_size=2, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="nothing is left to train on"):
        cross_domain_splits(path, "books,fruit,clothes", validation_size=2, cache_dir=str(tmp_path / "c"))


def test_cross_domain_split_names_the_categories_when_the_choice_is_unknown(tmp_path):
    path = write_reviews(tmp_path / "shop.csv", 6, 6, categories=CATEGORIES)
    with pytest.raises(ValueError, match=r"No category 'hotels'.*choose --holdout_category from: 书籍 \(books\)"):
        cross_domain_splits(path, "hotels", validation_size=2, cache_dir=str(tmp_path / "cache"))


def test_dialogue_split_deals_whole_first_turn_groups_and_takes_posts_from_first_turns(tmp_path):
    path = write_dialogues(tmp_path / "lccc.json", 120, shared_first_turns=30)  # 30 posts answered twice
    splits, info = lccc_base_splits(
        [path], seed=5, n_posts=10, test_size=20, validation_size=15, cache_dir=str(tmp_path / "cache")
    )
    assert len(splits["posts"]) == 10 and len(splits["test"]) >= 20 and len(splits["validation"]) >= 15
    assert sum(info["rows"].values()) + info["set_aside_with_posts"] == 120
    firsts = {name: {turns[0] for turns in splits[name]["turns"]} for name in ("train", "validation", "test")}
    firsts["posts"] = set(splits["posts"]["post"])
    for a in firsts:
        for b in firsts:
            assert a == b or not firsts[a] & firsts[b], f"{a} and {b} share a first turn"
    assert_disjoint({n: splits[n] for n in ("train", "validation", "test")})
    post, reply = splits["posts"][0]["post"], splits["posts"][0]["reply"]
    assert post.startswith("帖子") and reply.startswith("回复") and " " not in post  # LCCC spacing undone
    again, _ = lccc_base_splits(
        [path], seed=5, n_posts=10, test_size=20, validation_size=15, cache_dir=str(tmp_path / "cache")
    )
    assert again["posts"]["post"] == splits["posts"]["post"] and again["train"]["turns"] == splits["train"]["turns"]


def test_split_files_read_back_as_the_same_rows(tmp_path):
    path = write_reviews(tmp_path / "s.csv", 20, 30)
    splits, info = chnsenticorp_splits(path, test_per_class=5, validation_per_class=5, cache_dir=str(tmp_path / "c1"))
    dialogues, _ = lccc_base_splits(
        [write_dialogues(tmp_path / "d.json", 40)],
        n_posts=4,
        test_size=5,
        validation_size=5,
        cache_dir=str(tmp_path / "c2"),
    )
    written = write_split_files(splits, tmp_path / "out", "senti", info)
    written += write_split_files(dialogues, tmp_path / "out", "chat")
    assert sorted(p.name for p in written) == sorted(
        [
            "senti_train.csv",
            "senti_validation.csv",
            "senti_test.csv",
            "senti_splits.json",
            "chat_train.jsonl",
            "chat_validation.jsonl",
            "chat_test.jsonl",
            "chat_posts.jsonl",
        ]
    )
    test, _ = load_labelled(
        [tmp_path / "out" / "senti_test.csv"], label_names=["negative", "positive"], cache_dir=str(tmp_path / "c3")
    )
    assert test["text"] == splits["test"]["text"] and test["label"] == splits["test"]["label"]
    train, _ = load_dialogues([tmp_path / "out" / "chat_train.jsonl"], cache_dir=str(tmp_path / "c4"))
    assert train["turns"] == dialogues["train"]["turns"]
    posts = [json.loads(line) for line in (tmp_path / "out" / "chat_posts.jsonl").read_text().splitlines()]
    assert [p["post"] for p in posts] == dialogues["posts"]["post"]


# ----------------------------------------------------------------------------------------------------------------------
# A model's scores


def tiny_model_dir(directory, cls, texts, **config):
    """A tiny untrained CharGPT (hidden 32, 2 layers) saved with a tokenizer built from `texts`."""
    tokenizer = CharGPTTokenizer.from_texts(texts, model_max_length=64)
    torch.manual_seed(0)
    model = cls(CharGPTConfig(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2, **config))
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return model.eval(), tokenizer


def test_corpus_perplexity_pools_tokens_over_padded_batches(tmp_path):
    dialogues, _ = load_dialogues([write_dialogues(tmp_path / "d.json", 7)], cache_dir=str(tmp_path / "cache"))
    texts = [t for turns in dialogues["turns"] for t in turns]
    model, tokenizer = tiny_model_dir(tmp_path / "lm", CharGPTForCausalLM, texts)
    scores = corpus_perplexity(model, tokenizer, dialogues, batch_size=3)
    # One dialogue at a time, no padding: the model's own mean loss weighted by the tokens it predicts.
    total = tokens = 0
    for ids in encode_texts(tokenizer, render_chats(tokenizer, dialogues["turns"])):
        ids = torch.tensor([ids])
        with torch.no_grad():
            total += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
        tokens += ids.shape[1] - 1
    assert scores["tokens"] == tokens and scores["dialogues"] == 7
    assert scores["perplexity"] == pytest.approx(math.exp(total / tokens), rel=1e-4)


def test_sampled_replies_are_one_per_post_bounded_and_seeded(tmp_path):
    posts = ["你好", "今天天气很好", "我们去公园散步吧"]
    model, tokenizer = tiny_model_dir(tmp_path / "lm", CharGPTForCausalLM, posts)
    replies = sample_replies(model, tokenizer, posts, batch_size=2, seed=1, max_new_tokens=6)
    assert len(replies) == 3 and all(isinstance(r, str) and len(r) <= 6 for r in replies)
    assert sample_replies(model, tokenizer, posts, batch_size=2, seed=1, max_new_tokens=6) == replies


# ----------------------------------------------------------------------------------------------------------------------
# train_scripts/run_evaluation.py and make_eval_splits.py


@pytest.mark.parametrize("name", ["run_evaluation.py", "make_eval_splits.py"])
def test_evaluation_scripts_have_a_main_with_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script(name).main(["--help"])
    assert exit_info.value.code == 0 and "--data_dir" in capsys.readouterr().out


def test_a_pooled_cross_domain_test_is_also_scored_category_by_category(tmp_path):
    shop = write_reviews(tmp_path / "shop.csv", 3100, 3100, categories=CATEGORIES)  # 2,066 left: 2,000 validate
    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    texts = [row[-1] for row in csv.reader(shop.open(encoding="utf-8"))]
    tiny_model_dir(tmp_path / "cls", CharGPTForSequenceClassification, texts, num_labels=2, **labels)
    report = load_script("run_evaluation.py").main(
        [
            *("--model_name_or_path", str(tmp_path / "cls"), "--online_shopping_file", str(shop)),
            *("--holdout_category", "fruit,books", "--tasks", "cross_domain", "--cache_dir", str(tmp_path / "c")),
        ]
    )
    pooled, by_category = report["cross_domain"]["model"], report["cross_domain"]["by_category"]
    assert sorted(by_category) == ["书籍", "水果"] and "sentiment" not in report
    assert sum(c["n"] for c in by_category.values()) == pooled["n"] == 2067 + 2067  # rows 0, 3, ... and 1, 4, ...
    correct = sum(c["accuracy"] * c["n"] for c in by_category.values())
    assert correct / pooled["n"] == pytest.approx(pooled["accuracy"])
    for scores in by_category.values():
        assert scores["accuracy_ci95"][0] <= scores["accuracy"] <= scores["accuracy_ci95"][1]


def test_evaluate_script_scores_a_classifier_on_both_sentiment_tests(tmp_path):
    senti = write_reviews(tmp_path / "senti.csv", 510, 520)  # 250 + 250 of each class are held out
    shop = write_reviews(tmp_path / "shop.csv", 1600, 1600, categories=CATEGORIES)  # 2000 validation rows
    texts = [row[-1] for row in csv.reader(senti.open(encoding="utf-8"))] + CATEGORIES
    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    tiny_model_dir(tmp_path / "cls", CharGPTForSequenceClassification, texts, num_labels=2, **labels)
    tfidf = ["--tfidf_baseline"] if importlib_available("sklearn") else []
    report = load_script("run_evaluation.py").main(
        [
            "--model_name_or_path",
            str(tmp_path / "cls"),
            "--chnsenticorp_file",
            str(senti),
            "--online_shopping_file",
            str(shop),
            "--holdout_category",
            "fruit",
            "--max_eval_samples",
            "40",
            "--cache_dir",
            str(tmp_path / "cache"),
            *tfidf,
        ]
    )
    written = json.loads((tmp_path / "cls" / "heldout_evaluation.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(report)) and written["model_kind"] == "sequence-classification"
    assert written["sentiment"]["split"]["label_counts"]["test"] == {"negative": 250, "positive": 250}
    assert written["cross_domain"]["split"]["holdout_category"] == "水果"
    assert written["intervals"] == {**bootstrap_settings(), **written["intervals"]}  # the method, recorded once
    for task in ("sentiment", "cross_domain"):
        model = written[task]["model"]
        assert model["n"] == 40 and 0 <= model["accuracy"] <= 1
        assert model["accuracy_ci95"][0] <= model["accuracy"] <= model["accuracy_ci95"][1]
        assert model["macro_f1_ci95"][0] <= model["macro_f1"] <= model["macro_f1_ci95"][1]
        assert ("tfidf_logreg" in written[task]) == bool(tfidf) == ("model_minus_tfidf_logreg" in written[task])
    if tfidf:  # the floor is fit on the balanced training split: 10 + 10 of its 10 negative + 20 positive reviews
        sentiment = written["sentiment"]
        assert sentiment["tfidf_logreg"]["train_rows"] == 2 * (510 - 500)
        assert "accuracy_ci95" in sentiment["tfidf_logreg"]
        # The paired difference: the model's figure minus the floor's, on the same 40 rows.
        difference = sentiment["model_minus_tfidf_logreg"]
        assert difference["accuracy"] == pytest.approx(
            sentiment["model"]["accuracy"] - sentiment["tfidf_logreg"]["accuracy"]
        )
        assert difference["accuracy_ci95"][0] <= difference["accuracy"] <= difference["accuracy_ci95"][1]
        assert difference["n"] == 40


def test_evaluate_script_fits_the_tfidf_floor_on_given_train_files_and_counts_test_reviews_in_them(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn (the `dev` extra) is not installed")
    senti = write_reviews(tmp_path / "senti.csv", 510, 520)
    tiny_model_dir(
        tmp_path / "cls",
        CharGPTForSequenceClassification,
        [row[-1] for row in csv.reader(senti.open(encoding="utf-8"))],
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    # --max_eval_samples 40 scores the first 20 test reviews of each class. The floor's training file: 7 of those,
    # 5 test reviews that are not scored (not counted), and 30 negative + 12 positive reviews of its own.
    splits, _ = chnsenticorp_splits(senti, seed=42, cache_dir=str(tmp_path / "cache"))
    test = splits["test"]
    scored = [i for label in (0, 1) for i in [j for j, y in enumerate(test["label"]) if y == label][:20]]
    unscored = [i for i in range(len(test)) if i not in scored]
    picked = [scored[k] for k in (0, 3, 8, 15, 22, 31, 39)] + unscored[:5]
    copied = [(test["label"][i], test["text"][i]) for i in picked]
    rows = copied + [(0, f"新的差评{i}") for i in range(30)] + [(1, f"新的好评{i}") for i in range(12)]
    train_file = tmp_path / "floor_train.csv"
    with train_file.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("label", "review"), *rows])
    positives = sum(label for label, _ in rows)
    report = load_script("run_evaluation.py").main(
        [
            "--model_name_or_path",
            str(tmp_path / "cls"),
            "--chnsenticorp_file",
            str(senti),
            "--tasks",
            "sentiment",
            "--max_eval_samples",
            "40",
            "--tfidf_baseline",
            "--tfidf_train_files",
            str(train_file),
            "--cache_dir",
            str(tmp_path / "cache"),
        ]
    )
    sentiment = report["sentiment"]
    assert sentiment["model"]["n"] == 40 and sentiment["tfidf_logreg"]["n"] == 40
    assert sentiment["test_rows_in_tfidf_train_files"] == 7
    assert sentiment["tfidf_logreg"]["train_files"] == [str(train_file)]
    assert sentiment["tfidf_logreg"]["train_rows"] == 2 * min(positives, len(rows) - positives)  # balanced
    assert sentiment["tfidf_logreg"]["balanced_train"] is True


def test_evaluate_script_scores_a_causal_lm_on_perplexity_and_replies(tmp_path, capsys):
    lccc = write_dialogues(tmp_path / "lccc.json", 2100)  # 1000 test + 1000 validation dialogues are held out
    model, _ = tiny_model_dir(tmp_path / "lm", CharGPTForCausalLM, ["帖子回复再说0123456789"])
    output = tmp_path / "reports" / "lm.json"
    load_script("run_evaluation.py").main(
        [
            "--model_name_or_path",
            str(tmp_path / "lm"),
            "--lccc_base_files",
            str(lccc),
            "--n_posts",
            "20",
            "--max_eval_samples",
            "12",
            "--max_new_tokens",
            "5",
            "--output_file",
            str(output),
            "--cache_dir",
            str(tmp_path / "cache"),
        ]
    )
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["model_kind"] == "causal-lm" and report["perplexity"]["model"]["dialogues"] == 12
    assert 1 < report["perplexity"]["model"]["perplexity"] < 2 * model.config.vocab_size  # untrained: near uniform
    replies = report["replies"]
    assert replies["model"]["n"] == 12 and replies["references"]["n"] == 12 and len(replies["samples"]) == 10
    assert replies["split"]["rows"]["posts"] == 20 and replies["generation_config"]["max_new_tokens"] == 5
    assert all(len(sample["reply"]) <= 5 for sample in replies["samples"])
    # Every figure with its interval, over the 12 dialogues and the 12 replies; the summary prints them.
    perplexity = report["perplexity"]["model"]
    assert perplexity["perplexity_ci95"][0] < perplexity["perplexity"] < perplexity["perplexity_ci95"][1]
    for name in ("distinct_1", "distinct_2", "repetition_share", "mean_length", "empty_share"):
        for scores in (replies["model"], replies["references"]):
            assert scores[f"{name}_ci95"][0] <= scores[name] <= scores[f"{name}_ci95"][1], name
    printed = capsys.readouterr().out
    low, high = perplexity["perplexity_ci95"]
    assert f"perplexity: {perplexity['perplexity']:.2f} [{low:.2f}, {high:.2f}] (12 dialogues" in printed
    assert "[low, high]: 95% percentile bootstrap interval, 1000 resamples, seed 0" in printed


def test_evaluate_script_refuses_tasks_of_the_other_kind_in_one_line(tmp_path, capsys):
    tiny_model_dir(tmp_path / "lm", CharGPTForCausalLM, ["你好"])
    capsys.readouterr()  # what saving the model printed
    script = load_script("run_evaluation.py")
    with pytest.raises(SystemExit) as exit_info:
        script.run_script(script.main, ["--model_name_or_path", str(tmp_path / "lm"), "--tasks", "sentiment"])
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in error and error.startswith("error: ")
    assert "holds a causal-lm model, which cannot be measured on ['sentiment']" in error
    with pytest.raises(ValueError, match=r"Unknown --tasks \['accuracy'\]"):
        script.main(["--model_name_or_path", str(tmp_path / "lm"), "--tasks", "accuracy"])


def test_make_eval_splits_writes_the_training_parts(tmp_path):
    data = tmp_path / "data"
    (data / "chnsenticorp").mkdir(parents=True)
    write_reviews(data / CHNSENTICORP_FILE, 510, 520)
    written = load_script("make_eval_splits.py").main(
        [
            "--output_dir",
            str(tmp_path / "splits"),
            "--data_dir",
            str(data),
            "--splits",
            "sentiment",
            "--cache_dir",
            str(tmp_path / "cache"),
        ]
    )
    assert [p.name for p in written] == [
        "chnsenticorp_train.csv",
        "chnsenticorp_validation.csv",
        "chnsenticorp_test.csv",
        "chnsenticorp_splits.json",
    ]
    info = json.loads(written[-1].read_text(encoding="utf-8"))
    assert info["rows"] == {"train": 30, "validation": 500, "test": 500} and info["seed"] == 42


# ----------------------------------------------------------------------------------------------------------------------
# The real splits (../shared/data); the corpora are cached by the datasets library after the first read


def test_real_chnsenticorp_split_is_balanced_250_250_and_disjoint(shared_data):
    splits, info = chnsenticorp_splits(shared_data / CHNSENTICORP_FILE)
    assert info["label_counts"]["test"] == {"negative": 250, "positive": 250}
    assert info["label_counts"]["validation"] == {"negative": 250, "positive": 250}
    assert sum(info["rows"].values()) == info["read"]["kept"] == 7265  # no review dropped by cleaning
    assert_disjoint(splits)


def test_real_cross_domain_split_holds_out_all_books(shared_data):
    splits, info = cross_domain_splits(shared_data / ONLINE_SHOPPING_FILE, "books")
    assert info["rows"] == {"train": 46868, "validation": 2000, "test": 3850}  # 52,718 kept of 52,771 (duplicates)
    assert set(splits["test"]["group"]) == {"书籍"} and "书籍" not in set(splits["train"]["group"])
    assert_disjoint(splits)


def test_real_lccc_base_split_has_500_posts_and_held_out_dialogues(shared_data):
    splits, info = lccc_base_splits([shared_data / f for f in LCCC_BASE_FILES])
    assert info["rows"]["posts"] == 500 and info["rows"]["test"] >= 1000 and info["rows"]["validation"] >= 1000
    assert sum(info["rows"].values()) + info["set_aside_with_posts"] == info["read"]["kept"]
    train_firsts = {turns[0] for turns in splits["train"]["turns"]}
    assert not train_firsts & set(splits["posts"]["post"])
    assert_disjoint({n: splits[n] for n in ("train", "validation", "test")})


def importlib_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
