"""Lambda handler: counterfactual texts that move a sentiment classifier away from a label.

Event: ``{"text": "...", "target_label": "POSITIVE"}``; ``target_label`` may be
left out to mean "the label the classifier predicts for the text".

Answer on success::

    {"statusCode": 200, "text": ..., "target_label": "POSITIVE",
     "label_scores": {"POSITIVE": 0.99, "NEGATIVE": 0.01},
     "masked_words": ["great"],
     "counterfactuals": [{"text": ..., "replaced": "great", "replacement": "terrible",
                          "target_score": 0.02, "score_change": -0.97,
                          "predicted_label": "NEGATIVE", "flipped": true,
                          "label_scores": {...}, "fill_score": 0.11}, ...]}

``counterfactuals`` holds only texts that lower the target label's score,
lowest score first. On failure: ``{"statusCode": ..., "error": kind, "message": ...}``
with 400 ``bad_input``, 500 ``misconfigured``, 502 ``backend_missing`` or
``backend_error``, 503 ``backend_cold`` (an endpoint is starting or busy:
try again).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

import counterfactuals as search

logger = logging.getLogger()
logger.setLevel(logging.INFO)

DEFAULTS = {
    "MASK_TOKEN": "<mask>",  # distilroberta-base's; BERT-style models use [MASK]
    # Occlusion costs grow with the square of the length; ~300 characters (about
    # 60-70 tokens) keeps a warm search within a few seconds on a CPU endpoint.
    "MAX_TEXT_CHARS": "300",
    "MAX_MASKED_WORDS": "3",
    "CANDIDATES_PER_WORD": "5",
    # The function's own timeout bounds the whole search; this bounds one endpoint call.
    "ENDPOINT_TIMEOUT_SECONDS": "8",
}

# Error codes that mean "the endpoint exists but cannot answer right now":
# throttling, capacity, or a serverless endpoint still starting.
TRANSIENT_ERROR_CODES = {
    "ThrottlingException",
    "Throttling",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "InternalDependencyException",
}


class HandlerError(Exception):
    def __init__(self, status_code: int, error: str, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message

    def to_response(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "error": self.error, "message": self.message}


def bad_input(message: str) -> HandlerError:
    return HandlerError(400, "bad_input", message)


@dataclass(frozen=True)
class Settings:
    classifier_endpoint: str
    mlm_endpoint: str
    mask_token: str
    max_text_chars: int
    max_masked_words: int
    candidates_per_word: int
    endpoint_timeout_seconds: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        missing = [
            name for name in ("CLASSIFIER_ENDPOINT_NAME", "MLM_ENDPOINT_NAME") if not environ.get(name, "").strip()
        ]
        if missing:
            raise HandlerError(
                500,
                "misconfigured",
                f"The function is missing environment variable(s) {', '.join(missing)}: set them to the SageMaker endpoint names.",
            )

        def setting(name: str) -> str:
            return environ.get(name, "").strip() or DEFAULTS[name]

        def positive_number(name: str, kind: type) -> Any:
            try:
                value = kind(setting(name))
            except ValueError:
                value = 0
            if value <= 0:
                raise HandlerError(
                    500,
                    "misconfigured",
                    f"Environment variable {name} must be a positive number, got {environ.get(name)!r}.",
                )
            return value

        return cls(
            classifier_endpoint=environ["CLASSIFIER_ENDPOINT_NAME"].strip(),
            mlm_endpoint=environ["MLM_ENDPOINT_NAME"].strip(),
            mask_token=setting("MASK_TOKEN"),
            max_text_chars=positive_number("MAX_TEXT_CHARS", int),
            max_masked_words=positive_number("MAX_MASKED_WORDS", int),
            candidates_per_word=positive_number("CANDIDATES_PER_WORD", int),
            endpoint_timeout_seconds=positive_number("ENDPOINT_TIMEOUT_SECONDS", float),
        )


def parse_event(event: Any, settings: Settings) -> tuple[str, str | None]:
    if not isinstance(event, Mapping):
        raise bad_input('The event must be a JSON object like {"text": "...", "target_label": "..."}.')
    text = event.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_input('"text" must be a non-empty string.')
    if len(text) > settings.max_text_chars:
        raise bad_input(f'"text" is {len(text)} characters long; the limit is {settings.max_text_chars}.')
    if settings.mask_token in text:
        raise bad_input(f'"text" must not contain the mask token {settings.mask_token}.')
    target_label = event.get("target_label")
    if target_label is not None and not isinstance(target_label, str):
        raise bad_input('"target_label" must be a string, or left out to use the predicted label.')
    return text, (target_label.strip() or None) if target_label else None


class Endpoints:
    """The two SageMaker endpoints the search uses, behind plain Python values."""

    def __init__(self, runtime_client: Any, settings: Settings):
        self._client = runtime_client
        self._settings = settings

    def explain(self, text: str) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """The classifier's ``{label: score}`` for ``text`` and its per-token attributions."""
        endpoint = self._settings.classifier_endpoint
        answer = self._invoke(endpoint, {"inputs": text})
        try:
            label_scores = _label_scores(answer)
            tokens = [
                {"start": int(t["start"]), "end": int(t["end"]), "attributions": dict(t["attributions"])}
                for t in answer["tokens"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise self._unexpected(endpoint, "an explanation with labels and tokens") from error
        return label_scores, tokens

    def classify(self, texts: list[str]) -> list[dict[str, float]]:
        """The classifier's ``{label: score}`` for each text, in one request."""
        endpoint = self._settings.classifier_endpoint
        answer = self._invoke(endpoint, {"inputs": texts, "parameters": {"attributions": False}})
        try:
            if len(answer) != len(texts):
                raise ValueError("one classification per text expected")
            return [_label_scores(result) for result in answer]
        except (KeyError, TypeError, ValueError) as error:
            raise self._unexpected(endpoint, f"a list of {len(texts)} classifications") from error

    def fill_mask(self, masked_text: str) -> list[dict[str, Any]]:
        # One more than needed: the top fill is often the original word, which is skipped.
        top_k = self._settings.candidates_per_word + 1
        answer = self._invoke(self._settings.mlm_endpoint, {"inputs": masked_text, "parameters": {"top_k": top_k}})
        if not isinstance(answer, list) or not all(isinstance(fill, dict) for fill in answer):
            raise self._unexpected(self._settings.mlm_endpoint, "a list of fill-mask predictions")
        return answer

    def _invoke(self, endpoint_name: str, payload: Any) -> Any:
        try:
            response = self._client.invoke_endpoint(
                EndpointName=endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(payload),
            )
            return json.loads(response["Body"].read())
        except ClientError as error:
            raise endpoint_failure(endpoint_name, error) from error
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as error:
            raise HandlerError(
                503,
                "backend_cold",
                f"SageMaker endpoint {endpoint_name!r} did not answer in time; it may be starting up. Try again in a minute.",
            ) from error
        except BotoCoreError as error:
            raise HandlerError(
                502, "backend_error", f"Calling SageMaker endpoint {endpoint_name!r} failed: {error}"
            ) from error
        except ValueError as error:  # the body was not JSON
            raise self._unexpected(endpoint_name, "JSON") from error

    @staticmethod
    def _unexpected(endpoint_name: str, expected: str) -> HandlerError:
        return HandlerError(
            502,
            "backend_error",
            f"SageMaker endpoint {endpoint_name!r} did not answer with {expected}; is it the right model?",
        )


def _label_scores(result: Any) -> dict[str, float]:
    scores = {str(entry["label"]): float(entry["score"]) for entry in result["labels"]}
    if not scores:
        raise ValueError("no labels")
    return scores


def is_missing_endpoint(code: str, message: str) -> bool:
    # InvokeEndpoint says "Endpoint NAME of account ID not found."; other
    # SageMaker calls say "Could not find endpoint ...". Both are validation errors.
    message = message.lower()
    return code in ("ValidationException", "ValidationError") and (
        "could not find endpoint" in message or ("endpoint" in message and "not found" in message)
    )


def endpoint_failure(endpoint_name: str, error: ClientError) -> HandlerError:
    """Translate a SageMaker runtime error into an answer the caller can act on."""
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if is_missing_endpoint(code, message):
        return HandlerError(
            502, "backend_missing", f"SageMaker endpoint {endpoint_name!r} does not exist; it may still be deploying."
        )
    if code in TRANSIENT_ERROR_CODES:
        return HandlerError(
            503,
            "backend_cold",
            f"SageMaker endpoint {endpoint_name!r} is busy or starting up ({code}). Try again in a minute.",
        )
    if code == "ModelError":
        # The container answered with an error, or never answered: a serverless
        # endpoint that is still loading its model times out here.
        original_status = int(error.response.get("OriginalStatusCode") or 0)
        original_message = error.response.get("OriginalMessage") or message
        if 400 <= original_status < 500:
            return HandlerError(
                502, "backend_error", f"SageMaker endpoint {endpoint_name!r} rejected the request: {original_message}"
            )
        if original_status == 0 or "timed out" in message.lower():
            return HandlerError(
                503,
                "backend_cold",
                f"SageMaker endpoint {endpoint_name!r} did not answer in time; it may be starting up. Try again in a minute.",
            )
        return HandlerError(502, "backend_error", f"SageMaker endpoint {endpoint_name!r} failed: {original_message}")
    return HandlerError(502, "backend_error", f"SageMaker endpoint {endpoint_name!r} failed with {code}: {message}")


def find_counterfactuals(
    text: str, requested_label: str | None, settings: Settings, endpoints: Endpoints
) -> dict[str, Any]:
    label_scores, tokens = endpoints.explain(text)
    if requested_label is None:
        target_label = max(label_scores, key=label_scores.__getitem__)
    else:
        target_label = search.resolve_label(requested_label, label_scores)
        if target_label is None:
            raise bad_input(
                f"Unknown target_label {requested_label!r}; the classifier's labels are {', '.join(label_scores)}."
            )
    original_score = label_scores[target_label]

    words = search.words_to_mask(text, tokens, target_label, settings.max_masked_words)
    candidates: list[search.Candidate] = []
    for word in words:
        fills = endpoints.fill_mask(search.masked_text(text, word, settings.mask_token))
        candidates.extend(search.candidates_from_fills(text, word, fills, settings.candidates_per_word))

    ranked = (
        search.rank_counterfactuals(
            candidates, endpoints.classify([c.text for c in candidates]), target_label, original_score
        )
        if candidates
        else []
    )
    return {
        "text": text,
        "target_label": target_label,
        "label_scores": label_scores,
        "masked_words": [word.text for word in words],
        "counterfactuals": [c.to_json(target_label, original_score) for c in ranked],
    }


_client_lock = threading.Lock()
_runtime_client: Any = None


def runtime_client(settings: Settings) -> Any:
    """One SageMaker runtime client per container, reused across invocations."""
    global _runtime_client
    with _client_lock:
        if _runtime_client is None:
            _runtime_client = boto3.client(
                "sagemaker-runtime",
                region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
                config=Config(
                    connect_timeout=2,
                    read_timeout=settings.endpoint_timeout_seconds,
                    retries={"mode": "standard", "max_attempts": 2},
                ),
            )
        return _runtime_client


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        settings = Settings.from_environ(os.environ)
        text, requested_label = parse_event(event, settings)
        result = find_counterfactuals(text, requested_label, settings, Endpoints(runtime_client(settings), settings))
    except HandlerError as failure:
        log = logger.warning if failure.status_code < 500 else logger.error
        log("%s: %s", failure.error, failure.message)
        return failure.to_response()
    logger.info(
        "%d counterfactual(s) for label %s from %d masked word(s)",
        len(result["counterfactuals"]),
        result["target_label"],
        len(result["masked_words"]),
    )
    return {"statusCode": 200, **result}
