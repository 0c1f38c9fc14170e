"""Rate limits per caller and per class of RPC, on the `limits` library's moving window.

A moving window is exact ("at most N in any T") and tells when the oldest counted request leaves the
window, which is the honest `Retry-After`. Counters live in this process's memory, so a limit holds per
replica: checking a shared counter (the database) on every request would cost a round trip on the hot
path, and the store's writer is the resource the limits protect.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from athena.v1 import options_pb2
from athena_client.contract import (
    ERROR_META_RATE_LIMIT,
    ERROR_META_RATE_REMAINING,
    ERROR_META_RATE_RESET,
    ERROR_META_RETRY_AFTER,
    rate_class_name,
)
from athena_server.access.config import AuthConfigError
from athena_server.config import Settings
from athena_server.errors import AthenaError, ErrorCode

RateClass = options_pb2.RateClass


def _parse(text: str, setting: str) -> tuple[RateLimitItem, ...]:
    if not text.strip():
        return ()
    try:
        return tuple(parse_many(text))
    except ValueError:
        raise AuthConfigError(
            f"{setting} {text!r}: expected limits such as '600/minute' or '10/second;300/hour'."
        ) from None


@dataclass(frozen=True)
class RateLimitConfig:
    """The limits of each class; a class without any is not limited."""

    by_class: dict[int, tuple[RateLimitItem, ...]]

    @property
    def enabled(self) -> bool:
        return any(self.by_class.values())


def load_rate_limits(settings: Settings) -> RateLimitConfig:
    return RateLimitConfig(
        {
            RateClass.RATE_CLASS_READ: _parse(settings.rate_limit_read, "ATHENA_RATE_LIMIT_READ"),
            RateClass.RATE_CLASS_RUN_START: _parse(settings.rate_limit_run_start, "ATHENA_RATE_LIMIT_RUN_START"),
            RateClass.RATE_CLASS_WRITE: _parse(settings.rate_limit_write, "ATHENA_RATE_LIMIT_WRITE"),
        }
    )


class RateLimiter:
    """Counts requests per (key, class) and refuses the one over a limit with RATE_LIMITED."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if config.enabled else None

    def hit(self, key: str, rate_class: int) -> None:
        """Count one request of `key` in `rate_class`, or raise RATE_LIMITED (with the retry delay and the
        bucket's figures for Retry-After and X-RateLimit-*) when a limit of the class is spent."""
        limiter = self._limiter
        if limiter is None:
            return
        name = rate_class_name(rate_class)
        for item in self.config.by_class.get(rate_class, ()):
            if not limiter.hit(item, key, name):
                stats = limiter.get_window_stats(item, key, name)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise AthenaError(
                    ErrorCode.ERROR_CODE_RATE_LIMITED,
                    f"Rate limit exceeded: {item.amount} {name} requests per {_window(item)}; "
                    f"retry in {retry_after} s.",
                    retryable=True,
                    metadata={
                        ERROR_META_RETRY_AFTER: str(retry_after),
                        ERROR_META_RATE_LIMIT: str(item.amount),
                        ERROR_META_RATE_REMAINING: str(max(0, stats.remaining)),
                        ERROR_META_RATE_RESET: str(math.ceil(stats.reset_time)),
                    },
                )


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
