"""The chat page of `chargpt serve` in a real browser: Debian's chromium driven by Playwright against a server started
on a free loopback port. A reply streams into the page piece by piece and ends equal to the API's answer to the same
history; the second turn sends the whole history; Stop ends a reply and keeps what came; New chat clears the history;
an API error is shown without losing the typed message."""

import json
import os
import shutil
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chargpt.serving import load_served_model
from chargpt.serving.app import running_server

from .chargpt_tester import matrix_model


pytest.importorskip("fastapi", reason="chargpt serve needs fastapi and uvicorn: pip install 'chargpt[serve]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the chat page is tested in a browser driven by Playwright: pip install playwright"
)
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"the chat page test drives the system chromium, and {CHROMIUM} is absent (apt-get install chromium)",
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The tiny model writes a token in a few milliseconds; a pause per forward pass spreads a reply over a few hundred
# milliseconds, so that its pieces reach the browser in separate network reads, as a real model's do.
SECONDS_PER_TOKEN = 0.02
STREAMING_TEXT = "#messages .msg[data-streaming=true] .text"
# Records, in the page, the length of the streaming bubble's text at every change while it is marked streaming.
RECORD_STREAMING = """() => {
  window.streamedLengths = [];
  new MutationObserver(() => {
    const text = document.querySelector('#messages .msg[data-streaming=true] .text');
    if (text) window.streamedLengths.push(text.textContent.length);
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def gate():
    """Set: the model runs. Cleared: its next forward pass waits (a test holds the worker busy)."""
    event = threading.Event()
    event.set()
    yield event
    event.set()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory, gate):
    """A server of a tiny chat model whose queue holds one waiting request (so that a test can fill it)."""
    folder = tmp_path_factory.mktemp("served")
    tester, model = matrix_model("modern", "lm")
    model.save_pretrained(folder)
    tester.tokenizer.save_pretrained(folder)
    served = load_served_model(folder, name="tiny")

    def pace(module, args):
        gate.wait(timeout=30)
        time.sleep(SECONDS_PER_TOKEN)

    served.model.register_forward_pre_hook(pace)
    with running_server(served, max_queue=1) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 760},
            locale="zh-CN",
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, server_url):
    """The chat page, loaded and showing the served model's name; records its chat requests and script errors."""
    page = browser.new_page()
    page.chat_requests, page.errors, page.elsewhere = [], [], []

    def on_request(request):
        if not request.url.startswith(server_url):
            page.elsewhere.append(request.url)
        elif request.url.endswith("/v1/chat/completions"):
            page.chat_requests.append(request.post_data_json)

    page.on("request", on_request)
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.goto(server_url + "/")
    sync_api.expect(page.locator("#model-name")).to_have_text("tiny")
    yield page
    assert not page.errors, f"the page's script failed: {page.errors}"
    assert not page.elsewhere, f"the page fetched from elsewhere than the server: {page.elsewhere}"
    page.close()


def _api_reply(url: str, messages: list[dict], max_tokens: int, top_p: float) -> str:
    body = {"model": "tiny", "messages": messages, "temperature": 0, "top_p": top_p, "max_tokens": max_tokens}
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def _health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        return json.loads(response.read())


def _wait_for_health(url: str, **expected) -> None:
    deadline = time.monotonic() + 10
    while any(_health(url)[key] != value for key, value in expected.items()):
        assert time.monotonic() < deadline, f"the server never reached {expected}: {_health(url)}"
        time.sleep(0.02)


