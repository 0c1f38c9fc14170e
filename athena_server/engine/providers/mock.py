"""The original's deterministic echo provider, with test options to make it slow or flaky."""

from __future__ import annotations

import asyncio

from athena_server.engine.providers.base import ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode
from athena_server.personas import mock_review

# Request metadata the mock honours, so tests can exercise cancellation, timeouts and retries through the
# real API: `mock.delayMs` sleeps before answering; `mock.failAttempts` fails that many first attempts
# with a retryable PROVIDER_ERROR.
DELAY_MS = "mock.delayMs"
FAIL_ATTEMPTS = "mock.failAttempts"


def _int_option(request: ProviderRequest, key: str) -> int:
    raw = request.metadata.get(key)
    if raw is None:
        return 0
    try:
        return max(0, int(raw))
    except ValueError:
        raise AthenaError(ErrorCode.ERROR_CODE_CONFIG_ERROR, f"metadata.{key} must be an integer.") from None


class MockProvider:
    """Answers `Echo: <compiled context>`; usage counts characters."""

    name = "mock"

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        delay_ms = _int_option(request, DELAY_MS)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if request.attempt <= _int_option(request, FAIL_ATTEMPTS):
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR,
                f"mock provider failure on attempt {request.attempt} (metadata.{FAIL_ATTEMPTS}).",
                retryable=True,
            )
        # A persona review input gets a deterministic, schema-valid review (athena_server/personas/mock_review.py).
        review = mock_review.answer(request.input, request.metadata)
        output = review if review is not None else f"Echo: {request.prompt}"
        return ProviderResult(
            output=output,
            model=request.model or "mock-model",
            input_tokens=len(request.prompt),
            output_tokens=len(output),
        )
