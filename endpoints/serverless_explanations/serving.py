"""The SageMaker serving contract: ``GET /ping`` and ``POST /invocations`` on port 8080.

Request (``Content-Type: application/json``)::

    {"inputs": "a text"}                                  -> one explanation
    {"inputs": ["text", ...]}                             -> a list of explanations
    {"inputs": [...], "parameters": {"attributions": false}}
                                                          -> label scores only (cheap)

Explanation::

    {"labels": [{"label": "POSITIVE", "score": 0.99}, ...],          # best first
     "tokens": [{"token": "great", "start": 4, "end": 9,
                 "attributions": {"POSITIVE": 0.41, "NEGATIVE": -0.41}}, ...],
     "attribution_method": "occlusion",
     "truncated": false}

Errors are JSON ``{"error": "..."}`` with 400 (bad request body), 413 (too
many texts), 415 (not JSON) or 500 (the model could not be loaded).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from explainer import (
    DEFAULT_BATCH_SIZE,
    LazyClassifier,
    ModelConfigurationError,
    TextClassifier,
    classify,
    explain,
    load_huggingface_classifier,
)

DEFAULT_MAX_TEXTS = 64

logger = logging.getLogger(__name__)


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_invocation(payload: Any, max_texts: int) -> tuple[list[str], bool, bool]:
    """Return (texts, whether one text was sent, whether attributions are wanted)."""
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequest('Expected a JSON object with "inputs": a text or a list of texts.')
    inputs = payload["inputs"]
    single = isinstance(inputs, str)
    texts = [inputs] if single else inputs
    if not isinstance(texts, list) or not texts:
        raise BadRequest('"inputs" must be a non-empty text or a non-empty list of texts.')
    if not all(isinstance(text, str) and text.strip() for text in texts):
        raise BadRequest('Every entry of "inputs" must be a non-empty text.')
    if len(texts) > max_texts:
        raise BadRequest(f"At most {max_texts} texts per request; got {len(texts)}.", status=413)

    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest('"parameters" must be a JSON object.')
    attributions = parameters.get("attributions", True)
    if not isinstance(attributions, bool):
        raise BadRequest('"parameters.attributions" must be true or false.')
    return texts, single, attributions


def create_app(
    load_classifier: Callable[[], TextClassifier] = load_huggingface_classifier,
    *,
    max_texts: int | None = None,
    batch_size: int | None = None,
) -> Flask:
    """Build the WSGI app. ``load_classifier`` is called lazily, on first need."""
    max_texts = max_texts or int(os.environ.get("MAX_TEXTS_PER_REQUEST", DEFAULT_MAX_TEXTS))
    batch_size = batch_size or int(os.environ.get("BATCH_SIZE", DEFAULT_BATCH_SIZE))
    classifier = LazyClassifier(load_classifier)

    app = Flask(__name__)
    app.extensions["classifier"] = classifier

    def error(message: str, status: int) -> tuple[Response, int]:
        return jsonify({"error": message}), status

    @app.errorhandler(HTTPException)
    def http_error(exception: HTTPException) -> tuple[Response, int]:
        # 404/405 and friends as JSON, like every other answer of this server.
        return error(exception.description or exception.name, exception.code or 500)

    @app.get("/ping")
    def ping() -> tuple[Response, int]:
        # Healthy as soon as the server answers: the model loads lazily, and a
        # SageMaker health check must not wait for a model download.
        return jsonify({"status": "ok", "model_loaded": classifier.loaded}), 200

    @app.post("/invocations")
    def invocations() -> tuple[Response, int]:
        if not request.is_json:
            return error(f"Content-Type must be application/json, got {request.content_type or 'none'!r}.", 415)
        try:
            payload = json.loads(request.get_data())
        except ValueError:  # includes undecodable bytes
            return error("The request body is not valid JSON.", 400)
        try:
            texts, single, attributions = parse_invocation(payload, max_texts)
        except BadRequest as bad_request:
            return error(str(bad_request), bad_request.status)

        try:
            model = classifier.get()
        except ModelConfigurationError as misconfigured:
            return error(str(misconfigured), 500)
        except Exception as load_failure:
            logger.exception("Loading the model failed")
            return error(f"The model could not be loaded: {load_failure}", 500)

        if attributions:
            results = [explain(model, text, batch_size) for text in texts]
        else:
            results = classify(model, texts, batch_size)
        return jsonify(results[0] if single else results), 200

    return app


app = create_app()
