"""Calls to the model backends, and what their answers and failures mean.

Pages call `fill_mask`, `explain` and `find_counterfactuals`, get plain data
classes back, and catch one exception, `BackendError`, whose `kind` says
whether to wait (`cold`), deploy (`missing`), rephrase (`rejected`) or
investigate (`failed`). Nothing here imports Streamlit.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

ErrorKind = Literal["cold", "missing", "rejected", "failed"]

# SageMaker gives up on an invocation after 60 s. A Lambda invocation can run
# up to 900 s; waiting longer than that means the function's own timeout
# always reports first.
_CLIENT_CONFIGS = {
    "sagemaker-runtime": Config(connect_timeout=5, read_timeout=70, retries={"mode": "standard", "max_attempts": 3}),
    "lambda": Config(connect_timeout=5, read_timeout=910, retries={"mode": "standard", "max_attempts": 3}),
}

# "Exists but cannot answer now": throttled, at capacity, or still starting.
_SAGEMAKER_TRANSIENT = {
    "ThrottlingException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "InternalDependencyException",
}
_LAMBDA_TRANSIENT = {
    "TooManyRequestsException",
    "ResourceConflictException",  # an update of the function is in progress
    "ResourceNotReadyException",
    "ServiceException",
    "EC2ThrottledException",
}


class BackendError(Exception):
    """A backend call that produced no result, classified for the user."""

    def __init__(self, kind: ErrorKind, backend: str, detail: str):
        super().__init__(f"{backend}: {detail}")
        self.kind = kind
        self.backend = backend
        self.detail = detail

    @property
    def message(self) -> str:
        if self.kind == "cold":
            return (
                f"{self.backend} is waking up or busy. Serverless models sleep when idle, and the first "
                "request after a pause can take a minute or two. Please try again shortly."
            )
        if self.kind == "missing":
            return (
                f"{self.backend} is not available: it may still be deploying, or it was removed. "
                "Run `provision up` to (re)create it."
            )
        if self.kind == "rejected":
            return "The model could not work with this input. Please change it and try again."
        return f"{self.backend} returned an error."


@dataclass(frozen=True)
class Fill:
    word: str
    score: float
    sequence: str


@dataclass(frozen=True)
class TokenAttribution:
    token: str
    start: int
    end: int
    attributions: dict[str, float]


@dataclass(frozen=True)
class Explanation:
    label_scores: dict[str, float]  # best first
    tokens: list[TokenAttribution]
    method: str
    truncated: bool

    @property
    def predicted_label(self) -> str:
        return next(iter(self.label_scores))


@dataclass(frozen=True)
class Counterfactual:
    text: str
    replaced: str
    replacement: str
    target_score: float
    predicted_label: str
    flipped: bool


@dataclass(frozen=True)
class CounterfactualSearch:
    target_label: str
    label_scores: dict[str, float]
    masked_words: list[str]
    counterfactuals: list[Counterfactual]  # lowest target score first


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def aws_client(service_name: str) -> Any:
    """One client per service for the whole app; the region comes from the standard AWS variables."""
    with _clients_lock:  # boto3's client construction is not thread-safe, and Streamlit runs sessions in threads
        if service_name not in _clients:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
            _clients[service_name] = boto3.session.Session().client(
                service_name, region_name=region, config=_CLIENT_CONFIGS[service_name]
            )
        return _clients[service_name]


def fill_mask(endpoint_name: str, text: str, top_k: int = 5) -> list[Fill]:
    """Candidate words for the single mask token in `text`, most likely first."""
    answer = _invoke_endpoint(endpoint_name, {"inputs": text, "parameters": {"top_k": top_k}})
    try:
        return [Fill(str(f["token_str"]).strip(), float(f["score"]), str(f["sequence"])) for f in answer]
    except (KeyError, TypeError, ValueError) as error:
        raise _unexpected_answer(f"SageMaker endpoint {endpoint_name!r}", "fill-mask predictions") from error


def explain(endpoint_name: str, text: str) -> Explanation:
    """Label scores and per-token attributions from the explanations endpoint."""
    answer = _invoke_endpoint(endpoint_name, {"inputs": text})
    try:
        ranked = sorted(answer["labels"], key=lambda entry: float(entry["score"]), reverse=True)
        return Explanation(
            label_scores={str(entry["label"]): float(entry["score"]) for entry in ranked},
            tokens=[
                TokenAttribution(
                    token=str(t["token"]),
                    start=int(t["start"]),
                    end=int(t["end"]),
                    attributions={str(label): float(score) for label, score in t["attributions"].items()},
                )
                for t in answer["tokens"]
            ],
            method=str(answer.get("attribution_method", "")),
            truncated=bool(answer.get("truncated", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _unexpected_answer(f"SageMaker endpoint {endpoint_name!r}", "an explanation") from error


def find_counterfactuals(function_name: str, text: str, target_label: str | None) -> CounterfactualSearch:
    """Ask the counterfactual Lambda for edits of `text` that lower `target_label`'s score."""
    backend = f"Lambda function {function_name!r}"
    event: dict[str, str] = {"text": text}
    if target_label:
        event["target_label"] = target_label
    answer = _invoke_function(function_name, event)

    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if status != 200:
        if not isinstance(answer, dict) or status is None:
            raise _unexpected_answer(backend, "a result with a statusCode")
        # The function's own error kinds (see functions/text_counterfactuals).
        kind: ErrorKind = {
            "bad_input": "rejected",
            "backend_cold": "cold",
            "backend_missing": "missing",
        }.get(str(answer.get("error")), "failed")
        raise BackendError(kind, backend, str(answer.get("message", f"status {status}")))
    try:
        return CounterfactualSearch(
            target_label=str(answer["target_label"]),
            label_scores={str(label): float(score) for label, score in answer["label_scores"].items()},
            masked_words=[str(word) for word in answer["masked_words"]],
            counterfactuals=[
                Counterfactual(
                    text=str(c["text"]),
                    replaced=str(c["replaced"]),
                    replacement=str(c["replacement"]),
                    target_score=float(c["target_score"]),
                    predicted_label=str(c["predicted_label"]),
                    flipped=bool(c["flipped"]),
                )
                for c in answer["counterfactuals"]
            ],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _unexpected_answer(backend, "counterfactuals") from error


def _invoke_endpoint(endpoint_name: str, payload: Any) -> Any:
    backend = f"SageMaker endpoint {endpoint_name!r}"
    try:
        response = aws_client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(payload),
        )
        body = response["Body"].read()
    except ClientError as error:
        raise _sagemaker_failure(backend, error) from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise BackendError("cold", backend, str(error)) from error
    except BotoCoreError as error:  # no credentials or region, network trouble
        raise BackendError("failed", backend, str(error)) from error
    try:
        return json.loads(body)
    except ValueError as error:
        raise _unexpected_answer(backend, "JSON") from error


