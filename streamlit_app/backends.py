"""Calls to the model backends, and what their answers and failures mean.

Pages call `fill_mask`, `explain` and `find_counterfactuals`, get plain data
classes back, and catch one exception, `BackendError`, whose `kind` says
whether the visitor should wait (`cold`) or rephrase (`rejected`), or the
model is not available (`missing`: not deployed; `failed`: anything else).
Visitors get a plain message; every failure is also logged once, with what an
operator needs to find it in AWS (error code, HTTP status, request id, the
start of the body). Nothing here imports Streamlit.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

import app_log

log = app_log.logger("backends")

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

SAGEMAKER = "SageMaker endpoint"
LAMBDA = "Lambda function"

# How much of a reply that is not JSON a visitor sees, and how much of any
# text one log line keeps: enough to recognise the page or the stack trace,
# far below CloudWatch Logs' 256 KB per event.
SHOWN_REPLY_CHARS = 500
LOGGED_TEXT_CHARS = 2000

_LOG_LEVELS = {"cold": logging.WARNING, "rejected": logging.INFO, "missing": logging.ERROR, "failed": logging.ERROR}


class BackendError(Exception):
    """A backend call that produced no result: what the visitor is told, and what the operator's log says.

    `message` and, for rejected input, `reason` are for visitors; for a reply
    that is not JSON, `reply` is its start, as text. `code`, `status`,
    `request_id`, `body` and `extra` only ever go to the log (`log_line`).
    """

    def __init__(
        self,
        kind: ErrorKind,
        service: str,
        name: str,
        detail: str,
        *,
        code: str = "",
        status: int | None = None,
        request_id: str | None = None,
        body: str | None = None,
        extra: Mapping[str, object] | None = None,
        reply: str | None = None,
        reason: str | None = None,
    ):
        super().__init__(f"{service} {name!r}: {detail}")
        self.kind = kind
        self.service = service  # "SageMaker endpoint" or "Lambda function"
        self.name = name  # the endpoint's or function's name
        self.detail = detail
        self.code = code
        self.status = status
        self.request_id = request_id
        self.body = body
        self.extra = dict(extra or {})
        self.reply = reply
        self.reason = reason

    @property
    def backend(self) -> str:
        return f"{self.service} {self.name!r}"

    @property
    def message(self) -> str:
        """What a visitor reads: plain words, no command, no technical detail."""
        model = f"The model '{self.name}'"
        if self.kind == "cold":
            return (
                f"{model} is waking up or busy. Models sleep when idle, and the first request after a pause "
                "can take a minute or two. Please try again shortly."
            )
        if self.kind == "rejected":
            return "The model could not work with this input. Please change it and try again."
        if self.reply is not None:
            return f"{model} is not available right now: it sent a reply that is not JSON."
        return f"{model} is not available right now. Please try again later."

    def log_line(self) -> str:
        """One line for the app's log: everything an operator needs to find the failure in AWS."""
        fields: dict[str, object] = {
            "code": self.code,
            "status": self.status,
            "request_id": self.request_id,
            **self.extra,
            "detail": self.detail,
            "body": self.body,
        }
        parts = [f"{key}={_log_value(value)}" for key, value in fields.items() if value is not None and value != ""]
        return f"{self.backend} failed ({self.kind}): {' '.join(parts)}"


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


_Call = TypeVar("_Call", bound=Callable[..., Any])


