"""m2kit: MiniMax-M2 and other open chat models through Hugging Face Inference Providers.

```python
import m2kit

client = m2kit.Client()  # MiniMaxAI/MiniMax-M2 on the Hugging Face router, token from HF_TOKEN
reply = client.chat("Write a Python function to calculate factorial.")
print(reply.text)        # the answer; reply.thinking holds the reasoning
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._agent import RunEvent, RunResult, ToolStep
from ._conversation import AsyncConversation, Conversation, Recorder, Turn
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConnectionFailed,
    CreditsExhaustedError,
    M2Error,
    ModelLoadingError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    StreamErrorEvent,
    StreamInterrupted,
    StructuredOutputError,
)
from ._profiles import PROFILE_NAMES, Profile, profile_for, profile_named
from ._request import ChatParams
from ._retry import RetryPolicy
from ._routing import ModelRef, parse_model
from ._stream import AsyncChatStream, ChatStream
from ._thinking import Split, StreamSplitter, split_reply
from ._tool_runs import ToolResult
from ._tools import Tool, ToolArgumentsError, tool
from ._types import (
    AnswerDelta,
    Done,
    Notice,
    ParameterDropped,
    Reply,
    StreamEvent,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageUpdate,
    Wait,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

__all__ = [
    "PROFILE_NAMES",
    "APIError",
    "AnswerDelta",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncConversation",
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
    "ParameterDropped",
    "PermissionDeniedError",
    "Profile",
    "RateLimitError",
    "Recorder",
    "Reply",
    "RequestTimeoutError",
    "RetryPolicy",
    "RunEvent",
    "RunResult",
    "ServerError",
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
]


def __getattr__(name: str) -> Any:
    # The clients pull in the HTTP stack; importing it only when used keeps `m2 --help` fast.
    if name in ("Client", "AsyncClient"):
        from . import _client

        return getattr(_client, name)
    raise AttributeError(f"module 'm2kit' has no attribute {name!r}")
