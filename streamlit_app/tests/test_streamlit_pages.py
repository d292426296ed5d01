"""The Streamlit app through AppTest, with the AWS clients stubbed by botocore's Stubber.

Each test runs the real entry point (Home.py) and navigates like a user, so
page registration, forms, rendering and error messages are all exercised.
The Stubber checks every request against the AWS API model and the exact
parameters we expect, so no test can reach AWS.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from streamlit.testing.v1 import AppTest

import backends
import ui

HOME = str(Path(__file__).resolve().parents[1] / "Home.py")
VARIABLES = (
    "SENTIMENT_UNMASKING_MODEL",
    "SENTIMENT_EXPLANATIONS_MODEL",
    "COUNTERFACTUAL_LAMBDA",
    "APP_TITLE",
    "MASK_TOKEN",
)


def body(value) -> StreamingBody:
    data = json.dumps(value).encode()
    return StreamingBody(io.BytesIO(data), len(data))


class StubbedAws:
    """Real boto3 clients whose answers the test queues up."""

    def __init__(self):
        options = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self.clients = {service: boto3.client(service, **options) for service in ("sagemaker-runtime", "lambda")}
        self.sagemaker = Stubber(self.clients["sagemaker-runtime"])
        self.lambda_ = Stubber(self.clients["lambda"])

    def endpoint_answers(self, endpoint, request, answer):
        self.sagemaker.add_response(
            "invoke_endpoint",
            {"Body": body(answer), "ContentType": "application/json"},
            {
                "EndpointName": endpoint,
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps(request),
            },
        )

    def endpoint_fails(self, code, message, **modeled_fields):
        self.sagemaker.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message=message,
            http_status_code=400,
            modeled_fields=modeled_fields or None,
        )

    def function_answers(self, function, event, answer, function_error=None):
        response = {"StatusCode": 200, "Payload": body(answer)}
        if function_error:
            response["FunctionError"] = function_error
        self.lambda_.add_response(
            "invoke",
            response,
            {"FunctionName": function, "InvocationType": "RequestResponse", "Payload": json.dumps(event).encode()},
        )


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws(monkeypatch):
    stubbed = StubbedAws()
    monkeypatch.setattr(backends, "aws_client", stubbed.clients.__getitem__)
    with stubbed.sagemaker, stubbed.lambda_:
        yield stubbed
        stubbed.sagemaker.assert_no_pending_responses()
        stubbed.lambda_.assert_no_pending_responses()


def open_app(page: str | None = None) -> AppTest:
    app = AppTest.from_file(HOME, default_timeout=10).run()
    if page:
        app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def submit(app: AppTest, text: str, **text_inputs: str) -> AppTest:
    app.text_area[0].input(text)
    for label, value in text_inputs.items():
        next(widget for widget in app.text_input if widget.label == label).input(value)
    app.button[0].click().run()
    assert not app.exception, app.exception
    return app


def page_links(app: AppTest) -> list[str]:
    return [link.proto.label for link in app.get("page_link")]


def shading(app: AppTest) -> dict[str, tuple[str, float]]:
    """Highlighted tokens of the explanation: token -> (colour, opacity)."""
    html = next(markdown.value for markdown in app.markdown if "<span" in markdown.value)
    return {
        token: (rgb, float(alpha))
        for rgb, alpha, token in re.findall(r"rgba\((\d+, \d+, \d+), ([\d.]+)\)[^>]*>([^<]*)</span>", html)
    }


GREEN, RED = "22, 163, 74", "220, 38, 38"


def charts(app: AppTest) -> list:
    return app.get("vega_lite_chart")


# --- navigation ---------------------------------------------------------------------------------------------------


def test_without_any_backend_the_home_page_says_what_to_configure():
    app = open_app()

    assert [title.value for title in app.title] == ["Model playground"]
    assert page_links(app) == []
    assert "SENTIMENT_EXPLANATIONS_MODEL" in app.info[0].value


def test_app_title_names_the_app(monkeypatch):
    monkeypatch.setenv("APP_TITLE", "Explainable sentiment analysis")

    assert open_app().title[0].value == "Explainable sentiment analysis"


def test_only_pages_whose_backend_is_configured_exist(monkeypatch):
    monkeypatch.setenv("SENTIMENT_EXPLANATIONS_MODEL", "sentiment-explanations")

    app = open_app()
    assert page_links(app) == ["Explain a prediction"]

    # Asking for an unregistered page lands on the home page instead.
    app.switch_page("app_pages/fill_mask.py").run()
    assert app.title[0].value == "Model playground"
    app.switch_page("app_pages/counterfactual.py").run()
    assert app.title[0].value == "Model playground"

    app.switch_page("app_pages/explain.py").run()
    assert app.title[0].value == "Explain a prediction"


def test_every_configured_backend_gets_its_page(monkeypatch):
    monkeypatch.setenv("SENTIMENT_EXPLANATIONS_MODEL", "sentiment-explanations")
    monkeypatch.setenv("SENTIMENT_UNMASKING_MODEL", "sentiment-unmasking")
    monkeypatch.setenv("COUNTERFACTUAL_LAMBDA", "text-counterfactuals")

    assert page_links(open_app()) == ["Explain a prediction", "Fill in the blank", "Counterfactuals"]


# --- fill in the blank ----------------------------------------------------------------------------------------------


@pytest.fixture
def fill_mask_page(monkeypatch):
    monkeypatch.setenv("SENTIMENT_UNMASKING_MODEL", "sentiment-unmasking")
    return open_app("app_pages/fill_mask.py")


def test_fill_mask_shows_the_likeliest_words_with_scores(fill_mask_page, aws):
    text = "The film was <mask>."
    fills = [
        {"score": 0.41, "token": 372, "token_str": " great", "sequence": "The film was great."},
        {"score": 0.12, "token": 6587, "token_str": " terrible", "sequence": "The film was terrible."},
    ]
    aws.endpoint_answers("sentiment-unmasking", {"inputs": text, "parameters": {"top_k": 5}}, fills)

    app = submit(fill_mask_page, text)

    [chart] = charts(app)
    spec = json.loads(chart.proto.spec)
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 1]  # probabilities on a fixed 0-100 % axis
    table = app.dataframe[0].value
    assert table["sentence"].tolist() == ["The film was great.", "The film was terrible."]
    assert table["score"].tolist() == [0.41, 0.12]
    assert not app.error and not app.warning


def test_fill_mask_uses_the_configured_mask_token(monkeypatch, aws):
    monkeypatch.setenv("SENTIMENT_UNMASKING_MODEL", "bert-unmasking")
    monkeypatch.setenv("MASK_TOKEN", "[MASK]")
    app = open_app("app_pages/fill_mask.py")
    assert "[MASK]" in app.text_area[0].value
    aws.endpoint_answers("bert-unmasking", {"inputs": "A [MASK] day.", "parameters": {"top_k": 5}}, [])

    submit(app, "A [MASK] day.")

    assert "no words" in app.info[0].value


@pytest.mark.parametrize("text", ["No mask here.", "Two <mask> and <mask>."])
def test_fill_mask_needs_exactly_one_mask_before_calling_the_model(fill_mask_page, aws, text):
    app = submit(fill_mask_page, text)

    assert "exactly one <mask>" in app.warning[0].value
    assert not charts(app)


def test_a_cold_endpoint_gets_a_friendly_message(fill_mask_page, aws):
    aws.endpoint_fails(
        "ModelError",
        'Received server error (0) from primary with message "Your invocation timed out while waiting for a response from container primary."',
        OriginalStatusCode=0,
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert "waking up or busy" in app.warning[0].value
    assert "sentiment-unmasking" in app.warning[0].value
    assert "timed out" in app.code[0].value  # the technical detail, folded away
    assert not app.error


def test_a_throttled_endpoint_is_treated_as_busy(fill_mask_page, aws):
    aws.endpoint_fails("ThrottlingException", "Rate exceeded")

    assert "try again shortly" in submit(fill_mask_page, "The film was <mask>.").warning[0].value


def test_a_missing_endpoint_gets_a_friendly_message(fill_mask_page, aws):
    aws.endpoint_fails("ValidationError", "Endpoint sentiment-unmasking of account 123456789012 not found.")

    app = submit(fill_mask_page, "The film was <mask>.")

    assert "is not available" in app.error[0].value
    assert "provision up" in app.error[0].value


def test_input_the_model_rejects_is_reported_as_such(fill_mask_page, aws):
    aws.endpoint_fails(
        "ModelError",
        "Received client error (400) from primary",
        OriginalStatusCode=400,
        OriginalMessage="No mask_token (<mask>) found",
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert "could not work with this input" in app.warning[0].value
    assert app.code[0].value == "No mask_token (<mask>) found"


# --- explain a prediction -------------------------------------------------------------------------------------------

EXPLAINED = "Great acting, dull plot."


def explanation():
    def token(start, end, positive):
        return {
            "token": EXPLAINED[start:end],
            "start": start,
            "end": end,
            "attributions": {"POSITIVE": positive, "NEGATIVE": -positive},
        }

    return {
        "labels": [{"label": "NEGATIVE", "score": 0.3}, {"label": "POSITIVE", "score": 0.7}],
        "tokens": [token(0, 5, 0.5), token(6, 12, 0.1), token(12, 13, 0.0), token(14, 18, -0.25), token(19, 23, 0.0)],
        "attribution_method": "occlusion",
        "truncated": False,
    }


@pytest.fixture
def explain_page(monkeypatch):
    monkeypatch.setenv("SENTIMENT_EXPLANATIONS_MODEL", "sentiment-explanations")
    return open_app("app_pages/explain.py")


def test_explain_shows_the_prediction_the_label_scores_and_highlighted_words(explain_page, aws):
    aws.endpoint_answers("sentiment-explanations", {"inputs": EXPLAINED}, explanation())

    app = submit(explain_page, EXPLAINED)

    assert app.metric[0].value == "POSITIVE"
    assert app.metric[0].delta == "70.0% confident"
    assert len(charts(app)) == 1
    assert app.selectbox[0].options == ["POSITIVE", "NEGATIVE"]
    shades = shading(app)
    assert shades["Great"] == (GREEN, 0.75)  # the strongest support gets the strongest shade
    assert shades["dull"] == (RED, 0.375)  # half as strong, against
    assert shades["plot"] == (GREEN, 0.0)
    highlighted = next(markdown.value for markdown in app.markdown if "<span" in markdown.value)
    assert re.sub(r"<[^>]+>", "", highlighted) == EXPLAINED  # reads exactly as typed


def test_explain_keeps_the_result_while_switching_the_label(explain_page, aws):
    aws.endpoint_answers("sentiment-explanations", {"inputs": EXPLAINED}, explanation())
    app = submit(explain_page, EXPLAINED)

    app.selectbox[0].select("NEGATIVE").run()  # no second request is queued: the result is reused

    assert shading(app)["Great"] == (RED, 0.75)
    assert app.caption[0].value.startswith("Green words support NEGATIVE")


def test_explain_reports_a_missing_endpoint(explain_page, aws):
    aws.endpoint_fails("ValidationException", 'Could not find endpoint "sentiment-explanations".')

    app = submit(explain_page, EXPLAINED)

    assert "sentiment-explanations" in app.error[0].value
    assert not app.metric


def test_highlighting_escapes_the_users_text():
    tokens = [backends.TokenAttribution("<b>", 0, 3, {"POSITIVE": 1.0})]

    html = ui.highlighted_text_html("<b> & more", tokens, "POSITIVE")

    assert "<b>" not in html
    assert "&lt;b&gt;</span> &amp; more" in html


# --- counterfactuals ------------------------------------------------------------------------------------------------

COUNTERFACTUAL_TEXT = "The movie was great."


@pytest.fixture
def counterfactual_page(monkeypatch):
    monkeypatch.setenv("COUNTERFACTUAL_LAMBDA", "text-counterfactuals")
    return open_app("app_pages/counterfactual.py")


def test_counterfactuals_are_listed_with_their_scores(counterfactual_page, aws):
    answer = {
        "statusCode": 200,
        "text": COUNTERFACTUAL_TEXT,
        "target_label": "POSITIVE",
        "label_scores": {"POSITIVE": 0.98, "NEGATIVE": 0.02},
        "masked_words": ["great"],
        "counterfactuals": [
            {
                "text": "The movie was terrible.",
                "replaced": "great",
                "replacement": "terrible",
                "target_score": 0.01,
                "score_change": -0.97,
                "predicted_label": "NEGATIVE",
                "flipped": True,
                "label_scores": {},
                "fill_score": 0.1,
            },
            {
                "text": "The movie was long.",
                "replaced": "great",
                "replacement": "long",
                "target_score": 0.6,
                "score_change": -0.38,
                "predicted_label": "POSITIVE",
                "flipped": False,
                "label_scores": {},
                "fill_score": 0.2,
            },
        ],
    }
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT, "target_label": "positive"}, answer)

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT, **{"Label to move away from": "positive"})

    assert app.metric[0].label == "POSITIVE score of your text"
    assert app.metric[0].value == "98.0%"
    assert len(charts(app)) == 1
    table = app.dataframe[0].value
    assert table["text"].tolist() == ["The movie was terrible.", "The movie was long."]
    assert table["edit"].tolist() == ["great → terrible", "great → long"]
    assert table["prediction"].tolist() == ["NEGATIVE", "POSITIVE"]


def test_without_a_label_the_function_picks_the_predicted_one(counterfactual_page, aws):
    answer = {
        "statusCode": 200,
        "text": COUNTERFACTUAL_TEXT,
        "target_label": "POSITIVE",
        "label_scores": {"POSITIVE": 0.9, "NEGATIVE": 0.1},
        "masked_words": [],
        "counterfactuals": [],
    }
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT}, answer)

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert "No word of this text supports POSITIVE" in app.info[0].value


@pytest.mark.parametrize(
    ("answer", "function_error"),
    [
        (
            {
                "statusCode": 503,
                "error": "backend_cold",
                "message": "SageMaker endpoint 'sentiment-unmasking' is busy.",
            },
            None,
        ),
        (
            {
                "errorMessage": "2026-01-01T00:00:00Z abc Task timed out after 9.00 seconds",
                "errorType": "Sandbox.Timedout",
            },
            "Unhandled",
        ),
    ],
)
def test_a_function_waiting_on_cold_endpoints_asks_to_try_again(counterfactual_page, aws, answer, function_error):
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT}, answer, function_error)

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert "waking up or busy" in app.warning[0].value
    assert not app.dataframe


def test_a_missing_function_gets_a_friendly_message(counterfactual_page, aws):
    aws.lambda_.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found: text-counterfactuals",
        http_status_code=404,
    )

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert "Lambda function 'text-counterfactuals' is not available" in app.error[0].value


def test_a_label_the_classifier_does_not_know_is_explained(counterfactual_page, aws):
    answer = {
        "statusCode": 400,
        "error": "bad_input",
        "message": "Unknown target_label 'happy'; the classifier's labels are POSITIVE, NEGATIVE.",
    }
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT, "target_label": "happy"}, answer)

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT, **{"Label to move away from": "happy"})

    assert "could not work with this input" in app.warning[0].value
    assert "POSITIVE, NEGATIVE" in app.code[0].value