def _logs_failures(call: _Call) -> _Call:
    """Log each BackendError the call raises, once, at a level matching its kind."""

    @functools.wraps(call)
    def logged(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except BackendError as error:
            log.log(_LOG_LEVELS[error.kind], "%s", error.log_line())
            raise

    return logged  # type: ignore[return-value]


@_logs_failures
def fill_mask(endpoint_name: str, text: str, top_k: int = 5) -> list[Fill]:
    """Candidate words for the single mask token in `text`, most likely first."""
    reply = _invoke_endpoint(endpoint_name, {"inputs": text, "parameters": {"top_k": top_k}})
    try:
        return [Fill(str(f["token_str"]).strip(), float(f["score"]), str(f["sequence"])) for f in reply.value]
    except (KeyError, TypeError, ValueError) as error:
        raise _unexpected_reply(SAGEMAKER, endpoint_name, "fill-mask predictions", reply) from error


@_logs_failures
def explain(endpoint_name: str, text: str) -> Explanation:
    """Label scores and per-token attributions from the explanations endpoint."""
    reply = _invoke_endpoint(endpoint_name, {"inputs": text})
    answer = reply.value
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
        raise _unexpected_reply(SAGEMAKER, endpoint_name, "an explanation", reply) from error


@_logs_failures
def find_counterfactuals(function_name: str, text: str, target_label: str | None) -> CounterfactualSearch:
    """Ask the counterfactual Lambda for edits of `text` that lower `target_label`'s score."""
    event: dict[str, str] = {"text": text}
    if target_label:
        event["target_label"] = target_label
    reply = _invoke_function(function_name, event)
    answer = reply.value

    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if status != 200:
        if not isinstance(answer, dict) or status is None:
            raise _unexpected_reply(LAMBDA, function_name, "a result with a statusCode", reply)
        # The function's own error kinds (see functions/text_counterfactuals).
        code = str(answer.get("error", ""))
        kind: ErrorKind = {
            "bad_input": "rejected",
            "backend_cold": "cold",
            "backend_missing": "missing",
        }.get(code, "failed")
        message = str(answer.get("message", f"status {status}"))
        raise BackendError(
            kind,
            LAMBDA,
            function_name,
            message,
            code=code,
            status=reply.status,
            request_id=reply.request_id,
            body=reply.text,
            extra={"function_status": status},
            # The function words bad_input messages for the person who typed the input.
            reason=_visitor_reason(message) if kind == "rejected" else None,
        )
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
        raise _unexpected_reply(LAMBDA, function_name, "counterfactuals", reply) from error


@dataclass(frozen=True)
class _Reply:
    """A backend's parsed answer, with what the log needs should its content turn out unusable."""

    value: Any
    text: str
    status: int | None
    request_id: str | None


def _invoke_endpoint(endpoint_name: str, payload: Any) -> _Reply:
    try:
        response = aws_client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(payload),
        )
        body = response["Body"].read()
    except ClientError as error:
        raise _sagemaker_failure(endpoint_name, error) from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise BackendError("cold", SAGEMAKER, endpoint_name, str(error), code=type(error).__name__) from error
    except BotoCoreError as error:  # no credentials or region, network trouble
        raise BackendError("failed", SAGEMAKER, endpoint_name, str(error), code=type(error).__name__) from error
    return _json_reply(SAGEMAKER, endpoint_name, body, str(response.get("ContentType", "")), response)


def _is_missing_endpoint(code: str, message: str) -> bool:
    # InvokeEndpoint says "Endpoint NAME of account ID not found."; other
    # SageMaker calls say "Could not find endpoint ...". Both are validation errors.
    message = message.lower()
    return code in ("ValidationException", "ValidationError") and (
        "could not find endpoint" in message or ("endpoint" in message and "not found" in message)
    )


def _client_error_fields(error: ClientError) -> dict[str, Any]:
    """The error code, HTTP status and AWS request id botocore parsed from a failed call."""
    metadata = error.response.get("ResponseMetadata", {})
    return {
        "code": str(error.response.get("Error", {}).get("Code", "")),
        "status": metadata.get("HTTPStatusCode"),
        "request_id": metadata.get("RequestId"),
    }


def _sagemaker_failure(endpoint_name: str, error: ClientError) -> BackendError:
    fields = _client_error_fields(error)
    code = fields["code"]
    message = str(error.response.get("Error", {}).get("Message", ""))
    if _is_missing_endpoint(code, message):
        return BackendError("missing", SAGEMAKER, endpoint_name, message, **fields)
    if code in _SAGEMAKER_TRANSIENT:
        return BackendError("cold", SAGEMAKER, endpoint_name, message, **fields)
    if code == "ModelError":
        # The container answered with an error, or never answered in time (a
        # serverless endpoint still loading its model). 4xx is about the input.
        # ModelError carries OriginalStatusCode, OriginalMessage and LogStreamArn:
        # https://docs.aws.amazon.com/botocore/latest/reference/services/sagemaker-runtime/client/exceptions/ModelError.html
        original_status = int(error.response.get("OriginalStatusCode") or 0)
        original_message = str(error.response.get("OriginalMessage") or "")
        details: dict[str, Any] = {
            **fields,
            "body": original_message,
            "extra": {"model_status": original_status, "log_stream": error.response.get("LogStreamArn")},
        }
        if 400 <= original_status < 500:
            reason = _visitor_reason(original_message)
            return BackendError("rejected", SAGEMAKER, endpoint_name, message, reason=reason, **details)
        if original_status == 0 or "timed out" in message.lower():
            return BackendError("cold", SAGEMAKER, endpoint_name, message, **details)
        return BackendError("failed", SAGEMAKER, endpoint_name, message, **details)
    return BackendError("failed", SAGEMAKER, endpoint_name, message, **fields)


