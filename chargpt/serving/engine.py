"""The generation side of `chargpt serve`: the served model, and one worker thread that runs every request in turn,
so the model (and its key/value cache) is never used by two requests at once. Requests wait in a bounded queue; a
full queue is refused at once rather than answered late. Each request's text travels back to its own client through
its own `Job`, chunk by chunk; a job whose client went away is cancelled, and its generation stops at the next
token."""

import asyncio
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import torch

from ..chat import ReplyStreamer
from ..export.native import NATIVE_INFO_FILE
from ..loading import detect_task, load_config, load_model_and_tokenizer
from ..tasks import context_length, effective_max_new_tokens


logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """Every place in the queue is taken."""


class _Stop(Exception):
    """Raised inside generate() (from the streamer) to end a generation early."""


@dataclass
class ServedModel:
    """A causal LM ready to answer: a CharGPT model (PyTorch or int8 export) or a native export (Qwen3 / GPT-2)."""

    name: str
    model: object
    tokenizer: object
    context_length: int
    generation_defaults: dict  # do_sample, temperature, top_p, top_k, max_new_tokens, ... from generation_config

    @property
    def stop_ids(self) -> list[int]:
        ids = [self.tokenizer.sep_token_id, self.tokenizer.eos_token_id]
        return [i for i in ids if i is not None]


_DEFAULT_KEYS = ("do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "min_new_tokens", "repetition_penalty")


def load_served_model(
    model_dir: str, name: str | None = None, trust_remote_code: bool = False, device: str = "cpu", dtype: str = "auto"
) -> ServedModel:
    """Load any causal-LM folder chargpt writes: a CharGPT model (save_pretrained, publish), its int8 export, or its
    native transformers export (loaded with transformers' own classes). `device` / `dtype` as in chargpt.loading."""
    model_dir = str(model_dir)
    if os.path.isfile(os.path.join(model_dir, NATIVE_INFO_FILE)):
        model, tokenizer = _load_native(model_dir)
    else:
        task = detect_task(load_config(model_dir, trust_remote_code))
        if task != "causal-lm":
            raise ValueError(
                f"{model_dir} holds a {task} model; chargpt serve answers with a causal LM (a chat model)."
            )
        model, tokenizer = load_model_and_tokenizer(
            model_dir, task="causal-lm", device=device, dtype=dtype, trust_remote_code=trust_remote_code
        )
    config = model.config
    context = context_length(config)
    generation = getattr(model, "generation_config", None)
    defaults = {k: getattr(generation, k, None) for k in _DEFAULT_KEYS}
    defaults = {k: v for k, v in defaults.items() if v is not None}
    defaults["max_new_tokens"] = effective_max_new_tokens(model, {})
    return ServedModel(name or os.path.basename(os.path.abspath(model_dir)), model, tokenizer, context, defaults)


def _load_native(model_dir: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with open(os.path.join(model_dir, NATIVE_INFO_FILE), encoding="utf-8") as f:
        if json.load(f).get("task") != "causal-lm":
            raise ValueError(
                f"{model_dir} is a native export of a classifier; chargpt serve answers with a causal "
                f"LM (a chat model)."
            )
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=False).eval()
    return model, AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)


@dataclass
class Job:
    """One request: its prompt, generate() settings, number of choices, stop strings and seed. The worker reports
    through `events` (read by the request's handler on the event loop): ("delta", index, text), ("end", index,
    finish_reason, completion_tokens), ("error", message) and finally ("done", None)."""

    prompt_ids: list[int]
    settings: dict
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    loop: asyncio.AbstractEventLoop | None = None
    events: asyncio.Queue | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, *event):
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class _JobStreamer(ReplyStreamer):
    """chargpt chat's streamer (the reply so far, decoded) sending the new text to the job; holds back text that
    could be the beginning of a stop string, ends the generation at a stop string or when the job is cancelled."""

    def __init__(self, job: Job, index: int, tokenizer):
        super().__init__(tokenizer)
        self.job, self.index = job, index
        self.sent = ""
        self.stopped_by_string = False
        self.hold = max((len(s) for s in job.stop), default=1) - 1

    def put(self, value):
        if self.job.cancelled.is_set():
            raise _Stop
        super().put(value)  # updates self.token_ids and self.text (nothing for the prompt)
        cut = min((self.text.find(s) for s in self.job.stop if s in self.text), default=-1)
        if cut >= 0:
            self._send(self.text[:cut])
            self.stopped_by_string = True
            raise _Stop
        self._send(self.text[: len(self.text) - self.hold] if self.hold else self.text)

    def end(self):
        self._send(self.text)

    def _send(self, text: str):
        if len(text) > len(self.sent):
            self.job.emit("delta", self.index, text[len(self.sent) :])
            self.sent = text


class Worker:
    """The one thread that runs the model. `submit` queues a job or raises QueueFull."""

    def __init__(self, served: ServedModel, max_queue: int = 32):
        if max_queue < 1:
            raise ValueError(f"--max_queue must be >= 1, got {max_queue}.")
        self.served = served
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.stats = {"completed": 0, "cancelled": 0, "failed": 0, "generated_tokens": 0}
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="chargpt-serve-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job):
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None

    def close(self):
        self.queue.put(None)
        self._thread.join(timeout=30)

    def _run(self):
        while True:
            job = self.queue.get()
            if job is None:
                return
            if job.cancelled.is_set():  # its client left while it waited
                self.stats["cancelled"] += 1
                job.emit("done", None)
                continue
            self.busy = True
            try:
                self._generate(job)
            except Exception as err:  # a failure ends this request, never the worker
                logger.exception("Generation failed")
                self.stats["failed"] += 1
                job.emit("error", f"{type(err).__name__}: {err}")
            finally:
                self.busy = False
                job.emit("done", None)

    @torch.no_grad()
    def _generate(self, job: Job):
        model, tokenizer = self.served.model, self.served.tokenizer
        input_ids = torch.tensor([job.prompt_ids], device=getattr(model, "device", "cpu"))
        if job.seed is not None:
            torch.manual_seed(job.seed)
        for index in range(job.n):
            streamer = _JobStreamer(job, index, tokenizer)
            started = time.perf_counter()
            try:
                out = model.generate(
                    input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer, **job.settings
                )
                new = out[0, input_ids.shape[1] :].tolist()
                stopped = bool(new) and new[-1] in self.served.stop_ids
            except _Stop:
                new = streamer.token_ids
                if job.cancelled.is_set():
                    self.stats["cancelled"] += 1
                    return
                stopped = streamer.stopped_by_string
            self.stats["generated_tokens"] += len(new)
            logger.debug("choice %d: %d tokens in %.3f s", index, len(new), time.perf_counter() - started)
            job.emit("end", index, "stop" if stopped else "length", len(new))
        self.stats["completed"] += 1


__all__ = ["Job", "QueueFull", "ServedModel", "Worker", "load_served_model"]
