"""Fast character-level tokenizer for CharGPT, backed by the `tokenizers` library: the ids, special tokens,
normalisation, `<bos>` handling, chat template and decoding of `CharGPTTokenizer`, with Rust speed, batch
encoding and offsets."""

import functools
import json
import os
import sys
import unicodedata
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast
from transformers.utils import logging

from .tokenization_chargpt import (
    _KEEP_CONTROLS,
    _NORMALIZATIONS,
    DEFAULT_CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    CharGPTTokenizer,
    _check_vocab,
    vocabulary_from_texts,
    write_vocab_file,
)


logger = logging.get_logger(__name__)

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "tokenizer_file": "tokenizer.json"}


@functools.lru_cache(maxsize=1)
def _invisible_characters_class() -> str:
    """A regex character class of exactly the characters `normalize_text` strips (Unicode categories Cc and Cf,
    newline and tab excepted), read from Python's Unicode tables: the regex engine's own `\\p{Cf}` follows a newer
    Unicode version than some Pythons, and the slow tokenizer is the reference."""
    ranges, start = [], None
    for code in range(sys.maxunicode + 2):
        ch = chr(code) if code <= sys.maxunicode else ""
        hit = bool(ch) and ch not in _KEEP_CONTROLS and unicodedata.category(ch) in ("Cc", "Cf")
        if hit and start is None:
            start = code
        elif not hit and start is not None:
            ranges.append(f"\\x{{{start:X}}}" + (f"-\\x{{{code - 1:X}}}" if code - 1 > start else ""))
            start = None
    return "[" + "".join(ranges) + "]"


def build_backend(
    vocab: dict[str, int], normalization: str | None, strip_control_chars: bool, unk_token: str, bos_token: str
) -> Tokenizer:
    """The `tokenizers` pipeline equivalent to `CharGPTTokenizer`: normalisation, one token per character,
    `<bos>` in front, decoding by plain concatenation."""
    # A BPE model without merges maps every character of a text to its id (or <unk>, one per character) in one pass,
    # with no pre-tokenizer: faster than splitting the text into one-character words for a WordLevel model.
    backend = Tokenizer(BPE(vocab, [], unk_token=unk_token, fuse_unk=False, cache_capacity=0))
    steps = [getattr(normalizers, normalization)()] if normalization else []
    if strip_control_chars:
        steps.append(normalizers.Replace(Regex(_invisible_characters_class()), ""))
    if steps:
        backend.normalizer = normalizers.Sequence(steps)
    backend.decoder = decoders.Fuse()  # characters are joined as they are, no spaces between them
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B", special_tokens=[(bos_token, vocab[bos_token])]
    )
    return backend


def _read_vocab(vocab_file: str | None, tokenizer_file: str | None) -> dict[str, int] | None:
    """The vocabulary from `vocab.json` (what the slow tokenizer reads too, so both give the same ids), or from the
    model section of `tokenizer.json` when a directory has only that."""
    if vocab_file is not None and os.path.isfile(vocab_file):
        with open(vocab_file, encoding="utf-8") as f:
            return json.load(f)
    if tokenizer_file is not None and os.path.isfile(tokenizer_file):
        with open(tokenizer_file, encoding="utf-8") as f:
            return json.load(f)["model"]["vocab"]
    return None


