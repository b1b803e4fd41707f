"""Character-level tokenizer for CharGPT: one token per Unicode character."""

import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable

from transformers import PreTrainedTokenizer
from transformers.utils import logging


logger = logging.get_logger(__name__)

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}

# Fixed ids 0..4, matching CharGPTConfig's defaults.
SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "sep_token": "<sep>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
}

# A conversation is `<bos>turn<sep>turn<sep>...turn<eos>`: turns alternate between the two speakers and roles are
# implicit, as in LCCC. With add_generation_prompt the last turn ends in `<sep>`, so the model writes the next turn
# and stops at its own `<sep>` (or `<eos>`). This is the exact format the training pipeline builds.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['user', 'assistant'] %}"
    "{{ raise_exception('CharGPT chat turns must have role user or assistant, got ' + message['role'] + "
    "'; a character-level chat model has no system prompt.') }}"
    "{% endif %}"
    "{{ message['content'] }}"
    "{% if not loop.last or add_generation_prompt %}{{ sep_token }}{% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)

_NORMALIZATIONS = (None, "NFC", "NFKC")
_KEEP_CONTROLS = {"\n", "\t"}


def normalize_text(text: str, normalization: str | None = None, strip_control_chars: bool = True) -> str:
    """Unicode normalisation (`None`, `"NFC"` or `"NFKC"`), then removal of invisible control and format characters
    (zero-width spaces, byte-order marks, ...; newline and tab are kept). The tokenizer applies exactly this to every
    text, at training and at inference."""
    if normalization is not None:
        text = unicodedata.normalize(normalization, text)
    if strip_control_chars:
        text = "".join(ch for ch in text if ch in _KEEP_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf"))
    return text


class CharGPTTokenizer(PreTrainedTokenizer):
    r"""
    One token per Unicode character, with special tokens `<pad>` `<unk>` `<sep>` `<bos>` `<eos>` (ids 0-4).

    Encoding with `add_special_tokens=True` (the default) puts `<bos>` in front of a text. Characters missing from
    the vocabulary become `<unk>`. `decode(ids, skip_special_tokens=True)` returns the text exactly for characters in
    the vocabulary (after the configured normalisation).

    Build a vocabulary from texts with [`CharGPTTokenizer.from_texts`]; grow one with
    [`~CharGPTTokenizer.add_characters`].

    Args:
        vocab_file (`str`, *optional*): a `vocab.json` mapping tokens to ids.
        vocab (`dict[str, int]`, *optional*): the same mapping in memory (instead of `vocab_file`).
        normalization (`str`, *optional*): `None`, `"NFC"` or `"NFKC"`; applied before splitting into characters.
        strip_control_chars (`bool`, defaults to `True`): drop invisible control/format characters (not `\n`, `\t`).
        model_max_length (`int`, defaults to 512): the model's context length, used by `truncation=True`.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        vocab: dict[str, int] | None = None,
        normalization: str | None = None,
        strip_control_chars: bool = True,
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        sep_token: str = "<sep>",
        bos_token: str = "<bos>",
        eos_token: str = "<eos>",
        model_max_length: int = 512,
        chat_template: str | None = None,
        **kwargs,
    ):
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}.")
        if vocab_file is not None and vocab is not None:
            raise ValueError("Pass either vocab_file or vocab, not both.")
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as f:
                vocab = json.load(f)
        specials = [str(t) for t in (pad_token, unk_token, sep_token, bos_token, eos_token)]
        self.vocab = _check_vocab(dict(vocab) if vocab else {t: i for i, t in enumerate(specials)}, specials)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.normalization = normalization
        self.strip_control_chars = strip_control_chars
        kwargs.pop("backend", None)  # written by whichever tokenizer saved the directory; this one is Python
        kwargs.setdefault("special_tokens_pattern", "bos")
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            pad_token=pad_token,
            unk_token=unk_token,
            sep_token=sep_token,
            bos_token=bos_token,
            eos_token=eos_token,
            model_max_length=model_max_length,
            chat_template=chat_template if chat_template is not None else DEFAULT_CHAT_TEMPLATE,
            normalization=normalization,
            strip_control_chars=strip_control_chars,
            **kwargs,
        )
        self.init_kwargs.pop("vocab", None)  # the vocabulary is saved in vocab.json, not in tokenizer_config.json

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        min_frequency: int = 1,
        max_size: int | None = None,
        normalization: str | None = None,
        strip_control_chars: bool = True,
        **kwargs,
    ) -> "CharGPTTokenizer":
        """Build a tokenizer whose vocabulary holds the characters of `texts`.

        Characters are counted after normalisation; those seen at least `min_frequency` times are kept, most frequent
        first, ties broken by code point, so the same texts always give the same ids whatever their order. `max_size`
        caps the whole vocabulary, the five special tokens included. Other keyword arguments go to the constructor
        (e.g. `model_max_length`).
        """
        specials = [kwargs.get(name, token) for name, token in SPECIAL_TOKENS.items()]
        vocab = vocabulary_from_texts(texts, min_frequency, max_size, normalization, strip_control_chars, specials)
        return cls(vocab=vocab, normalization=normalization, strip_control_chars=strip_control_chars, **kwargs)

    def add_characters(self, characters: Iterable[str]) -> int:
        """Append characters missing from the vocabulary (in the order given) as ordinary tokens; returns how many
        were added. Resize the model's embeddings afterwards: `model.resize_token_embeddings(len(tokenizer))`."""
        next_id = max(self.get_vocab().values()) + 1
        added = 0
        for ch in characters:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"add_characters takes single characters, got {ch!r}.")
            if ch in self.vocab or ch in self._added_tokens_encoder:
                continue
            self.vocab[ch] = next_id
            self.ids_to_tokens[next_id] = ch
            next_id += 1
            added += 1
        self._update_total_vocab_size()
        return added

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self._added_tokens_encoder}

    def normalize(self, text: str) -> str:
        """The normalisation this tokenizer applies to every text (see `normalize_text`)."""
        return normalize_text(text, self.normalization, self.strip_control_chars)

    def _tokenize(self, text, **kwargs):
        # Called on each piece of text between special tokens, so normalisation can neither create a special token
        # (full-width "＜sep＞" stays text) nor destroy one (a combining mark after "<sep>" does not compose with
        # its ">"); the fast tokenizer matches special tokens on the raw text too.
        return list(self.normalize(text))

    def _convert_token_to_id(self, token):
        return self.vocab.get(token, self.vocab[str(self.unk_token)])

    def _convert_id_to_token(self, index):
        return self.ids_to_tokens.get(index, str(self.unk_token))

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"Vocabulary path {save_directory!r} must be an existing directory.")
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        path = os.path.join(save_directory, name)
        write_vocab_file(path, self.vocab)
        return (path,)


