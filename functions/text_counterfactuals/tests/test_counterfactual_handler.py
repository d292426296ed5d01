"""The Lambda handler end to end, with SageMaker stubbed by botocore's Stubber.

The Stubber checks every request against the SageMaker runtime API model and
against the exact body we expect, so these tests pin down what the function
sends to the two endpoints as well as what it answers.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

import app

CLASSIFIER = "sentiment-explanations"
MLM = "sentiment-unmasking"
TEXT = "The movie was great and fun."


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    monkeypatch.setenv("CLASSIFIER_ENDPOINT_NAME", CLASSIFIER)
    monkeypatch.setenv("MLM_ENDPOINT_NAME", MLM)
    monkeypatch.setenv("MAX_MASKED_WORDS", "2")
    monkeypatch.setenv("CANDIDATES_PER_WORD", "2")
    for name in ("MASK_TOKEN", "MAX_TEXT_CHARS", "ENDPOINT_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sagemaker(monkeypatch):
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    monkeypatch.setattr(app, "runtime_client", lambda settings: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def expect(stubber, endpoint, request, answer):
    body = json.dumps(answer).encode()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        expected_params={
            "EndpointName": endpoint,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(request),
        },
    )


def expect_failure(stubber, code, message, status=400, **modeled_fields):
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        modeled_fields=modeled_fields or None,
    )


def labels(positive):
    return [{"label": "POSITIVE", "score": positive}, {"label": "NEGATIVE", "score": 1 - positive}]


def explanation(positive=0.95):
    def token(start, end, support):
        return {
            "token": TEXT[start:end],
            "start": start,
            "end": end,
            "attributions": {"POSITIVE": support, "NEGATIVE": -support},
        }

    tokens = [
        token(0, 3, 0.01),
        token(4, 9, 0.0),
        token(10, 13, 0.0),
        token(14, 19, 0.6),
        token(20, 23, 0.0),
        token(24, 27, 0.2),
        token(27, 28, 0.3),
    ]
    return {"labels": labels(positive), "tokens": tokens, "attribution_method": "occlusion", "truncated": False}


def fill(word, score):
    return {"score": score, "token": 1, "token_str": f" {word}", "sequence": "ignored"}


def expect_full_search(stubber):
    expect(stubber, CLASSIFIER, {"inputs": TEXT}, explanation())
    # "great" supports POSITIVE most, then "fun"; the "." is not a word.
    expect(
        stubber,
        MLM,
        {"inputs": "The movie was <mask> and fun.", "parameters": {"top_k": 3}},
        [fill("great", 0.4), fill("terrible", 0.2), fill("boring", 0.1)],
    )
    expect(
        stubber,
        MLM,
        {"inputs": "The movie was great and <mask>.", "parameters": {"top_k": 3}},
        [fill("long", 0.3), fill("fun", 0.2), fill("cheap", 0.1)],
    )
    candidates = [
        "The movie was terrible and fun.",
        "The movie was boring and fun.",
        "The movie was great and long.",
        "The movie was great and cheap.",
    ]
    expect(
        stubber,
        CLASSIFIER,
        {"inputs": candidates, "parameters": {"attributions": False}},
        [{"labels": labels(0.1)}, {"labels": labels(0.3)}, {"labels": labels(0.97)}, {"labels": labels(0.6)}],
    )


def test_finds_counterfactuals_that_push_the_classifier_away_from_the_label(sagemaker):
    expect_full_search(sagemaker)

    answer = app.handler({"text": TEXT, "target_label": "POSITIVE"}, None)

    assert answer["statusCode"] == 200
    assert answer["target_label"] == "POSITIVE"
    assert answer["label_scores"] == {"POSITIVE": 0.95, "NEGATIVE": pytest.approx(0.05)}
    assert answer["masked_words"] == ["great", "fun"]
    # Lowest POSITIVE score first; "great and long" raised it and is left out.
    assert [(c["text"], c["target_score"], c["flipped"]) for c in answer["counterfactuals"]] == [
        ("The movie was terrible and fun.", 0.1, True),
        ("The movie was boring and fun.", 0.3, True),
        ("The movie was great and cheap.", 0.6, False),
    ]
    first = answer["counterfactuals"][0]
    assert (first["replaced"], first["replacement"], first["predicted_label"]) == ("great", "terrible", "NEGATIVE")
    assert first["score_change"] == pytest.approx(-0.85)
    json.dumps(answer)  # what Lambda sends back must serialise


def test_without_a_target_label_the_predicted_label_is_used(sagemaker):
    expect_full_search(sagemaker)

    answer = app.handler({"text": TEXT}, None)

    assert answer["statusCode"] == 200
    assert answer["target_label"] == "POSITIVE"
    assert len(answer["counterfactuals"]) == 3


def test_target_label_is_matched_ignoring_case(sagemaker):
    expect_full_search(sagemaker)

    assert app.handler({"text": TEXT, "target_label": "positive"}, None)["target_label"] == "POSITIVE"


def test_when_no_word_supports_the_label_nothing_is_masked(sagemaker):
    expect(sagemaker, CLASSIFIER, {"inputs": TEXT}, explanation())

    answer = app.handler({"text": TEXT, "target_label": "NEGATIVE"}, None)

    assert answer["statusCode"] == 200
    assert answer["masked_words"] == []
    assert answer["counterfactuals"] == []


def test_an_unknown_target_label_names_the_labels_there_are(sagemaker):
    expect(sagemaker, CLASSIFIER, {"inputs": TEXT}, explanation())

    answer = app.handler({"text": TEXT, "target_label": "NEUTRAL"}, None)

    assert answer["statusCode"] == 400
    assert answer["error"] == "bad_input"
    assert "POSITIVE, NEGATIVE" in answer["message"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("just a string", "must be a JSON object"),
        ({}, '"text" must be a non-empty string'),
        ({"text": "   "}, '"text" must be a non-empty string'),
        ({"text": 42}, '"text" must be a non-empty string'),
        ({"text": "x" * 301}, "the limit is 300"),
        ({"text": "a <mask> here"}, "must not contain the mask token <mask>"),
        ({"text": TEXT, "target_label": 1}, '"target_label" must be a string'),
    ],
)
def test_bad_input_is_refused_before_any_endpoint_is_called(sagemaker, event, message):
    answer = app.handler(event, None)

    assert answer["statusCode"] == 400
    assert answer["error"] == "bad_input"
    assert message in answer["message"]


@pytest.mark.parametrize("missing", ["CLASSIFIER_ENDPOINT_NAME", "MLM_ENDPOINT_NAME"])
def test_missing_endpoint_names_are_reported_as_misconfiguration(monkeypatch, sagemaker, missing):
    monkeypatch.delenv(missing)

    answer = app.handler({"text": TEXT}, None)

    assert answer["statusCode"] == 500
    assert answer["error"] == "misconfigured"
    assert missing in answer["message"]


def test_a_limit_that_is_not_a_positive_number_is_misconfiguration(monkeypatch, sagemaker):
    monkeypatch.setenv("MAX_MASKED_WORDS", "three")

    answer = app.handler({"text": TEXT}, None)

    assert (answer["statusCode"], answer["error"]) == (500, "misconfigured")
    assert "MAX_MASKED_WORDS" in answer["message"]


def test_another_mask_token_is_sent_to_the_language_model(monkeypatch, sagemaker):
    monkeypatch.setenv("MASK_TOKEN", "[MASK]")
    monkeypatch.setenv("MAX_MASKED_WORDS", "1")
    expect(sagemaker, CLASSIFIER, {"inputs": TEXT}, explanation())
    expect(sagemaker, MLM, {"inputs": "The movie was [MASK] and fun.", "parameters": {"top_k": 3}}, [fill("dull", 0.3)])
    expect(
        sagemaker,
        CLASSIFIER,
        {"inputs": ["The movie was dull and fun."], "parameters": {"attributions": False}},
        [{"labels": labels(0.2)}],
    )

    answer = app.handler({"text": TEXT}, None)

    assert [c["text"] for c in answer["counterfactuals"]] == ["The movie was dull and fun."]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ValidationError", f"Endpoint {CLASSIFIER} of account 123456789012 not found."),  # InvokeEndpoint's wording
        ("ValidationException", f'Could not find endpoint "{CLASSIFIER}".'),
    ],
)
def test_a_missing_endpoint_is_named(sagemaker, code, message):
    expect_failure(sagemaker, code, message)

    answer = app.handler({"text": TEXT}, None)

    assert (answer["statusCode"], answer["error"]) == (502, "backend_missing")
    assert CLASSIFIER in answer["message"]


@pytest.mark.parametrize(
    ("code", "message", "modeled_fields"),
    [
        ("ThrottlingException", "Rate exceeded", {}),
        ("ModelNotReadyException", "Model is not ready", {}),
        (
            "ModelError",
            'Received server error (0) from primary with message "Your invocation timed out while waiting for a response from container primary."',
            {"OriginalStatusCode": 0},
        ),
    ],
)
def test_a_cold_or_busy_endpoint_asks_to_try_again(sagemaker, code, message, modeled_fields):
    expect(sagemaker, CLASSIFIER, {"inputs": TEXT}, explanation())
    expect_failure(sagemaker, code, message, status=424 if code == "ModelError" else 400, **modeled_fields)

    answer = app.handler({"text": TEXT}, None)

    assert (answer["statusCode"], answer["error"]) == (503, "backend_cold")
    assert MLM in answer["message"] and "Try again" in answer["message"]


def test_a_model_that_rejects_the_request_passes_its_reason_on(sagemaker):
    expect(sagemaker, CLASSIFIER, {"inputs": TEXT}, explanation())
    reason = "No mask_token (<mask>) found on the input"
    expect_failure(
        sagemaker,
        "ModelError",
        f'Received client error (400) from primary with message "{reason}"',
        status=424,
        OriginalStatusCode=400,
        OriginalMessage=reason,
    )

    answer = app.handler({"text": TEXT}, None)

    assert (answer["statusCode"], answer["error"]) == (502, "backend_error")
    assert reason in answer["message"]


def test_an_endpoint_that_does_not_answer_in_time_is_cold(monkeypatch):
    class HangingClient:
        def invoke_endpoint(self, **request):
            raise ReadTimeoutError(endpoint_url=f"https://runtime.sagemaker/{request['EndpointName']}")

    monkeypatch.setattr(app, "runtime_client", lambda settings: HangingClient())

    answer = app.handler({"text": TEXT}, None)

    assert (answer["statusCode"], answer["error"]) == (503, "backend_cold")


def test_an_endpoint_answering_something_else_than_an_explanation_is_an_error(sagemaker):
    expect(sagemaker, CLASSIFIER, {"inputs": TEXT}, [{"label": "POSITIVE", "score": 0.9}])

    answer = app.handler({"text": TEXT}, None)

    assert (answer["statusCode"], answer["error"]) == (502, "backend_error")
    assert "is it the right model?" in answer["message"]
