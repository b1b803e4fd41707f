"""`chargpt serve`: talk to a CharGPT chat model from any OpenAI client and in a browser. `engine` holds the model
and the one worker thread that runs it; `protocol` checks the OpenAI request fields; `app` is the FastAPI
application (API, server-sent events, the chat page in `static/`)."""

from .engine import Job, QueueFull, ServedModel, Worker, load_served_model
from .protocol import ApiError


__all__ = ["ApiError", "Job", "QueueFull", "ServedModel", "Worker", "load_served_model"]
