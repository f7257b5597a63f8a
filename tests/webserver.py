"""rebook's web server (``jobs.webserver``) in this process, on a thread, on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

from jobs.webserver import bind, make_server

from .smtpd import free_port


@contextlib.contextmanager
def served(app, guard=None) -> Iterator[str]:
    """``app`` served as ``rebook run`` serves it, on a free port of 127.0.0.1: its base URL."""
    port = free_port()
    sockets = bind(f"127.0.0.1:{port}")
    server = make_server(app, guard)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=sockets),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        loop.run_until_complete(_cancel_the_rest())  # the batch writer waits for work forever
        loop.close()


async def _cancel_the_rest() -> None:
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
