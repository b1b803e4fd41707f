"""The demo's sample replies: which prompts count as seen in training (user turns of what the chat model trained
on, after the corpus's cleaning), the held-out prompts drawn from test conversations no training conversation
shares a turn with, and the summary lines that say which is which."""

import pytest

from chargpt import CharGPTTokenizer
from chargpt.data import CleaningConfig, load_dialogues
from chargpt.tokenization_chargpt_fast import CharGPTTokenizerFast
from recipes.demo import DemoArguments, _split_conversations
from recipes.demo_samples import draw_held_out_prompts, prompts_in_training

from ._helpers_training import load_script


DIALOGUES = [
    ["你好", "我不错"],
    ["早上好!", "好"],
    ["谁", "我", "他", "她", "它"],  # max_turns=4 keeps 我 他 她 它: 谁 is cut, 她 and 我 are user turns
    ["甲乙丙丁戊己庚辛", "一二三四五六七八", "天", "地"],  # 23 tokens: the first turn goes to fit 20
    ["长" * 30, "是"],  # does not fit even as two turns: not trained on
]


def tiny_chat_tokenizer(tmp_path):
    texts = [turn for turns in DIALOGUES for turn in turns] + ["吗！"]
    CharGPTTokenizer.from_texts(texts, normalization="NFKC").save_pretrained(str(tmp_path / "tok"))
    return CharGPTTokenizerFast.from_pretrained(str(tmp_path / "tok"))


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("你好", True),  # opens a training conversation
        ("早上好！", True),  # NFKC makes the full-width ! the corpus's
        ("她", True),  # a user turn in the middle of a long conversation's kept window
        ("我", True),
        ("天", True),
        ("你好吗", False),  # in no conversation
        ("我不错", False),  # a reply only
        ("他", False),
        ("谁", False),  # a user turn that max_turns cuts away
        ("甲乙丙丁戊己庚辛", False),  # a user turn cut to fit max_length
        ("长" * 30, False),  # its conversation is too long to train on
    ],
)
def test_prompt_in_training_means_a_user_turn_of_the_windows_the_model_trained_on(tmp_path, prompt, expected):
    tokenizer = tiny_chat_tokenizer(tmp_path)
    flags = prompts_in_training([prompt], DIALOGUES, tokenizer, CleaningConfig(), max_length=20, max_turns=4)
    assert flags == [expected]


def test_held_out_prompts_are_seeded_first_turns_that_no_training_conversation_holds():
    train = [["你好", "好"], ["吃了吗", "吃了"]]
    test = [["你好", "嗨"], ["吃了", "没"], ["天气", "晴"], ["天气", "雨"], ["几点", "三点"], ["名字", "无"]]
    drawn = draw_held_out_prompts(train, test, 5, seed=0, exclude=["名字"])
    # 你好 opens a training conversation, 吃了 is a reply in one, 名字 is excluded, 天气 is drawn once
    assert drawn == [{"prompt": "天气", "reference": "晴"}, {"prompt": "几点", "reference": "三点"}]
    one = draw_held_out_prompts(train, test, 1, seed=3, exclude=["名字"])
    assert one == draw_held_out_prompts(train, test, 1, seed=3, exclude=["名字"]) and one[0] in drawn


def test_demo_split_holds_out_test_conversations_whose_prompts_no_training_conversation_holds(tmp_path):
    pytest.importorskip(
        "chatterbot_corpus", reason="the demo's conversations come from chatterbot-corpus (`data` extra)"
    )
    cleaning, args = CleaningConfig(), DemoArguments(output_dir=str(tmp_path))
    files, counts, held_out = _split_conversations(args, tmp_path, cleaning)
    parts = {name: load_dialogues([str(path)], cleaning=cleaning)[0]["turns"] for name, path in files.items()}
    assert {name: len(turns) for name, turns in parts.items()} == counts and counts["test"] > 0
    train, test = ({tuple(t) for t in parts[name]} for name in ("train", "test"))
    assert train and not train & test and not train & {tuple(t) for t in parts["validation"]}
    assert len(held_out) == args.held_out_prompts
    training_turns = {turn for turns in parts["train"] for turn in turns}
    for sample in held_out:
        assert sample["prompt"] not in training_turns
        assert [sample["prompt"], sample["reference"]] in [turns[:2] for turns in parts["test"]]
    # The demo's own prompts are user turns of what it trains on (max_turns 4, 128 tokens), the drawn ones are not.
    texts = [turn for turns in parts.values() for conversation in turns for turn in conversation]
    CharGPTTokenizer.from_texts(texts, normalization="NFKC").save_pretrained(str(tmp_path / "tok"))
    tokenizer = CharGPTTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    prompts = args.prompts + [sample["prompt"] for sample in held_out]
    flags = prompts_in_training(prompts, parts["train"], tokenizer, cleaning, max_length=128, max_turns=4)
    assert flags == [True] * len(args.prompts) + [False] * len(held_out)


def test_demo_summary_marks_each_reply_and_gives_the_reference_of_held_out_ones(monkeypatch, capsys, tmp_path):
    script = load_script("run_demo.py")
    replies = [
        {"prompt": "你好", "reply": "我不错.", "in_training": True, "reference": None},
        {"prompt": "天气", "reply": "好", "in_training": False, "reference": "晴"},
    ]
    result = {
        "vocab_size": 9,
        "chat_conversations": {"train": 419, "validation": 23, "test": 23},
        "chat_test": {"test_perplexity": 48.0},
        "replies": replies,
        "classifier_test": {},
        "directories": {},
        "wall_seconds": 1.0,
    }
    monkeypatch.setattr(script, "run_demo", lambda *_, **__: result)
    script.main(["--output_dir", str(tmp_path)])
    printed = capsys.readouterr().out.splitlines()
    start = printed.index("=== CharGPT demo ===") + 2
    assert printed[start : start + 6] == [
        "chat model: trained on 419 of 465 conversations (23 validation and 23 test held out); test perplexity 48.00",
        "  user: 你好  (in training)",
        "  bot:  我不错.",
        "  user: 天气  (held out)",
        "  bot:  好",
        "  reference: 晴",
    ]