def _invoke_function(function_name: str, event: dict[str, Any]) -> _Reply:
    try:
        response = aws_client("lambda").invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = response["Payload"].read()
    except ClientError as error:
        fields = _client_error_fields(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        if fields["code"] == "ResourceNotFoundException":
            raise BackendError("missing", LAMBDA, function_name, message, **fields) from error
        if fields["code"] in _LAMBDA_TRANSIENT:
            raise BackendError("cold", LAMBDA, function_name, message, **fields) from error
        raise BackendError("failed", LAMBDA, function_name, message, **fields) from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise BackendError("cold", LAMBDA, function_name, str(error), code=type(error).__name__) from error
    except BotoCoreError as error:
        raise BackendError("failed", LAMBDA, function_name, str(error), code=type(error).__name__) from error

    if response.get("FunctionError"):
        # The function raised, or Lambda stopped it (timeout, out of memory):
        # the payload is an error object, {errorMessage, errorType, stackTrace}.
        # https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_ResponseSyntax
        text = payload.decode("utf-8", errors="replace")
        try:
            error_object = json.loads(text)
        except ValueError:
            error_object = None
        if not isinstance(error_object, dict):
            error_object = {}
        error_message = str(error_object.get("errorMessage", ""))
        error_type = str(error_object.get("errorType", ""))
        status, request_id = _response_metadata(response)
        # A function that waited on a cold endpoint past its own timeout.
        timed_out = error_type == "Sandbox.Timedout" or "Task timed out" in error_message
        raise BackendError(
            "cold" if timed_out else "failed",
            LAMBDA,
            function_name,
            error_message or "the function failed",
            code=error_type,
            status=status,
            request_id=request_id,
            body=text,
            extra={"function_error": str(response["FunctionError"])},
        )
    return _json_reply(LAMBDA, function_name, payload, "", response)


def _response_metadata(response: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """HTTP status and AWS request id of a successful call (botocore's ResponseMetadata)."""
    metadata = response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode", response.get("StatusCode"))
    return status, metadata.get("RequestId")


def is_html(text: str, content_type: str = "") -> bool:
    """Whether `text` is an HTML page, as load balancers, proxies and web servers send for errors.

    Said so by its content type, or starting like a page; a page wrapped in
    other text still contains its `<html` tag.
    """
    lowered = text.lower()
    return "html" in content_type.lower() or "<html" in lowered or "<!doctype html" in lowered


def _json_reply(service: str, name: str, body: bytes, content_type: str, response: Mapping[str, Any]) -> _Reply:
    """Parse a reply that should be JSON; an HTML page or other text is a failure, logged with the text's start."""
    text = body.decode("utf-8", errors="replace")
    status, request_id = _response_metadata(response)
    if is_html(text, content_type):
        raise BackendError(
            "failed",
            service,
            name,
            "replied with an HTML page instead of JSON",
            code="HTMLReply",
            status=status,
            request_id=request_id,
            body=text,
            extra={"content_type": content_type or None},
        )
    try:
        value = json.loads(text)
    except ValueError as error:
        raise BackendError(
            "failed",
            service,
            name,
            "replied with something that is not JSON",
            code="NotJSON",
            status=status,
            request_id=request_id,
            body=text,
            extra={"content_type": content_type or None},
            reply=_truncated(text, SHOWN_REPLY_CHARS) if text.strip() else "(an empty reply)",
        ) from error
    return _Reply(value=value, text=text, status=status, request_id=request_id)


def _unexpected_reply(service: str, name: str, expected: str, reply: _Reply) -> BackendError:
    return BackendError(
        "failed",
        service,
        name,
        f"expected {expected} but got something else: is it the right model?",
        code="UnexpectedReply",
        status=reply.status,
        request_id=reply.request_id,
        body=reply.text,
    )


def _visitor_reason(message: str) -> str | None:
    """What a model said about the input, if it is fit for a visitor: short plain text, never an HTML page."""
    try:
        parsed = json.loads(message)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        # The model servers in SageMaker's framework containers answer errors
        # as {"code": 400, "type": "InternalServerException", "message": ...}.
        message = parsed["message"]
    message = message.strip()
    if not message or is_html(message):
        return None
    return _truncated(message, SHOWN_REPLY_CHARS)


def _truncated(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


_PLAIN_LOG_VALUE = re.compile(r"[\w.:/@+=$\[\]-]+")


def _log_value(value: object) -> str:
    """A value for a `key=value` log field: bare if it is one word, else quoted on one line (newlines escaped)."""
    if isinstance(value, int):
        return str(value)
    text = _truncated(str(value), LOGGED_TEXT_CHARS)
    if _PLAIN_LOG_VALUE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)
