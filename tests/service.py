"""The real ``rebook run`` as a subprocess, its log read line by line as it comes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .conftest import REBOOK
from .smtpd import free_port


class RunningService:
    """``rebook run`` in ``folder``; ``wait_for(text)`` blocks until a log line holds it."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
        environment.update(env or {})
        config = folder / "config.toml"
        if "REBOOK_WEB__LISTEN" not in environment and "listen =" not in config.read_text():
            # The endpoint's default, 127.0.0.1:8080, may be taken on the machine running tests.
            environment["REBOOK_WEB__LISTEN"] = f"127.0.0.1:{free_port()}"
        self.listen = environment.get("REBOOK_WEB__LISTEN")  # the endpoint, when the test chose
        self.process = subprocess.Popen(
            [str(REBOOK), "run", *args], cwd=folder, env=environment, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if text in line]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {text!r} in the log:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.2))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self.process.stdout.close()
        return code

    def log(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        self.process.stdout.close()