def vocabulary_from_texts(
    texts: Iterable[str],
    min_frequency: int = 1,
    max_size: int | None = None,
    normalization: str | None = None,
    strip_control_chars: bool = True,
    special_tokens: Iterable[str] = tuple(SPECIAL_TOKENS.values()),
) -> dict[str, int]:
    """The token -> id mapping `from_texts` builds: the special tokens (ids 0-4), then the characters of the
    normalised `texts` seen at least `min_frequency` times, most frequent first, ties broken by code point."""
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}.")
    if max_size is not None and max_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"max_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {max_size}.")
    counts = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"from_texts expects strings, got {type(text).__name__}: {text!r:.80}")
        counts.update(normalize_text(text, normalization, strip_control_chars))
    vocab = {str(token): i for i, token in enumerate(special_tokens)}
    kept = (c for c, n in counts.items() if n >= min_frequency and c not in vocab)
    ranked = sorted(kept, key=lambda c: (-counts[c], ord(c)))
    if max_size is not None:
        ranked = ranked[: max_size - len(vocab)]
    vocab.update({c: i for i, c in enumerate(ranked, start=len(vocab))})
    return vocab


def write_vocab_file(path: str, vocab: dict[str, int]) -> None:
    """`vocab.json`, ordered by id: the file both tokenizers read."""
    ordered = dict(sorted(vocab.items(), key=lambda item: item[1]))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(ordered, f, ensure_ascii=False, indent=0)
        f.write("\n")


def _check_vocab(vocab: dict[str, int], specials: list[str]) -> dict[str, int]:
    """Validate a token -> id mapping: unique non-negative ids, every special token present."""
    missing = [t for t in specials if t not in vocab]
    if missing:
        raise ValueError(
            f"The vocabulary lacks the special tokens {missing}; build it with CharGPTTokenizer.from_texts."
        )
    ids = list(vocab.values())
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise ValueError("The vocabulary's ids must be unique non-negative integers.")
    return vocab


__all__ = ["CharGPTTokenizer", "normalize_text", "vocabulary_from_texts", "DEFAULT_CHAT_TEMPLATE"]