class CharGPTTokenizerFast(PreTrainedTokenizerFast):
    r"""
    The fast CharGPT tokenizer (backed by 🤗 Tokenizers): one token per Unicode character, special tokens `<pad>`
    `<unk>` `<sep>` `<bos>` `<eos>` (ids 0-4), `<bos>` in front of every encoded text, the same normalisation,
    vocabulary, chat template and decoding as [`CharGPTTokenizer`], plus offsets (`return_offsets_mapping=True`) and
    fast batch encoding. `AutoTokenizer` returns this class for CharGPT directories.

    The pipeline is rebuilt from the vocabulary and the settings on every load, so a directory with only `vocab.json`
    (written by the slow tokenizer) loads too; `save_pretrained` writes `tokenizer.json` beside `vocab.json` for
    other runtimes.

    Args:
        vocab_file (`str`, *optional*): a `vocab.json` mapping tokens to ids.
        tokenizer_file (`str`, *optional*): a `tokenizer.json`, read only when there is no `vocab.json`.
        vocab (`dict[str, int]`, *optional*): the mapping in memory (instead of the files).
        normalization (`str`, *optional*): `None`, `"NFC"` or `"NFKC"`; applied before splitting into characters.
        strip_control_chars (`bool`, defaults to `True`): drop invisible control/format characters (not `\n`, `\t`).
        model_max_length (`int`, defaults to 512): the model's context length, used by `truncation=True`.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = CharGPTTokenizer

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
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
        vocab = vocab if vocab is not None else _read_vocab(vocab_file, tokenizer_file)
        specials = [str(t) for t in (pad_token, unk_token, sep_token, bos_token, eos_token)]
        vocab = _check_vocab(dict(vocab) if vocab else {t: i for i, t in enumerate(specials)}, specials)
        self.normalization = normalization
        self.strip_control_chars = strip_control_chars
        # Set before the parent's __init__, which then adopts this backend instead of loading or converting one.
        self._tokenizer = build_backend(vocab, normalization, strip_control_chars, str(unk_token), str(bos_token))
        for key in ("tokenizer_object", "special_tokens_pattern", "add_bos_token", "add_eos_token", "backend"):
            kwargs.pop(key, None)  # the slow tokenizer's settings or another backend's; <bos> is the post-processor's
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

    @classmethod
    def convert_to_native_format(cls, trust_remote_code=False, **kwargs):
        # transformers would otherwise extract a vocabulary (or a whole backend) from tokenizer.json in a way that
        # differs between its versions; __init__ builds the backend itself from the files' paths.
        return kwargs

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        min_frequency: int = 1,
        max_size: int | None = None,
        normalization: str | None = None,
        strip_control_chars: bool = True,
        **kwargs,
    ) -> "CharGPTTokenizerFast":
        """Build a tokenizer whose vocabulary holds the characters of `texts`: the same vocabulary, with the same
        ids, as [`CharGPTTokenizer.from_texts`] builds from the same arguments."""
        specials = [kwargs.get(name, token) for name, token in SPECIAL_TOKENS.items()]
        vocab = vocabulary_from_texts(texts, min_frequency, max_size, normalization, strip_control_chars, specials)
        return cls(vocab=vocab, normalization=normalization, strip_control_chars=strip_control_chars, **kwargs)

    @property
    def vocab(self) -> dict[str, int]:
        """The character vocabulary (special tokens included), as `CharGPTTokenizer.vocab`."""
        return self._tokenizer.get_vocab(with_added_tokens=False)

    def add_characters(self, characters: Iterable[str]) -> int:
        """Append characters missing from the vocabulary (in the order given) as ordinary tokens, with the ids
        `CharGPTTokenizer.add_characters` gives them; returns how many were added. Resize the model's embeddings
        afterwards: `model.resize_token_embeddings(len(tokenizer))`."""
        vocab, known = self.vocab, self.get_vocab()
        next_id = max(known.values()) + 1
        added = 0
        for ch in characters:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"add_characters takes single characters, got {ch!r}.")
            if ch in known:
                continue
            vocab[ch] = known[ch] = next_id
            next_id += 1
            added += 1
        if added:
            # The model's vocabulary cannot grow in place; a new model with the same settings replaces it.
            self._tokenizer.model = BPE(vocab, [], unk_token=str(self.unk_token), fuse_unk=False, cache_capacity=0)
        return added

    def normalize(self, text: str) -> str:
        """The normalisation this tokenizer applies to every text (the backend's normalizer)."""
        normalizer = self._tokenizer.normalizer
        return normalizer.normalize_str(text) if normalizer is not None else text

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"Vocabulary path {save_directory!r} must be an existing directory.")
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        path = os.path.join(save_directory, name)
        write_vocab_file(path, self.vocab)
        return (path,)

    def _save_pretrained(self, save_directory, file_names, legacy_format=None, filename_prefix=None):
        # The parent writes tokenizer.json only; vocab.json beside it lets the slow tokenizer load the directory too.
        file_names = super()._save_pretrained(save_directory, file_names, legacy_format, filename_prefix)
        return file_names + self.save_vocabulary(str(save_directory), filename_prefix)


__all__ = ["CharGPTTokenizerFast"]
