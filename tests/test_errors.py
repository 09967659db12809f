"""Reading error responses: status to class, every body shape, request ids, token redaction."""

from __future__ import annotations

import json

import pytest

from m2kit._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CreditsExhaustedError,
    ModelLoadingError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    error_from_response,
    error_message,
    redact,
)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, CreditsExhaustedError),
        (403, PermissionDeniedError),
        (404, ModelNotFoundError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (418, APIError),
    ],
)
def test_status_picks_the_class(status: int, cls: type[APIError]) -> None:
    """If the server answers a status, then the error is of the class for it, status attached."""
    error = error_from_response(status, {}, '{"error": "nope"}')

    assert type(error) is cls
    assert error.status == status
    assert error.message == "nope"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error": "Invalid credentials in Authorization header"}', "Invalid credentials"),
        ('{"error": {"message": "The requested model is not supported", "code": "x"}}', "not sup"),
        ('{"message": "bad things"}', "bad things"),
        ('{"detail": [{"msg": "field required"}]}', "field required"),
        ("Failed to deserialize the JSON body into the target type", "Failed to deserialize"),
        ("", "HTTP 400 with an empty body"),
    ],
    ids=["error-text", "error-object", "message", "detail-list", "plain-text", "empty"],
)
def test_every_body_shape_is_read(body: str, message: str) -> None:
    """If the error body has any known shape, then the server's message is what the error says."""
    assert message in error_from_response(400, {}, body).message


def test_hints_name_the_fix() -> None:
    """If the status is 401, 402 or 403, then the hint names the variable, page or permission."""
    assert "HF_TOKEN" in error_from_response(401, {}, "").hint
    assert "hf auth login" in error_from_response(401, {}, "").hint
    assert "settings/tokens" in error_from_response(401, {}, "").hint
    assert "PRO" in error_from_response(402, {}, "").hint
    assert "pre-paid credits" in error_from_response(402, {}, "").hint
    assert "Make calls to Inference Providers" in error_from_response(403, {}, "").hint


def test_loading_model_carries_its_estimate() -> None:
    """If a 503 says the model is loading, then the error carries estimated_time."""
    body = json.dumps({"error": "Model x is currently loading", "estimated_time": 20.5})

    error = error_from_response(503, {}, body)

    assert isinstance(error, ModelLoadingError)
    assert error.estimated_time == 20.5


def test_request_id_is_attached() -> None:
    """If the response has a request id header, then the error carries it."""
    error = error_from_response(500, {"x-request-id": "req-123"}, "{}")

    assert error.request_id == "req-123"


def test_token_is_redacted_everywhere() -> None:
    """If the server echoes the token, then neither message nor body keep it."""
    token = "hf_abcdefghijklmnopqrstuvwxyz"
    body = json.dumps({"error": f"token {token} is invalid"})

    error = error_from_response(401, {}, body, secret=token)

    assert token not in str(error)
    assert token not in error.body
    assert "[token]" in error.message


def test_redact_hides_secret_shapes() -> None:
    """If text holds anything shaped like a key, then redact hides it, the given secret too."""
    assert redact("a sk-1234567890abc b", None) == "a [token] b"
    assert redact("my-own-key here", "my-own-key") == "[token] here"
    assert error_message('{"error": {"message": ""}, "message": "fallback"}') == "fallback"
