"""A `chargpt serve` app running in this process for the tests: uvicorn in a thread on a free 127.0.0.1 port,
stopped by the test."""

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request

import uvicorn

from chargpt.serving.app import build_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(served, max_queue: int = 32):
    """Yield the base URL (http://127.0.0.1:PORT) of a server for `served` (a chargpt.serving.ServedModel)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(served, max_queue=max_queue), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("chargpt serve did not start within 30 s")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
