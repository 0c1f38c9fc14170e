"""What a run's token usage cost, from operator-configured prices.

Prices are configuration, not code: model price lists change more often than this server is released, and
an OpenAI-compatible endpoint can serve any model. So the operator states them per `<provider>/<model>` in
`ATHENA_MODEL_PRICES` (JSON), and a model without a price has an unknown cost (None), never a guessed one:
a wrong number would silently mislead cost budgets, an unknown one is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from athena_server.config import Settings


class ModelPrice(BaseModel):
    """USD per million tokens. Accepts snake_case and the camelCase the rest of the API speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    input_per_million: float = Field(
        default=0.0, ge=0, validation_alias=AliasChoices("input_per_million", "inputPerMillion")
    )
    output_per_million: float = Field(
        default=0.0, ge=0, validation_alias=AliasChoices("output_per_million", "outputPerMillion")
    )


def price_key(provider: str, model: str) -> str:
    """The key a price is configured under."""
    return f"{provider}/{model}"


class Pricing:
    """Looks up configured prices and turns usage into a cost."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices: dict[str, ModelPrice] = dict(prices or {})

    @classmethod
    def from_settings(cls, settings: Settings) -> Pricing:
        return cls(settings.model_prices)

    def price(self, provider: str, model: str) -> ModelPrice | None:
        return self._prices.get(price_key(provider, model))

    def cost_usd(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """The cost of this usage, or None when no price is configured for the model (cost unknown)."""
        price = self.price(provider, model)
        if price is None:
            return None
        return (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1_000_000

    def models(self, provider: str) -> list[str]:
        """The models of `provider` that have a configured price, sorted."""
        prefix = f"{provider}/"
        return sorted(key[len(prefix) :] for key in self._prices if key.startswith(prefix))
