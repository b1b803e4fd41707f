"""Cleaning of every text before it is kept: `CleaningConfig` (its options, also command-line flags), undoing LCCC's
character spacing, Unicode and whitespace normalisation (`clean_text`), the length bounds and the hash used for
de-duplication."""

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from ..tokenization_chargpt import normalize_text


UNSPACE_MODES = ("auto", "always", "never")
_WHITESPACE = re.compile(r"\s+")
_MULTI_SPACE = re.compile(r" {2,}")


@dataclass
class CleaningConfig:
    """Cleaning applied to every text (each turn of a dialogue, each labelled text), in this order: undo character
    spacing, Unicode normalisation and removal of invisible control characters, whitespace runs to one space, length
    bounds, de-duplication. Lengths count characters after cleaning (= tokens for CharGPT)."""

    unspace: str = field(
        default="auto",
        metadata={
            "help": "Undo LCCC-style character spacing ('我 爱 你' -> '我爱你'). 'auto': only in texts where every "
            "space-separated token is a single character, where a single space is removed and a run of two or more "
            "spaces becomes one space (so 'h e l l o  w o r l d' -> 'hello world', while 'hello world' and "
            "'今天 天气好' stay as written). 'always': apply that rule to every text. 'never': keep spaces."
        },
    )
    normalization: str | None = field(
        default="NFKC",
        metadata={"help": "Unicode normalisation: NFKC (full-width to half-width etc.), NFC, or none."},
    )
    strip_control_chars: bool = field(
        default=True, metadata={"help": "Remove invisible control/format characters (zero-width spaces, BOMs)."}
    )
    collapse_whitespace: bool = field(
        default=True, metadata={"help": "Turn every whitespace run (newlines and tabs too) into one space."}
    )
    min_chars: int = field(default=1, metadata={"help": "Drop texts (dialogues: any turn) shorter than this."})
    max_chars: int | None = field(
        default=None, metadata={"help": "Drop texts (dialogues: any turn) longer than this; none = no bound."}
    )
    min_turns: int = field(default=2, metadata={"help": "Dialogues only: drop dialogues with fewer turns."})
    deduplicate: bool = field(default=True, metadata={"help": "Drop exact repeats (after cleaning)."})

    def __post_init__(self):
        if self.normalization in ("none", "None", ""):
            self.normalization = None
        if self.unspace not in UNSPACE_MODES:
            raise ValueError(f"unspace must be one of {UNSPACE_MODES}, got {self.unspace!r}.")
        if self.normalization not in (None, "NFC", "NFKC"):
            raise ValueError(f"normalization must be NFKC, NFC or none, got {self.normalization!r}.")
        if self.min_chars < 0 or (self.max_chars is not None and self.max_chars < max(self.min_chars, 1)):
            raise ValueError(
                f"Need 0 <= min_chars <= max_chars, got min_chars={self.min_chars}, max_chars={self.max_chars}."
            )
        if self.min_turns < 1:
            raise ValueError(f"min_turns must be >= 1, got {self.min_turns}.")


def _is_single_glyph(token: str) -> bool:
    """One user-perceived character: one code point, or one followed by combining marks, variation selectors, zero-width
    joiners or emoji modifiers (so that an emoji with a skin tone still counts as one spaced 'character')."""
    if len(token) == 1:
        return True
    return all(
        unicodedata.category(ch) in ("Mn", "Mc", "Me", "Sk", "Cf")
        or 0xFE00 <= ord(ch) <= 0xFE0F
        or 0x1F3FB <= ord(ch) <= 0x1F3FF
        for ch in token[1:]
    )


def undo_character_spacing(text: str, mode: str = "auto") -> str:
    """Undo LCCC's spacing of every character.

    LCCC writes each character followed by one space, Latin letters included ("打 c a l l"), so the spaces of the
    original text are lost and a word boundary between two Latin words cannot be recovered from LCCC itself. The rule:
    in character-spaced text a single space is a separator and is removed, and a run of two or more spaces stands for
    a real space and becomes one space. With `mode="auto"` the rule applies only to texts in which every
    space-separated token is one character, so ordinary text keeps its spaces ("hello world", "今天 天气好");
    `"always"` applies it everywhere, `"never"` nowhere.
    """
    if mode == "never" or " " not in text:
        return text
    if mode == "auto":
        tokens = [t for t in text.strip().split(" ") if t]
        if len(tokens) < 2 or not all(_is_single_glyph(t) for t in tokens):
            return text
    return " ".join(part.replace(" ", "") for part in _MULTI_SPACE.split(text.strip()))


def clean_text(text: str, cleaning: CleaningConfig) -> str:
    """Apply the character-level steps of `cleaning` (spacing, normalisation, whitespace) to one text."""
    # Invisible characters go first, so that a stray byte-order mark cannot hide LCCC spacing from the rule; Unicode
    # normalisation comes after it, as NFKC can turn one character into several ("½" -> "1⁄2").
    text = normalize_text(text, None, cleaning.strip_control_chars)
    text = undo_character_spacing(text, cleaning.unspace)
    text = normalize_text(text, cleaning.normalization, strip_control_chars=False)
    if cleaning.collapse_whitespace:
        text = _WHITESPACE.sub(" ", text)
    return text.strip()


def length_problem(text: str, cleaning: CleaningConfig) -> str | None:
    if not text:
        return "empty"
    if len(text) < cleaning.min_chars:
        return "too_short"
    if cleaning.max_chars is not None and len(text) > cleaning.max_chars:
        return "too_long"
    return None


def text_digest(*parts: str) -> bytes:
    """A 16-byte hash for de-duplication: memory stays small on corpora of millions of rows."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).digest()


__all__ = [
    "CleaningConfig",
    "undo_character_spacing",
    "clean_text",
]
