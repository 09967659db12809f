"""Model ids and the router's routing suffixes (`:fastest`, `:cheapest`, `:preferred`, `:<provider>`)."""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("fastest", "cheapest", "preferred")


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model id split into the repository and its routing suffix (None when absent)."""

    repo: str
    route: str | None = None

    @property
    def policy(self) -> str | None:
        """The routing policy: the suffix when it is one of POLICIES, "fastest" when absent."""
        raise NotImplementedError

    @property
    def provider(self) -> str | None:
        """The pinned provider, when the suffix names one."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.repo if self.route is None else f"{self.repo}:{self.route}"


def parse_model(model: str) -> ModelRef:
    """Parse and validate a router model id; a bad suffix raises ConfigError listing the choices."""
    raise NotImplementedError
