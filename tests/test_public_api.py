"""The public surface of m2kit: a change to it must be deliberate."""

from __future__ import annotations

import m2kit

EXPECTED = {
    "APIError",
    "AsyncConversation",
    "AnswerDelta",
    "AsyncChatStream",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "ChatParams",
    "ChatStream",
    "Client",
    "ConfigError",
    "ConnectionFailed",
    "Conversation",
    "CreditsExhaustedError",
    "Done",
    "M2Error",
    "ModelLoadingError",
    "ModelNotFoundError",
    "ModelRef",
    "Notice",
    "PROFILE_NAMES",
    "ParameterDropped",
    "PermissionDeniedError",
    "Profile",
    "RateLimitError",
    "Recorder",
    "Reply",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "RunEvent",
    "RunResult",
    "Split",
    "StreamError",
    "StreamErrorEvent",
    "StreamEvent",
    "StreamInterrupted",
    "StreamSplitter",
    "StructuredOutputError",
    "ThinkingDelta",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolResult",
    "ToolStep",
    "Turn",
    "Usage",
    "UsageUpdate",
    "Wait",
    "__version__",
    "parse_model",
    "profile_for",
    "profile_named",
    "split_reply",
    "tool",
}


def test_all_is_pinned() -> None:
    """If a public name is added or removed, then this test fails until EXPECTED says so.

    The order of `__all__` is ruff's to keep (RUF022).
    """
    assert set(m2kit.__all__) == EXPECTED
    assert len(m2kit.__all__) == len(EXPECTED)


def test_every_public_name_resolves() -> None:
    """If a name is in __all__, then it can be imported from m2kit, the lazy clients included."""
    for name in m2kit.__all__:
        assert getattr(m2kit, name) is not None


def test_errors_share_one_base() -> None:
    """If m2kit raises, then the error is an M2Error, so callers can catch them all at once."""
    errors = [getattr(m2kit, n) for n in m2kit.__all__ if n.endswith(("Error", "Failed"))]
    errors += [m2kit.StreamInterrupted]
    assert all(issubclass(error, m2kit.M2Error) for error in errors)