def _send(page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def _wait_for_streamed_text(page) -> None:
    """Wait until the assistant bubble shows text while it is still marked streaming."""
    try:
        page.wait_for_function(
            f"() => document.querySelector('{STREAMING_TEXT}')?.textContent.length > 0", timeout=10_000
        )
    except sync_api.TimeoutError:
        pytest.fail("no text appeared in the assistant bubble while the reply was streaming")


def _wait_for_reply(page) -> str:
    """Wait until the streaming bubble is done; returns the last assistant bubble's text."""
    page.wait_for_selector("#messages .msg[data-streaming]", state="detached", timeout=30_000)
    return page.locator("#messages .msg[data-role=assistant] .text").last.text_content()


def _screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    print(f"\nscreenshot: {path}")
    if os.environ.get("CHARGPT_SCREENSHOT_DIR"):
        target = Path(os.environ["CHARGPT_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        print(f"screenshot: {shutil.copy(path, target / name)}")


def test_chat_page_streams_replies_equal_to_the_api_and_sends_the_whole_history(page, server_url, tmp_path):
    # The controls start at the model's generation defaults, the max length bounded by its context.
    health = _health(server_url)
    assert float(page.input_value("#temperature")) == health["defaults"]["temperature"]
    assert float(page.input_value("#top-p")) == health["defaults"]["top_p"]
    assert int(page.input_value("#max-tokens")) == health["defaults"]["max_new_tokens"]
    limit = health["max_tokens_limit"]
    assert page.get_attribute("#max-tokens", "max") == str(limit) == str(health["context_length"] - 2)
    # Greedy, and short enough that two turns fit the 64-token context whole (no turn is windowed out).
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "16")
    top_p = float(page.input_value("#top-p"))
    page.evaluate(RECORD_STREAMING)

    first = {"role": "user", "content": "你好"}
    _send(page, first["content"])
    _wait_for_streamed_text(page)
    assert page.is_visible("#stop") and not page.is_visible("#send") and page.is_disabled("#input")
    reply = _wait_for_reply(page)
    streamed = [n for n in page.evaluate("window.streamedLengths") if n > 0]
    # The text grew in several steps while the bubble was still marked streaming: it arrived token by token.
    assert len(set(streamed)) >= 3, f"the reply did not appear piece by piece: lengths seen {streamed}"
    assert streamed == sorted(streamed) and streamed[0] < len(reply)
    assert reply and reply == _api_reply(server_url, [first], 16, top_p)
    assert page.input_value("#input") == "" and page.is_enabled("#input") and page.is_visible("#send")

    second = {"role": "user", "content": "今天天气很好"}
    _send(page, second["content"])
    second_reply = _wait_for_reply(page)
    history = [first, {"role": "assistant", "content": reply}, second]
    assert page.chat_requests[-1]["messages"] == history
    assert page.chat_requests[-1]["stream"] is True and page.chat_requests[-1]["temperature"] == 0
    assert second_reply == _api_reply(server_url, history, 16, top_p)
    # The earlier turns change this model's answer, so the equality above holds only with them sent.
    assert second_reply != _api_reply(server_url, [second], 16, top_p)
    roles = page.eval_on_selector_all("#messages .msg", "els => els.map(e => e.dataset.role)")
    assert roles == ["user", "assistant", "user", "assistant"]
    _screenshot(page, tmp_path, "chat_page_two_turns.png")


def test_chat_page_stop_keeps_the_partial_reply_new_chat_clears_and_errors_keep_the_message(
    page, server_url, gate, tmp_path
):
    cancelled = _health(server_url)["cancelled"]
    page.fill("#max-tokens", "60")
    _send(page, "你好")
    _wait_for_streamed_text(page)
    page.click("#stop")
    partial = _wait_for_reply(page)
    stopped = page.locator("#messages .msg[data-role=assistant]").last
    assert stopped.get_attribute("data-state") == "stopped" and partial
    assert page.is_visible("#send") and not page.is_visible("#stop") and page.is_enabled("#input")
    deadline = time.monotonic() + 10  # the aborted fetch closed the connection: the server stops generating
    while _health(server_url)["cancelled"] == cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _health(server_url)["cancelled"] > cancelled, "the server did not notice that the page stopped the reply"

    # Shift+Enter is a newline, Enter sends; the stopped reply is part of the history the next turn sends.
    page.fill("#max-tokens", "8")
    page.fill("#input", "再说")
    page.press("#input", "Shift+Enter")
    page.type("#input", "一遍")
    assert page.input_value("#input") == "再说\n一遍" and len(page.chat_requests) == 1
    page.press("#input", "Enter")
    _wait_for_reply(page)
    assert page.chat_requests[-1]["messages"] == [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": partial},
        {"role": "user", "content": "再说\n一遍"},
    ]
    _screenshot(page, tmp_path, "chat_page_stopped.png")

    page.click("#new-chat")
    assert page.locator("#messages .msg").count() == 0 and page.is_visible("#empty")
    # A request the API refuses (max_tokens over the model's limit): its message is shown, the typed text stays,
    # and the refused turn is not left in the conversation. The request carried only the new message.
    page.fill("#max-tokens", "64")
    _send(page, "你好吗")
    sync_api.expect(page.locator("#error")).to_contain_text("max_tokens")
    assert page.chat_requests[-1]["messages"] == [{"role": "user", "content": "你好吗"}]
    assert page.input_value("#input") == "你好吗" and page.is_enabled("#input")
    assert page.locator("#messages .msg").count() == 0

    # A busy server (one request running, the one queue place taken) answers 503 with Retry-After: shown too.
    gate.clear()
    with ThreadPoolExecutor(2) as pool:
        try:
            running = pool.submit(_api_reply, server_url, [{"role": "user", "content": "你好"}], 2, 1.0)
            _wait_for_health(server_url, busy=True, queued=0)
            waiting = pool.submit(_api_reply, server_url, [{"role": "user", "content": "你好"}], 2, 1.0)
            _wait_for_health(server_url, queued=1)
            page.fill("#max-tokens", "8")
            page.press("#input", "Enter")
            sync_api.expect(page.locator("#error")).to_contain_text("busy")
            assert "retry after 2 s" in page.text_content("#error")
            assert page.input_value("#input") == "你好吗" and page.locator("#messages .msg").count() == 0
        finally:
            gate.set()
        running.result(), waiting.result()
