"""Quality: dialogue (perplexity, Distinct-n, repetition) and sentiment (fine-tuning with three freezing modes, the
padding-mask ablation, a TF-IDF floor), CharGPT against the GPT-2 peer on the same data and budget, plus the int8
export's perplexity and accuracy against fp32.

One causal LM per contender is pretrained on the package's own corpora (LCCC training dialogues, all KdConv
dialogues and the training reviews' text) and serves both the dialogue evaluation and the sentiment fine-tunes.
"""

import logging
import time
from pathlib import Path

import torch
from transformers import GenerationConfig

from chargpt import CharGPTTokenizer
from chargpt.evaluation import classification_scores, reply_metrics, tfidf_baseline

from .corpora import (
    CHNSENTICORP,
    LCCC_DIALOGS,
    LCCC_PAIRS,
    dialogue_splits,
    load_chnsenticorp,
    load_kdconv,
    load_lccc_dialogs,
    load_lccc_pairs,
    sentiment_splits,
)
from .loop import (
    encode_dialog,
    encode_review,
    freeze,
    pack_blocks,
    perplexity,
    predict_classifier,
    train_classifier,
    train_lm,
)
from .peers import ModelDims, build_causal_lms, classifier_from_lm, dims_from_args


logger = logging.getLogger(__name__)


def build_corpora(args) -> dict:
    """Read the data, make the fixed-seed splits and the tokenizer (built from training text only)."""
    data = Path(args.data_dir)
    if not data.is_dir():
        raise FileNotFoundError(f"Data folder {data} not found: pass --data_dir (the shared data, ../shared/data).")
    pairs, dialogs = load_lccc_pairs(data / LCCC_PAIRS), load_lccc_dialogs(data / LCCC_DIALOGS)
    dialogue = dialogue_splits(pairs, dialogs, args.seed, args.n_valid_pairs, args.n_valid_dialogs, args.n_test_posts)
    sentiment = sentiment_splits(load_chnsenticorp(data / CHNSENTICORP), args.seed, 250, args.cls_max_train)
    kdconv = load_kdconv(data)
    pretrain_dialogs = dialogue.train_dialogs + kdconv + [[text] for text, _ in sentiment.train]
    texts = [turn for dialog in pretrain_dialogs for turn in dialog]
    tokenizer = CharGPTTokenizer.from_texts(texts, min_frequency=2, model_max_length=args.n_positions)
    description = {
        "seed": args.seed,
        "lccc": {
            "pairs": len(pairs),
            "dialogues": len(dialogs),
            "train_items": len(dialogue.train_dialogs),
            "valid_items": len(dialogue.valid_dialogs),
            "test_posts": len(dialogue.test_pairs),
            "split": f"pairs and dialogues shuffled with random.Random({args.seed}); first {args.n_test_posts} "
            f"pairs = test posts, next {args.n_valid_pairs} pairs + first {args.n_valid_dialogs} "
            f"dialogues = validation, the rest = training",
        },
        "kdconv_dialogues": len(kdconv),
        "chnsenticorp": {
            "train": len(sentiment.train),
            "test": len(sentiment.test),
            "majority_reviews_dropped": sentiment.n_dropped_majority,
            "split": "majority class down-sampled to the minority's size, then 250 positive + 250 "
            f"negative held out as test (random.Random({args.seed}))",
        },
        "pretraining_corpus": "LCCC training pairs and dialogues + all KdConv dialogues + the training reviews' text "
        "(never the test reviews)",
        "vocab_size": len(tokenizer),
        "tokenizer": "CharGPTTokenizer.from_texts(training texts, min_frequency=2)",
    }
    return {
        "dialogue": dialogue,
        "sentiment": sentiment,
        "pretrain_dialogs": pretrain_dialogs,
        "tokenizer": tokenizer,
        "description": description,
    }


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return ids, mask


