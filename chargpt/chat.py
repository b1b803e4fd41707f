"""Multi-turn chat with a CharGPT causal LM, as the `User:` / `Bot:` loop of the course the package grew from, made
safe for real use: the history is formatted with the tokenizer's chat template (exactly what training saw), kept to
the window the context holds (oldest turns dropped first), replies (sampled by `chargpt.tasks.sample_replies`) stream
token by token and stop at `<sep>` or `<eos>`, and any input (empty lines, huge pastes, characters outside the
vocabulary, special-token text) is handled with a notice instead of a crash. `ChatSession` holds the conversation;
`chat_loop` is the terminal/script driver shared by `chargpt chat` and `chargpt publish`.
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from transformers.generation.streamers import BaseStreamer

from .tasks import chat_prompt_ids, context_length, effective_max_new_tokens, encode, sample_replies


logger = logging.getLogger(__name__)

COMMANDS_HELP = "/reset starts a new conversation, /quit (or /exit, Ctrl-D) leaves, Ctrl-C stops a reply."
_COMMAND = re.compile(r"^/[A-Za-z]+$")


def window_history(tokenizer, history: list[dict], budget: int) -> tuple[list[int], int]:
    """Token ids of the chat prompt for `history` within `budget` tokens, dropping the oldest turns from `history`
    (in place) as needed; returns the ids and how many turns were dropped. The last message must fit by itself
    (`ChatSession.prepare` cuts a longer one)."""
    ids, dropped = chat_prompt_ids(tokenizer, history), 0
    while len(ids) > budget and len(history) > 1:
        history.pop(0)
        dropped += 1
        ids = chat_prompt_ids(tokenizer, history)
    if len(ids) > budget:
        raise RuntimeError(f"A single message needs {len(ids)} tokens, over the budget of {budget}.")
    return ids, dropped


class ReplyStreamer(BaseStreamer):
    """Receives token ids from `generate()` (first the prompt, then one step at a time) and passes the newly decoded
    text of the reply to `on_text`. Special tokens (the closing `<sep>`/`<eos>`) are not shown. Batch size 1."""

    def __init__(self, tokenizer, on_text: Callable[[str], None] | None = None):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.token_ids: list[int] = []
        self.text = ""
        self._prompt_seen = False

    def put(self, value):
        if value.dim() > 1 and value.shape[0] > 1:
            raise ValueError("ReplyStreamer streams one sequence at a time (batch size 1).")
        if not self._prompt_seen:  # generate() pushes the prompt first
            self._prompt_seen = True
            return
        self.token_ids.extend(value.reshape(-1).tolist())
        # Decode the whole reply each time (a few hundred characters at most) rather than token by token, so that a
        # tokenizer joining tokens differently would still print the right text.
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        new, self.text = text[len(self.text) :], text
        if new and self.on_text is not None:
            self.on_text(new)

    def end(self):
        pass


@dataclass
class PreparedMessage:
    text: str  # what the model will read ("" when nothing usable was left)
    notices: list[str] = field(default_factory=list)
    original_chars: int = 0
    dropped_chars: int = 0  # cut from the front of an over-long message


@dataclass
class ChatReply:
    text: str
    interrupted: bool = False
    prompt_tokens: int = 0  # the windowed history the model read
    dropped_turns: int = 0  # oldest turns removed to make room, this time


class ChatSession:
    """A conversation with a causal LM (PyTorch or int8 export).

    Args:
        model: the causal LM; `model.generate` is called with a streamer.
        tokenizer: its tokenizer; `apply_chat_template(messages, add_generation_prompt=True)` formats every prompt.
        generation_kwargs: sampling settings for `generate()` (see `chargpt.tasks.sampling_kwargs`).
        max_prompt_tokens: optional smaller window for the history; by default n_positions - max_new_tokens, so that
            prompt + reply always fits the context.
    """

    def __init__(
        self,
        model,
        tokenizer,
        generation_kwargs: dict | None = None,
        max_prompt_tokens: int | None = None,
        catch_interrupts: bool = True,
    ):
        self.model, self.tokenizer = model, tokenizer
        # Interactive chat: Ctrl-C cuts the current reply short. Scripted use (publish's sample chats) wants it to
        # stop the whole command instead, so nothing half-made is kept.
        self.catch_interrupts = catch_interrupts
        kwargs = dict(generation_kwargs or {})
        self.max_new_tokens = effective_max_new_tokens(model, kwargs)
        self.prompt_budget = context_length(model.config) - self.max_new_tokens
        if max_prompt_tokens is not None:
            self.prompt_budget = min(self.prompt_budget, max_prompt_tokens)
        if self.prompt_budget < 3:  # <bos>, one character, <sep>
            raise ValueError(
                f"No room for a prompt: n_positions={context_length(model.config)}, max_new_tokens="
                f"{self.max_new_tokens}. Lower --max_new_tokens."
            )
        stop_ids = [tokenizer.sep_token_id, tokenizer.eos_token_id]
        self.generation_kwargs = {
            **kwargs,
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": [i for i in stop_ids if i is not None],
            "pad_token_id": tokenizer.pad_token_id,
        }
        self.history: list[dict] = []

    def reset(self):
        self.history = []

    def prepare(self, text: str) -> PreparedMessage:
        """Clean a user message: strip it, remove special-token text (it would forge turn boundaries), apply the
        tokenizer's normalisation, note characters outside the vocabulary, and keep the most recent characters that
        fit the context."""
        prepared = PreparedMessage(text="", original_chars=len(text))
        if hasattr(self.tokenizer, "normalize"):  # first: NFKC turns fullwidth ＜sep＞ into <sep>
            text = self.tokenizer.normalize(text)
        text, removed = self._strip_special_tokens(text)
        if removed:
            prepared.notices.append(
                f"Removed {', '.join(removed)} from your message: reserved for the conversation format."
            )
        text = text.strip()
        if not text:
            prepared.notices.append("Empty message: nothing to reply to.")
            return prepared
        # One token per character of the normalised text; not tokenize(), whose fast version names unknown
        # characters <unk> rather than themselves.
        tokens = list(text)
        vocab = self.tokenizer.get_vocab()
        unknown = sorted({t for t in tokens if t not in vocab})
        if unknown:
            shown = " ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            prepared.notices.append(
                f"{len(unknown)} character(s) are not in the model's vocabulary and are read as "
                f"{self.tokenizer.unk_token}: {shown}"
            )
        limit = self.prompt_budget - 2  # <bos> before and <sep> after the message
        if len(tokens) > limit:
            prepared.dropped_chars = len(text) - len("".join(tokens[-limit:]))
            text = "".join(tokens[-limit:])  # one token per character: the last `limit` characters
            prepared.notices.append(
                f"Your message has {len(tokens)} characters but the model reads at most {limit} "
                f"with its reply; kept the last {limit}."
            )
        prepared.text = text
        return prepared

    def prompt_for(self, messages: list[dict]) -> tuple[list[int], PreparedMessage, int]:
        """The prompt ids for a whole conversation given at once (a server's request), replacing the session's
        history: earlier turns cleaned of special-token text, the last (a user message) prepared as `prepare` does,
        the oldest turns dropped to fit. Returns the ids, the prepared last message and how many turns were dropped.
        Raises ValueError when the last message has nothing left to answer."""
        *earlier, last = messages
        self.history = [{"role": m["role"], "content": self._strip_special_tokens(m["content"])[0]} for m in earlier]
        prepared = self.prepare(last["content"])
        if not prepared.text:
            raise ValueError("The last user message is empty once special-token text and blanks are removed.")
        self.history.append({"role": "user", "content": prepared.text})
        ids, dropped = self._window()
        return ids, prepared, dropped

    def _strip_special_tokens(self, text: str) -> tuple[str, list[str]]:
        """Remove special-token text (until none is left: removing one can join the pieces of another)."""
        removed = []
        while True:
            found = [t for t in self.tokenizer.all_special_tokens if t in text]
            if not found:
                return text, removed
            for token in found:
                text = text.replace(token, "")
                removed += [token] if token not in removed else []

    def _window(self) -> tuple[list[int], int]:
        return window_history(self.tokenizer, self.history, self.prompt_budget)

    def respond(self, prepared: PreparedMessage, on_text: Callable[[str], None] | None = None) -> ChatReply:
        """Add the user's message, generate the reply (streamed to `on_text`) and add it to the history. Ctrl-C
        (KeyboardInterrupt) during generation stops the reply; what was produced so far is kept as the reply."""
        if not prepared.text:
            raise ValueError("Nothing to reply to: the prepared message is empty.")
        self.history.append({"role": "user", "content": prepared.text})
        ids, dropped = self._window()
        streamer = ReplyStreamer(self.tokenizer, on_text)
        interrupted = False
        try:
            # The random state goes on from the previous reply (a caller seeds the conversation once).
            sample_replies(
                self.model, self.tokenizer, [ids], batch_size=1, seed=None, streamer=streamer, **self.generation_kwargs
            )
        except KeyboardInterrupt:
            if not self.catch_interrupts:
                raise
            interrupted = True
        # The reply is the text shown as it streamed. Keep it (possibly partial or empty) so that speakers keep
        # alternating in the history; characters that happen to spell a special token would forge a turn boundary
        # when the history is templated again.
        self.history.append({"role": "assistant", "content": self._strip_special_tokens(streamer.text)[0]})
        return ChatReply(streamer.text, interrupted, len(ids), dropped)

    def history_tokens(self) -> int:
        """Length of the history as the model would read it now (the whole conversation in the window)."""
        if not self.history:
            return 0
        return len(encode(self.tokenizer, self.tokenizer.apply_chat_template(self.history, tokenize=False), False))


def chat_loop(
    session: ChatSession,
    read_line: Callable[[], str | None],
    write: Callable[[str], None],
    echo_user: bool = False,
    records: list | None = None,
) -> list[dict]:
    """Run a conversation: `read_line()` returns the next user line (None or EOFError at the end; KeyboardInterrupt
    ends it too), `write` shows everything, replies streamed. Returns the transcript records (appended to `records`
    as they happen, when given, so a caller keeps them even if the loop fails): one per exchange ({"turn", "user",
    "bot", "interrupted", "notices", ...}) plus {"event": "reset" | "skipped", ...}."""
    records = [] if records is None else records
    turn = 0
    while True:
        line = _next_line(session, read_line, write)
        if line is None:
            break
        line = line.rstrip("\r\n")
        command = line.strip().lower()
        if _COMMAND.match(command):
            if _run_command(session, line.strip(), records, write):
                break
            continue
        if echo_user:  # a script's line as the user would have typed it (a huge paste shortened)
            write(f"User: {line if len(line) <= 300 else line[:100] + f' ... ({len(line)} characters)'}\n")
        prepared = session.prepare(line)
        for notice in prepared.notices:
            write(f"({notice})\n")
        if not prepared.text:
            records.append({"event": "skipped", "input": line, "notices": prepared.notices})
            continue
        write("Bot: ")
        reply = session.respond(prepared, on_text=write)
        write(" [interrupted]\n" if reply.interrupted else "\n")
        if reply.dropped_turns:
            write(
                f"(The conversation outgrew the model's context: dropped the {reply.dropped_turns} oldest turn(s).)\n"
            )
        turn += 1
        records.append(
            {
                "turn": turn,
                "user": prepared.text,
                "bot": reply.text,
                "interrupted": reply.interrupted,
                "notices": prepared.notices,
                "user_chars": prepared.original_chars,
                "user_chars_dropped": prepared.dropped_chars,
                "prompt_tokens": reply.prompt_tokens,
                "dropped_turns": reply.dropped_turns,
            }
        )
    return records


def _next_line(session: ChatSession, read_line: Callable[[], str | None], write: Callable[[str], None]) -> str | None:
    """The next user line; None at the end of the input or on Ctrl-C (which stops a scripted session instead)."""
    try:
        return read_line()
    except KeyboardInterrupt:
        if not session.catch_interrupts:
            raise
    except EOFError:
        pass
    write("\n")
    return None


def _run_command(session: ChatSession, text: str, records: list, write: Callable[[str], None]) -> bool:
    """Carry out a /command; True when it ends the conversation."""
    command = text.lower()
    if command in ("/quit", "/exit"):
        return True
    if command == "/reset":
        session.reset()
        records.append({"event": "reset"})
        write("(New conversation.)\n")
    elif command == "/help":
        write(COMMANDS_HELP + "\n")
    else:
        write(f"(Unknown command {text}. {COMMANDS_HELP})\n")
    return False


def format_transcript(records: list[dict], fmt: str = "text") -> str:
    """JSON lines (one record per line) or readable text (`User:` / `Bot:` lines, notices and events in brackets)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt != "text":
        raise ValueError(f"Unknown transcript format {fmt!r}; use text or jsonl.")
    lines = []
    for r in records:
        if r.get("event") == "reset":
            lines.append("[new conversation]")
        elif r.get("event") == "skipped":
            lines.append(f"[skipped input {r['input']!r}: {' '.join(r['notices'])}]")
        else:
            lines.append(f"User: {r['user']}")
            lines += [f"[{n}]" for n in r["notices"]]
            lines.append(f"Bot: {r['bot']}" + (" [interrupted]" if r["interrupted"] else ""))
    return "\n".join(lines) + ("\n" if lines else "")


__all__ = [
    "ChatSession",
    "ChatReply",
    "PreparedMessage",
    "ReplyStreamer",
    "chat_loop",
    "format_transcript",
    "window_history",
]
