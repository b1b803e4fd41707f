"""`chargpt serve`: an OpenAI-compatible HTTP API and a chat page for any CharGPT causal-LM folder (PyTorch, int8
export, native export), built on FastAPI and uvicorn, with server-sent events for streaming.

Why not `transformers serve`: it finds model classes by name inside transformers, so it serves the native export
(docs/export.md) but neither remote-code folders nor the int8 export. This app serves all three with the same
prompt handling as `chargpt chat` (the chat template, the history windowed to the context)."""

import contextlib
import importlib.resources
import json
import socket
import threading
import time
import uuid

from .engine import Job, QueueFull, ServedModel, Worker
from .protocol import ApiError, parse_messages, parse_prompt, parse_sampling


def _require_fastapi():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ImportError("chargpt serve needs FastAPI and uvicorn: pip install 'chargpt[serve]'.") from err


def chat_page() -> str:
    """The chat page shipped in the package (one HTML file with its CSS and JavaScript; nothing from a CDN)."""
    return importlib.resources.files("chargpt.serving").joinpath("static/chat.html").read_text(encoding="utf-8")


def _sse(data) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def build_app(served: ServedModel, max_queue: int = 32, retry_after: int = 2):
    """The FastAPI application serving `served`; its worker thread starts now and stops with the app."""
    _require_fastapi()
    import asyncio
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

    from ..chat import ChatSession
    from ..tasks import encode

    worker = Worker(served, max_queue=max_queue)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(worker.close)

    app = FastAPI(title="chargpt serve", lifespan=lifespan)
    app.state.worker = worker

    @app.exception_handler(ApiError)
    async def api_error(request, err: ApiError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(Exception)
    async def unexpected(request, err: Exception):  # never a bare 500 page
        return JSONResponse(ApiError(500, f"{type(err).__name__}: {err}", kind="server_error").body(), status_code=500)

    async def read_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"The request body is not valid JSON: {err}.", code="invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
        model = body.get("model")
        if model is not None and model != served.name:
            raise ApiError(
                404,
                f"The model {model!r} does not exist here; this server serves {served.name!r} (GET /v1/models).",
                param="model",
                code="model_not_found",
            )
        return body

    def submit(prompt_ids: list[int], sampling) -> Job:
        # A reply ends at end of turn or end of text, whatever the folder's generation_config says.
        settings = {**sampling.settings, "eos_token_id": served.stop_ids, "pad_token_id": served.tokenizer.pad_token_id}
        job = Job(
            prompt_ids, settings, sampling.n, sampling.stop, sampling.seed, asyncio.get_running_loop(), asyncio.Queue()
        )
        try:
            worker.submit(job)
        except QueueFull:
            raise ApiError(
                503,
                f"The server is busy: {max_queue} requests are already waiting. Retry in a few seconds.",
                kind="server_busy",
                code="queue_full",
                headers={"Retry-After": str(retry_after)},
            ) from None
        return job

    def budgeted(sampling):
        if sampling.settings["max_new_tokens"] > served.context_length - 2:
            raise ApiError(
                400,
                f"max_tokens leaves no room for a prompt in the {served.context_length}-token context.",
                param="max_tokens",
                code="invalid_value",
            )

    def chat_prompt(messages, sampling) -> list[int]:
        session = ChatSession(served.model, served.tokenizer, {"max_new_tokens": sampling.settings["max_new_tokens"]})
        try:
            ids, _, _ = session.prompt_for(messages)
        except ValueError as err:
            raise ApiError(400, str(err), param="messages", code="invalid_value") from None
        return ids

    def completion_prompt(prompt: str, sampling) -> list[int]:
        ids = encode(served.tokenizer, prompt)
        budget = served.context_length - sampling.settings["max_new_tokens"]
        return ids if len(ids) <= budget else ids[:1] + ids[len(ids) - budget + 1 :]  # keep <bos> and the end

    async def collect(job: Job, request: Request) -> dict:
        """Wait for a job's events; returns texts, finish reasons and token counts per choice."""
        texts, finish, tokens = [""] * job.n, [None] * job.n, [0] * job.n
        try:
            while True:
                kind, *rest = await job.events.get()
                if kind == "delta":
                    texts[rest[0]] += rest[1]
                elif kind == "end":
                    finish[rest[0]], tokens[rest[0]] = rest[1], rest[2]
                elif kind == "error":
                    raise ApiError(500, rest[0], kind="server_error")
                elif kind == "done":
                    return {"texts": texts, "finish": finish, "tokens": tokens}
        finally:
            job.cancelled.set()  # a no-op once done; stops the generation if the client left (handler cancelled)

    async def stream(job: Job, request: Request, chunk, include_usage: bool, prompt_tokens: int):
        """Server-sent events: chunk(index, text=..., finish=...) for each piece, usage, then [DONE]. A client
        that disconnects cancels the job."""
        completion_tokens = 0
        try:
            while True:
                try:
                    kind, *rest = await asyncio.wait_for(job.events.get(), timeout=1.0)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                if kind == "delta":
                    yield _sse(chunk(rest[0], text=rest[1]))
                elif kind == "end":
                    completion_tokens += rest[2]
                    yield _sse(chunk(rest[0], finish=rest[1]))
                elif kind == "error":
                    yield _sse(ApiError(500, rest[0], kind="server_error").body())
                elif kind == "done":
                    if include_usage:
                        usage = _usage(prompt_tokens, completion_tokens)
                        yield _sse({**chunk(0), "choices": [], "usage": usage})
                    yield _sse("[DONE]")
                    return
        finally:
            job.cancelled.set()

    async def respond(request: Request, job: Job, sampling, prompt_ids: list[int], obj: str, chunk, choice):
        """The answer to a request: server-sent events of `chunk(index, text=, finish=)` pieces when it streams,
        else one `obj` object whose choices are `choice(index, text, finish_reason)`."""
        if sampling.stream:
            return StreamingResponse(
                stream(job, request, chunk, sampling.include_usage, len(prompt_ids)),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        result = await collect(job, request)
        choices = [choice(i, t, f) for i, (t, f) in enumerate(zip(result["texts"], result["finish"]))]
        return {
            "id": chunk.ident,
            "object": obj,
            "created": chunk.created,
            "model": served.name,
            "choices": choices,
            "usage": _usage(len(prompt_ids), sum(result["tokens"])),
        }

    def stamped(function, prefix: str):
        """Give a chunk builder the response id and creation time every piece repeats."""
        function.ident, function.created = f"{prefix}-{uuid.uuid4().hex}", int(time.time())
        return function

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request)
        messages = parse_messages(body)
        sampling = parse_sampling(body, served.generation_defaults, served.context_length)
        budgeted(sampling)
        prompt_ids = chat_prompt(messages, sampling)
        job = submit(prompt_ids, sampling)
        first = [True] * sampling.n  # the first piece of each choice names the role

        def chunk(index, text=None, finish=None):
            delta = {}
            if first[index] and finish is None:
                delta["role"], first[index] = "assistant", False
            if text is not None:
                delta["content"] = text
            return {
                "id": chunk.ident,
                "object": "chat.completion.chunk",
                "created": chunk.created,
                "model": served.name,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
            }

        def choice(index, text, finish):
            return {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish}

        return await respond(request, job, sampling, prompt_ids, "chat.completion", stamped(chunk, "chatcmpl"), choice)

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_body(request)
        prompt = parse_prompt(body)
        sampling = parse_sampling(body, served.generation_defaults, served.context_length)
        budgeted(sampling)
        prompt_ids = completion_prompt(prompt, sampling)
        job = submit(prompt_ids, sampling)

        def chunk(index, text="", finish=None):
            return {
                "id": chunk.ident,
                "object": "text_completion",
                "created": chunk.created,
                "model": served.name,
                "choices": [choice(index, text, finish)],
            }

        def choice(index, text, finish):
            return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}

        return await respond(request, job, sampling, prompt_ids, "text_completion", stamped(chunk, "cmpl"), choice)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "chargpt"}]}

    @app.get("/health")
    async def health():
        return {
            "status": "ok",
            "model": served.name,
            "context_length": served.context_length,
            "max_tokens_limit": served.context_length - 2,  # a prompt needs <bos> and one character
            "queued": worker.queue.qsize(),
            "busy": worker.busy,
            **worker.stats,
            "defaults": served.generation_defaults,
        }

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return chat_page()

    return app


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(
    served: ServedModel, max_queue: int = 32, host: str = "127.0.0.1", port: int | None = None, timeout: float = 30.0
):
    """Serve `served` from a background thread of this process (a notebook, a test, a benchmark) and yield its base
    URL (http://HOST:PORT); the server stops when the block ends."""
    _require_fastapi()
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(
        uvicorn.Config(build_app(served, max_queue=max_queue), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="chargpt-serve", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"chargpt serve did not start on {url} within {timeout:.0f} s.")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)


def serve(served: ServedModel, host: str = "127.0.0.1", port: int = 8000, max_queue: int = 32, log_level="info"):
    """Run the server until interrupted."""
    _require_fastapi()
    import uvicorn

    uvicorn.run(build_app(served, max_queue=max_queue), host=host, port=port, log_level=log_level)


__all__ = ["build_app", "chat_page", "free_port", "running_server", "serve"]
