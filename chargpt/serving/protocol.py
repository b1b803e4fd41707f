"""The OpenAI-compatible request fields `chargpt serve` takes, checked one by one: every mistake becomes an
`ApiError` (HTTP status, OpenAI-style error object naming the field), never a crash or a 200."""

from dataclasses import dataclass


class ApiError(Exception):
    """An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


@dataclass
class Sampling:
    """generate() settings, choices, stop strings and seed of one request."""

    settings: dict
    n: int
    stop: list[str]
    seed: int | None
    stream: bool
    include_usage: bool


def _number(body: dict, name: str, low: float, high: float, low_open: bool = False):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(name, f"`{name}` must be a number, got {value!r}.")
    if value < low or (low_open and value == low) or value > high:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise _invalid(name, f"`{name}` must be in {interval}, got {value}.")
    return value


def _integer(body: dict, name: str, low: int, high: int, what: str = ""):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, f"`{name}` must be an integer, got {value!r}.")
    if not low <= value <= high:
        raise _invalid(name, f"`{name}` must be between {low} and {high}{what}, got {value}.")
    return value


def parse_sampling(body: dict, defaults: dict, context_length: int, max_n: int = 8) -> Sampling:
    """The sampling fields (temperature, top_p, max_tokens / max_completion_tokens, min_tokens, n, stop, seed,
    stream) over the model's generation_config defaults. temperature 0 is greedy decoding."""
    settings = dict(defaults)
    temperature = _number(body, "temperature", 0, 2)
    if temperature is not None:
        settings.update(do_sample=temperature > 0)
        if temperature > 0:
            settings["temperature"] = temperature
    top_p = _number(body, "top_p", 0, 1, low_open=True)
    if top_p is not None:
        settings["top_p"] = top_p
    limit = context_length - 2  # at least <bos> and one character of prompt
    for name in ("max_completion_tokens", "max_tokens"):
        value = _integer(body, name, 1, limit, f" (the model's context is {context_length} tokens, prompt included)")
        if value is not None:
            settings["max_new_tokens"] = value
            break
    # min_tokens (as vLLM's API names it): end-of-turn tokens are suppressed until this many were generated
    min_tokens = _integer(body, "min_tokens", 0, settings["max_new_tokens"], " (at most max_tokens)")
    settings["min_new_tokens"] = (
        min(settings.get("min_new_tokens") or 0, settings["max_new_tokens"]) if min_tokens is None else min_tokens
    )
    n = _integer(body, "n", 1, max_n) or 1
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    elif not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)) or len(stop) > 4:
        raise _invalid("stop", f"`stop` must be a string or a list of at most 4 strings, got {stop!r}.")
    if any(s == "" for s in stop):
        raise _invalid("stop", "`stop` strings must not be empty.")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _invalid("seed", f"`seed` must be an integer, got {seed!r}.")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("stream", f"`stream` must be true or false, got {stream!r}.")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _invalid("stream_options", "`stream_options` must be an object.")
    return Sampling(settings, n, stop, seed, stream, bool(options.get("include_usage")))


CHAT_ROLES = ("user", "assistant")


def parse_messages(body: dict) -> list[dict]:
    """`messages` as [{"role": "user" | "assistant", "content": str}], ending with a user turn. Content given as a
    list of text parts (as some clients send) is joined."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", '`messages` must be a non-empty list of {"role", "content"} objects.')
    parsed = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{i}]", f"messages[{i}] must be an object, got {message!r}.")
        role, content = message.get("role"), message.get("content")
        if role == "system":
            raise _invalid(
                f"messages[{i}].role",
                "This character-level chat model has no system prompt: send user and assistant turns only.",
            )
        if role not in CHAT_ROLES:
            raise _invalid(
                f"messages[{i}].role", f"messages[{i}].role must be one of {list(CHAT_ROLES)}, got {role!r}."
            )
        if isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
        ):
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _invalid(
                f"messages[{i}].content",
                f"messages[{i}].content must be a string (or text parts), got {type(content).__name__}.",
            )
        parsed.append({"role": role, "content": content})
    if parsed[-1]["role"] != "user":
        raise _invalid("messages", "The last message must be the user's: the model answers it.")
    return parsed


def parse_prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _invalid("prompt", f"`prompt` must be a string, got {type(prompt).__name__}.")
    return prompt


__all__ = ["ApiError", "Sampling", "parse_messages", "parse_prompt", "parse_sampling"]
