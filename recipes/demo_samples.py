"""The demo's sample prompts, told honestly: prompts drawn from conversations the chat model did not train on (with
the corpus's reply as a reference), and for every prompt whether it is a user turn of what the model actually trained
on, computed from the training file and the lengths the run recorded, not from the list the prompt came from."""

import json
from pathlib import Path

import numpy as np

from chargpt.data import CleaningConfig, clean_text, dialogues_to_input_ids, load_dialogues
from chargpt.data.sequences import encode_chats, render_chats
from chargpt.files import write_json_atomic
from chargpt.tokenization_chargpt_fast import CharGPTTokenizerFast


def draw_held_out_prompts(
    train: list[list[str]], held_out: list[list[str]], n: int, seed: int, exclude: list[str] = ()
) -> list[dict]:
    """`n` prompts (fewer when there are not so many) drawn with `seed` from the `held_out` conversations, in their
    order: each conversation's first turn as `prompt`, its second as `reference`. A first turn that is a turn of any
    `train` conversation, or in `exclude`, is never drawn, and each prompt at most once."""
    seen = {turn for turns in train for turn in turns} | set(exclude)
    candidates = []
    for turns in held_out:
        if turns[0] not in seen:
            seen.add(turns[0])
            candidates.append({"prompt": turns[0], "reference": turns[1]})
    chosen = np.random.default_rng(seed).choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(chosen)]


def prompts_in_training(
    prompts: list[str],
    dialogues: list[list[str]],
    tokenizer,
    cleaning: CleaningConfig,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
) -> list[bool]:
    """Whether each prompt, cleaned as the corpus is, is a user turn of what a chat model trained on: of each
    (cleaned) training dialogue, the latest turns the pipeline encodes (`dialogues_to_input_ids` with the run's
    max_length, max_turns and max_history_chars; a dialogue that does not fit is not trained on), read as the chat
    template reads them (the last turn is the reply, user and assistant alternate back from it)."""
    user_turns = set()
    for turns, ids in zip(
        dialogues, dialogues_to_input_ids(dialogues, tokenizer, max_length, max_turns, max_history_chars)
    ):
        if ids is not None:
            window = _encoded_window(tokenizer, turns, ids)
            user_turns.update(window[-2::-2])
    return [clean_text(p, cleaning) in user_turns for p in prompts]


def _encoded_window(tokenizer, turns: list[str], ids: list[int]) -> list[str]:
    """The latest turns of `turns` whose chat-template encoding is `ids`."""
    for start in range(len(turns)):
        if encode_chats(tokenizer, render_chats(tokenizer, [turns[start:]]))[0] == ids:
            return turns[start:]
    raise ValueError(f"No latest turns of {turns} encode to the given ids.")


def mark_replies(
    samples: list[dict], references: dict[str, str], train_file: Path, out: Path, cleaning: CleaningConfig
) -> list[dict]:
    """The chat model's sample replies, each with `in_training` (`prompts_in_training` over its training file, read
    back as the pipeline read it, with the lengths its data_summary.json records) and `reference` (the corpus's reply
    to a held-out prompt, else None), written back into its sample_replies.json."""
    if not samples:
        return []
    chat_dir = out / "chat-model"
    used = json.loads((chat_dir / "data_summary.json").read_text(encoding="utf-8"))
    dialogues, _ = load_dialogues([str(train_file)], cleaning=cleaning)
    flags = prompts_in_training(
        [s["prompt"] for s in samples],
        dialogues["turns"],
        CharGPTTokenizerFast.from_pretrained(chat_dir),
        cleaning,
        used["max_length"],
        used["max_turns"],
        used["max_history_chars"],
    )
    marked = [{**s, "in_training": flag, "reference": references.get(s["prompt"])} for s, flag in zip(samples, flags)]
    write_json_atomic(chat_dir / "sample_replies.json", marked)
    return marked


__all__ = [
    "draw_held_out_prompts",
    "prompts_in_training",
    "mark_replies",
]
