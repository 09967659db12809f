"""Router model ids and their routing suffixes (`:fastest`, `:cheapest`, `:<provider>`, ...)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import get_close_matches

from ._errors import ConfigError

POLICIES = ("fastest", "cheapest", "preferred")

# Hugging Face Inference Providers that serve chat models. A name missing here is still accepted
# (providers join often); the list only powers "did you mean" and the error messages.
_PROVIDERS = (
    "baseten",
    "cerebras",
    "clarifai",
    "cohere",
    "deepinfra",
    "featherless-ai",
    "fireworks-ai",
    "groq",
    "hf-inference",
    "hyperbolic",
    "nebius",
    "novita",
    "nscale",
    "ovhcloud",
    "publicai",
    "sambanova",
    "scaleway",
    "together",
    "wavespeed",
    "zai-org",
)

_REPO = re.compile(r"[A-Za-z0-9._-]+/[A-Za-z0-9._-]+")
_SUFFIX = re.compile(r"[a-z0-9-]+")

# A policy typo would silently pin a provider that does not exist, so policies get a looser
# match than providers, where a real new name may sit close to a known one.
_POLICY_CUTOFF = 0.7
_PROVIDER_CUTOFF = 0.8

_CHOICES = (
    "Add a routing policy (:fastest, the default, :cheapest, :preferred) or pin a provider ("
    + ", ".join(f":{name}" for name in _PROVIDERS)
    + "), e.g. MiniMaxAI/MiniMax-M2:novita."
)
_FORM = "Write the model as org/name or org/name:suffix, e.g. MiniMaxAI/MiniMax-M2:novita."


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model id split into the repository and its routing suffix (None when absent)."""

    repo: str
    route: str | None = None

    @property
    def policy(self) -> str | None:
        """The routing policy: the suffix when it is one of POLICIES, "fastest" when absent."""
        if self.route is None:
            return "fastest"
        return self.route if self.route in POLICIES else None

    @property
    def provider(self) -> str | None:
        """The pinned provider, when the suffix names one."""
        return None if self.route is None or self.route in POLICIES else self.route

    def __str__(self) -> str:
        return self.repo if self.route is None else f"{self.repo}:{self.route}"


def parse_model(model: str) -> ModelRef:
    """Parse and validate a router model id; a bad suffix raises ConfigError listing the choices."""
    repo, colon, route = model.partition(":")
    if ":" in route:
        raise ConfigError(f"model id {model!r} has more than one ':'", hint=_FORM)
    if not _REPO.fullmatch(repo):
        raise ConfigError(f"model id {model!r} is not of the form org/name", hint=_FORM)
    if not colon:
        return ModelRef(repo)

    _check_route(model, route)
    return ModelRef(repo, route)


def _check_route(model: str, route: str) -> None:
    if not route:
        raise _error(f"model id {model!r} ends with an empty routing suffix")

    if not _SUFFIX.fullmatch(route):
        guess = _near_miss(route.lower())
        raise _error(
            f"routing suffix {route!r} in {model!r} may hold only a-z, 0-9 and '-'"
            + (f"; did you mean :{guess}?" if guess else "")
        )

    if route not in POLICIES and route not in _PROVIDERS and (guess := _near_miss(route)):
        raise _error(f"unknown routing suffix {route!r} in {model!r}; did you mean :{guess}?")


def _near_miss(route: str) -> str | None:
    if route in POLICIES or route in _PROVIDERS:
        return route
    close = get_close_matches(route, POLICIES, n=1, cutoff=_POLICY_CUTOFF)
    close = close or get_close_matches(route, _PROVIDERS, n=1, cutoff=_PROVIDER_CUTOFF)
    return close[0] if close else None


def _error(problem: str) -> ConfigError:
    return ConfigError(problem, hint=_CHOICES)