@torch.no_grad()
def generate_replies(
    model, tokenizer, posts: list[str], max_new_tokens: int, seed: int, batch_size: int = 50
) -> list[str]:
    """One reply per post, sampled as CDial-GPT evaluates (top-p 0.9, temperature 0.7), prompt `<bos>post<sep>`;
    a reply ends at the model's `<sep>` or `<eos>`."""
    model.eval()
    stop = [tokenizer.sep_token_id, tokenizer.eos_token_id]
    config = GenerationConfig(
        do_sample=True,
        top_p=0.9,
        temperature=0.7,
        top_k=0,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
    prompts = [encode_dialog(tokenizer, [post])[:-1] + [tokenizer.sep_token_id] for post in posts]
    order = sorted(range(len(posts)), key=lambda i: len(prompts[i]))  # similar lengths together: little padding
    replies = [""] * len(posts)
    torch.manual_seed(seed)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        ids, mask = left_pad([prompts[i] for i in indices], tokenizer.pad_token_id)
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1] :]
        for i, row in zip(indices, out.tolist()):
            cut = next((k for k, t in enumerate(row) if t in stop or t == tokenizer.pad_token_id), len(row))
            replies[i] = tokenizer.decode(row[:cut], skip_special_tokens=True)
    return replies


def run_dialogue(lms: dict, corpora: dict, args) -> dict:
    tokenizer, splits = corpora["tokenizer"], corpora["dialogue"]
    valid = [encode_dialog(tokenizer, d)[: args.n_positions] for d in splits.valid_dialogs]
    posts = [post for post, _ in splits.test_pairs]
    result = {"references": reply_metrics([reply for _, reply in splits.test_pairs]), "samples": {}}
    for name, model in lms.items():
        start = time.perf_counter()
        replies = generate_replies(model, tokenizer, posts, args.reply_max_new_tokens, args.seed)
        result[name] = {
            **perplexity(model, valid, tokenizer.pad_token_id),
            **reply_metrics(replies),
            "seconds": time.perf_counter() - start,
        }
        result["samples"][name] = [{"post": p, "reply": r} for p, r in list(zip(posts, replies))[:8]]
        logger.info("dialogue %s: %s", name, {k: v for k, v in result[name].items() if k != "seconds"})
    return result


def run_sentiment(lms: dict, dims: ModelDims, corpora: dict, args, save=lambda partial: None) -> dict:
    """All fine-tunes and the TF-IDF floor. The CharGPT `none` classifier is kept under "classifier_none" (in
    memory only) for the int8 check."""
    tokenizer, splits = corpora["tokenizer"], corpora["sentiment"]
    pad = tokenizer.pad_token_id
    train = [(encode_review(tokenizer, text, args.cls_max_len), label) for text, label in splits.train]
    test = [(encode_review(tokenizer, text, args.cls_max_len), label) for text, label in splits.test]
    labels = [label for _, label in test]
    lrs = {"none": args.cls_lr_none, "last-2": args.cls_lr_last2, "all": args.cls_lr_all}
    plan = [("chargpt", mode, False) for mode in ("none", "all", "last-2")]
    plan += [("chargpt", "none", True)]  # the ablation: padding not masked, last position pooled
    plan += [("gpt2", m.strip(), False) for m in args.peer_freezing.split(",") if m.strip()]
    result = {"tfidf_logreg": tfidf_baseline(splits.train, splits.test), "max_len": args.cls_max_len, "runs": []}
    for name, mode, unmasked in plan:
        classifier = classifier_from_lm(lms[name], name, dims, seed=args.seed)
        frozen = freeze(classifier, mode)
        stats = train_classifier(
            classifier,
            train,
            args.cls_epochs,
            args.cls_batch_size,
            lrs[mode],
            pad,
            unmasked=unmasked,
            precision=args.lm_precision,
            seed=args.seed,
        )
        scores = classification_scores(labels, predict_classifier(classifier, test, pad, unmasked=unmasked))
        result["runs"].append(
            {"model": name, "freeze": mode, "padding_masked": not unmasked, **frozen, **stats, **scores}
        )
        logger.info("sentiment %s freeze=%s masked=%s: %s", name, mode, not unmasked, scores)
        save({k: v for k, v in result.items() if k != "classifier_none"})
        if name == "chargpt" and mode == "none" and not unmasked:
            result["classifier_none"] = classifier
    return result