def _is_missing_endpoint(code: str, message: str) -> bool:
    # InvokeEndpoint says "Endpoint NAME of account ID not found."; other
    # SageMaker calls say "Could not find endpoint ...". Both are validation errors.
    message = message.lower()
    return code in ("ValidationException", "ValidationError") and (
        "could not find endpoint" in message or ("endpoint" in message and "not found" in message)
    )


def _sagemaker_failure(backend: str, error: ClientError) -> BackendError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if _is_missing_endpoint(code, message):
        return BackendError("missing", backend, message)
    if code in _SAGEMAKER_TRANSIENT:
        return BackendError("cold", backend, f"{code}: {message}")
    if code == "ModelError":
        # The container answered with an error, or never answered in time (a
        # serverless endpoint still loading its model). 4xx is about the input.
        original_status = int(error.response.get("OriginalStatusCode") or 0)
        original_message = str(error.response.get("OriginalMessage") or message)
        if 400 <= original_status < 500:
            return BackendError("rejected", backend, original_message)
        if original_status == 0 or "timed out" in message.lower():
            return BackendError("cold", backend, message)
        return BackendError("failed", backend, original_message)
    return BackendError("failed", backend, f"{code}: {message}")


def _invoke_function(function_name: str, event: dict[str, Any]) -> Any:
    backend = f"Lambda function {function_name!r}"
    try:
        response = aws_client("lambda").invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = response["Payload"].read()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code == "ResourceNotFoundException":
            raise BackendError("missing", backend, message) from error
        if code in _LAMBDA_TRANSIENT:
            raise BackendError("cold", backend, f"{code}: {message}") from error
        raise BackendError("failed", backend, f"{code}: {message}") from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise BackendError("cold", backend, str(error)) from error
    except BotoCoreError as error:
        raise BackendError("failed", backend, str(error)) from error

    try:
        answer = json.loads(payload)
    except ValueError as error:
        raise _unexpected_answer(backend, "JSON") from error
    if response.get("FunctionError"):
        # The function crashed or was stopped; Lambda reports it inside the payload.
        error_message = str(answer.get("errorMessage", "")) if isinstance(answer, dict) else str(answer)
        # A function that waited on a cold endpoint past its own timeout.
        kind: ErrorKind = "cold" if "Task timed out" in error_message else "failed"
        raise BackendError(kind, backend, error_message or str(response["FunctionError"]))
    return answer


def _unexpected_answer(backend: str, expected: str) -> BackendError:
    return BackendError("failed", backend, f"Expected {expected} but got something else. Is it the right model?")
