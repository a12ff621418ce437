"""A token bucket shared by every request thread of a judge.

Implemented as the generic cell rate algorithm (GCRA): one "theoretical arrival
time" instead of a token count, which is the same bucket with fewer moving parts.
A ``Retry-After`` from the server pauses the whole bucket, not just the thread
that saw it, since the server is telling every request to wait.
"""

import threading
import time


class RateLimiter:
    """Let at most ``per_minute`` requests start per minute, ``burst`` of them at once.

    ``per_minute=None`` sets no rate, but ``defer`` still pauses every caller.
    """

    def __init__(self, per_minute: float | None, burst: int = 1, clock=time.monotonic):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.burst = max(int(burst), 1)
        # How far ahead of schedule a burst may run.
        self._tolerance = (self.burst - 1) * self.interval
        self._clock = clock
        self._tat = clock()  # theoretical arrival time of the next request
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; return False if ``stop`` was set while waiting."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            start = max(now, tat - self._tolerance)
            self._tat = tat + self.interval
        delay = start - now
        if delay <= 0:
            return True
        if stop is None:
            time.sleep(delay)
            return True
        return not stop.wait(delay)

    def defer(self, seconds: float) -> None:
        """Start no request for ``seconds`` from now."""
        with self._lock:
            self._tat = max(self._tat, self._clock() + seconds + self._tolerance)