def run_int8_quality(lm, classifier, corpora: dict, args, work_dir: str) -> dict:
    """Perplexity and accuracy of the int8 exports of the pretrained CharGPT LM and its `none` classifier, against
    the fp32 models on the same validation sequences and test reviews."""
    from .int8 import export_and_load, int8_unavailable_reason

    reason = int8_unavailable_reason()
    if reason:
        return {"status": "not run", "reason": reason}
    tokenizer, pad = corpora["tokenizer"], corpora["tokenizer"].pad_token_id
    valid = [encode_dialog(tokenizer, d)[: args.n_positions] for d in corpora["dialogue"].valid_dialogs]
    test = [(encode_review(tokenizer, text, args.cls_max_len), label) for text, label in corpora["sentiment"].test]
    labels = [label for _, label in test]
    lm_int8, lm_sizes = export_and_load(lm, tokenizer, f"{work_dir}/quality_lm", threads=args.threads)
    cls_int8, cls_sizes = export_and_load(classifier, tokenizer, f"{work_dir}/quality_cls", threads=args.threads)
    return {
        "status": "run",
        "lm": {"fp32": perplexity(lm, valid, pad), "int8": perplexity(lm_int8, valid, pad), "sizes": lm_sizes},
        "classifier": {
            "fp32": classification_scores(labels, predict_classifier(classifier, test, pad)),
            "int8": classification_scores(labels, predict_classifier(cls_int8, test, pad)),
            "sizes": cls_sizes,
        },
    }


def run_quality(args, work_dir: str, save=lambda partial: None) -> dict:
    """Pretraining, dialogue, sentiment and int8 checks; `save(result)` is called after each stage."""
    start = time.perf_counter()
    corpora = build_corpora(args)
    tokenizer = corpora["tokenizer"]
    blocks = pack_blocks([encode_dialog(tokenizer, d) for d in corpora["pretrain_dialogs"]], args.lm_block_len)
    dims = dims_from_args(args, len(tokenizer))
    lms = build_causal_lms(dims, seed=args.seed)
    result = {
        "data": corpora["description"],
        "dims": vars(dims),
        "pretraining": {"corpus_tokens": int(blocks.numel())},
        "timings": {"data_s": time.perf_counter() - start},
    }
    for name, model in lms.items():
        result["pretraining"][name] = train_lm(
            model, blocks, args.lm_steps, args.lm_batch_size, args.lm_lr, precision=args.lm_precision, seed=args.seed
        )
        logger.info("pretrained %s: %s", name, result["pretraining"][name])
        save(result)
    stages = [
        ("dialogue", lambda: run_dialogue(lms, corpora, args)),
        (
            "sentiment",
            lambda: run_sentiment(lms, dims, corpora, args, lambda partial: save({**result, "sentiment": partial})),
        ),
        (
            "int8",
            lambda: run_int8_quality(lms["chargpt"], result["sentiment"]["classifier_none"], corpora, args, work_dir),
        ),
    ]
    for stage, fn in stages:
        start = time.perf_counter()
        result[stage] = fn()
        result["timings"][f"{stage}_s"] = time.perf_counter() - start
        save(_public(result))
    return _public(result)


def _public(result: dict) -> dict:
    """The result without the in-memory classifier kept for the int8 check."""
    if "classifier_none" not in result.get("sentiment", {}):
        return result
    return {**result, "sentiment": {k: v for k, v in result["sentiment"].items() if k != "classifier_none"}}
