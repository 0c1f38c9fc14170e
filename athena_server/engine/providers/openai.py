"""The `openai` provider: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM...).

Only the common subset of the protocol is used (model, messages, usage), so one provider serves every
compatible server. Errors are classified by whether a retry may succeed: rate limits, server errors and
network failures are retryable; the caller's own mistakes (other 4xx, a body we cannot read) are not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from athena_server.engine.providers.base import ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode, config_error

if TYPE_CHECKING:
    from athena_server.config import Settings

# Roles chat-completions accepts from us as they are; anything else (e.g. a transcript's "tool" turn, which
# the API only accepts paired with a tool call we never made) is sent as user content.
_KEPT_ROLES = frozenset({"user", "assistant", "system"})
# How much of a non-JSON error body a message quotes.
_BODY_SNIPPET_CHARS = 300


def chat_messages(request: ProviderRequest) -> list[dict[str, str]]:
    """The history turns, oldest first, then the new input as the last user turn."""
    messages = [
        {"role": role if role in _KEPT_ROLES else "user", "content": content} for role, content in request.history
    ]
    messages.append({"role": "user", "content": request.input})
    return messages


def _provider_error(message: str, *, retryable: bool) -> AthenaError:
    return AthenaError(ErrorCode.ERROR_CODE_PROVIDER_ERROR, message, retryable=retryable)


def _error_detail(response: httpx.Response) -> str:
    """The body's `error.message` (OpenAI's error shape), else a snippet of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return response.text[:_BODY_SNIPPET_CHARS]


def _int_field(usage: Any, key: str) -> int:
    if not isinstance(usage, dict):
        return 0
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OpenAIProvider:
    """POSTs `{base_url}/chat/completions`. One pooled `httpx.AsyncClient`, created on first use (inside the
    serving event loop) and closed by `aclose()` on shutdown."""

    name = "openai"

    def __init__(
        self,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout_seconds=settings.openai_timeout_seconds,
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout_seconds))
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        # Cancellation needs no handling of its own: httpx closes the connection of a cancelled request.
        url = f"{self.base_url}/chat/completions"
        payload = {"model": request.model, "messages": chat_messages(request)}
        try:
            response = await self._http().post(url, json=payload)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise config_error(f"openai provider: bad base URL {self.base_url!r}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise _provider_error(
                f"openai: request timed out after {self.timeout_seconds}s ({type(exc).__name__})", retryable=True
            ) from None
        except httpx.TransportError as exc:
            raise _provider_error(f"openai: cannot reach {url}: {type(exc).__name__}: {exc}", retryable=True) from None
        status = response.status_code
        if status >= 300:
            retryable = status == 429 or status >= 500
            raise _provider_error(f"openai: HTTP {status}: {_error_detail(response)}", retryable=retryable)
        return self._result(request, response)

    @staticmethod
    def _result(request: ProviderRequest, response: httpx.Response) -> ProviderResult:
        try:
            body = response.json()
        except ValueError:
            raise _provider_error(
                f"openai: malformed response (not JSON): {response.text[:_BODY_SNIPPET_CHARS]}", retryable=False
            ) from None
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _provider_error("openai: malformed response: no choices", retryable=False)
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            raise _provider_error("openai: malformed response: message content is not a string", retryable=False)
        usage = body.get("usage")
        model = body.get("model")
        return ProviderResult(
            output=content or "",
            model=model if isinstance(model, str) and model else request.model,
            input_tokens=_int_field(usage, "prompt_tokens"),
            output_tokens=_int_field(usage, "completion_tokens"),
        )
