"""The Streamlit app through AppTest, with the AWS clients stubbed by botocore's Stubber.

Each test runs the real entry point (Home.py) and navigates like a user, so
page registration, forms, rendering and error messages are all exercised.
The Stubber checks every request against the AWS API model and the exact
parameters we expect, so no test can reach AWS. Failures are checked from
both sides: what a visitor sees on the page, and what the operator finds in
the app's log.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

import backends
import ui

APP = Path(__file__).resolve().parents[1]
HOME = str(APP / "Home.py")
VARIABLES = (
    "SENTIMENT_UNMASKING_MODEL",
    "SENTIMENT_EXPLANATIONS_MODEL",
    "COUNTERFACTUAL_LAMBDA",
    "APP_TITLE",
    "MASK_TOKEN",
)


def body(value) -> StreamingBody:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def metadata(request_id: str) -> dict:
    """The ResponseMetadata botocore adds to every successful reply."""
    return {"RequestId": request_id, "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}


class StubbedAws:
    """Real boto3 clients whose answers the test queues up."""

    def __init__(self):
        options = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self.clients = {service: boto3.client(service, **options) for service in ("sagemaker-runtime", "lambda")}
        self.sagemaker = Stubber(self.clients["sagemaker-runtime"])
        self.lambda_ = Stubber(self.clients["lambda"])

    def endpoint_answers(self, endpoint, request, answer, content_type="application/json", request_id=None):
        response = {"Body": body(answer), "ContentType": content_type}
        if request_id:
            response["ResponseMetadata"] = metadata(request_id)
        self.sagemaker.add_response(
            "invoke_endpoint",
            response,
            {
                "EndpointName": endpoint,
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps(request),
            },
        )

    def endpoint_fails(self, code, message, status=None, request_id=None, **modeled_fields):
        if status is None:  # the HTTP status the service model gives this error (ModelError: 424), else 400
            shape = self.clients["sagemaker-runtime"].meta.service_model.shape_for_error_code(code)
            status = shape.metadata["error"]["httpStatusCode"] if shape else 400
        self.sagemaker.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            response_meta={"RequestId": request_id} if request_id else None,
            modeled_fields=modeled_fields or None,
        )

    def function_answers(self, function, event, answer, function_error=None, request_id=None):
        response = {"StatusCode": 200, "Payload": body(answer)}
        if function_error:
            response["FunctionError"] = function_error
        if request_id:
            response["ResponseMetadata"] = metadata(request_id)
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


def page_text(app: AppTest) -> str:
    """Everything the page sends to the browser: every element of the main area and the sidebar, as text."""
    return "\n".join(str(node.proto) for area in (app.main, app.sidebar) for node in area if node.proto is not None)


@pytest.fixture
def operator_log(caplog):
    """The app's log lines as (level, message), as they reach stdout and so CloudWatch."""
    caplog.set_level(logging.INFO, logger="app")

    def lines() -> list[tuple[str, str]]:
        return [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("app.")]

    return lines


def log_field(line: str, key: str) -> str:
    """One `key=value` field of an app log line; quoted values are JSON strings."""
    start = line.index(f" {key}=") + len(key) + 2
    if line[start] == '"':
        return json.JSONDecoder().raw_decode(line, start)[0]
    return line[start:].split(" ", 1)[0]


def assert_no_operator_talk(app: AppTest) -> None:
    """Visitors are never told to run a command, nor shown an error code or a stack trace."""
    text = page_text(app)
    for operator_word in ("provision", "Traceback", "stackTrace", "Exception", "RequestId", "<html", "<!DOCTYPE"):
        assert operator_word not in text, f"{operator_word!r} shown to visitors"


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


def test_without_any_backend_visitors_hear_nothing_is_available_and_the_log_says_what_to_set(operator_log):
    app = open_app()

    assert [title.value for title in app.title] == ["Model playground"]
    assert page_links(app) == []
    assert app.info[0].value == "No models are available right now. Please come back later."
    assert "SENTIMENT_EXPLANATIONS_MODEL" not in page_text(app)
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert level == "WARNING"
    for variable in ("SENTIMENT_EXPLANATIONS_MODEL", "SENTIMENT_UNMASKING_MODEL", "COUNTERFACTUAL_LAMBDA"):
        assert variable in line


def test_a_page_run_without_its_variable_says_the_model_is_not_available(operator_log):
    # Home.py never registers such a page; this is the page script started on its own.
    app = AppTest.from_file(str(APP / "app_pages" / "explain.py"), default_timeout=10).run()

    assert not app.exception, app.exception
    assert app.info[0].value == "The model behind this page is not available right now. Please come back later."
    assert not app.text_area  # the page stopped before its form
    assert_no_operator_talk(app)
    assert operator_log() == [
        (
            "WARNING",
            "Explain a prediction: the environment variable SENTIMENT_EXPLANATIONS_MODEL is not set, "
            "so the page has no model to call",
        )
    ]


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


def test_a_cold_endpoint_gets_a_friendly_message(fill_mask_page, aws, operator_log):
    aws.endpoint_fails(
        "ModelError",
        'Received server error (0) from primary with message "Your invocation timed out while waiting for a response from container primary."',
        OriginalStatusCode=0,
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert "waking up or busy" in app.warning[0].value
    assert "sentiment-unmasking" in app.warning[0].value
    assert not app.error
    assert "timed out" not in page_text(app)  # the technical detail is for the log
    [(level, line)] = operator_log()
    assert level == "WARNING"
    assert line.startswith("SageMaker endpoint 'sentiment-unmasking' failed (cold): code=ModelError status=424 ")
    assert "model_status=0" in line and "timed out while waiting" in line


def test_a_throttled_endpoint_is_treated_as_busy(fill_mask_page, aws):
    aws.endpoint_fails("ThrottlingException", "Rate exceeded")

    assert "try again shortly" in submit(fill_mask_page, "The film was <mask>.").warning[0].value


def test_a_missing_endpoint_gets_a_friendly_message(fill_mask_page, aws, operator_log):
    aws.endpoint_fails(
        "ValidationError",
        "Endpoint sentiment-unmasking of account 123456789012 not found.",
        request_id="4c1c3b1e-0f5e-4c2a-9d1e-6f1f0d8a9b10",
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert app.error[0].value == "The model 'sentiment-unmasking' is not available right now. Please try again later."
    assert_no_operator_talk(app)
    assert "123456789012" not in page_text(app)
    assert operator_log() == [
        (
            "ERROR",
            "SageMaker endpoint 'sentiment-unmasking' failed (missing): code=ValidationError status=400 "
            "request_id=4c1c3b1e-0f5e-4c2a-9d1e-6f1f0d8a9b10 "
            'detail="Endpoint sentiment-unmasking of account 123456789012 not found."',
        )
    ]


def test_the_app_log_is_written_to_stdout_one_line_per_failure(fill_mask_page, aws, capsys):
    # stdout is what the awslogs driver ships to the app's CloudWatch log group.
    aws.endpoint_fails("ValidationError", "Endpoint sentiment-unmasking of account 123456789012 not found.")
    capsys.readouterr()

    submit(fill_mask_page, "The film was <mask>.").run()  # and rerun: the handler is installed once

    [line] = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR app\.backends "
        r"SageMaker endpoint 'sentiment-unmasking' failed \(missing\): code=ValidationError status=400 .*",
        line,
    )


@pytest.fixture
def deployed_config(monkeypatch):
    """The app's own .streamlit/config.toml, which Streamlit reads from the working directory, as in the image."""
    monkeypatch.chdir(APP)
    streamlit_config.get_config_options(force_reparse=True)
    yield
    monkeypatch.undo()
    streamlit_config.get_config_options(force_reparse=True)


def test_a_bug_in_a_page_shows_no_exception_or_stack_trace(deployed_config, fill_mask_page, monkeypatch):
    def broken(*_):
        raise RuntimeError("secret internals in /app/backends.py")

    monkeypatch.setattr(backends, "fill_mask", broken)

    fill_mask_page.text_area[0].input("The film was <mask>.")
    app = fill_mask_page.button[0].click().run()

    [shown] = app.exception
    assert shown.message.startswith("This app has encountered an error.")
    assert not shown.stack_trace
    assert "secret internals" not in page_text(app)
    assert "RuntimeError" not in page_text(app)


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


def test_the_reason_the_model_server_gives_is_shown_without_its_wrapping(fill_mask_page, aws):
    # SageMaker's framework containers wrap a model's error in {"code", "type", "message"}.
    wrapped = json.dumps(
        {"code": 400, "type": "InternalServerException", "message": "No mask_token (<mask>) found"}, indent=2
    )
    aws.endpoint_fails(
        "ModelError", "Received client error (400) from primary", OriginalStatusCode=400, OriginalMessage=wrapped
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert app.code[0].value == "No mask_token (<mask>) found"
    assert_no_operator_talk(app)


def test_a_backend_error_is_logged_with_its_request_id_and_not_shown(fill_mask_page, aws, operator_log):
    aws.endpoint_fails(
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/app-task-role/abc is not authorized to perform: "
        "sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint/sentiment-unmasking",
        request_id="9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b",
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert app.error[0].value == "The model 'sentiment-unmasking' is not available right now. Please try again later."
    assert not app.code and not app.expander  # no details for visitors
    assert "not authorized" not in page_text(app)
    assert "arn:aws" not in page_text(app)
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert level == "ERROR"
    assert line.startswith(
        "SageMaker endpoint 'sentiment-unmasking' failed (failed): code=AccessDeniedException status=400 "
        "request_id=9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b "
        'detail="User: arn:aws:sts::123456789012:assumed-role/app-task-role/abc is not authorized'
    )


CONTAINER_TRACEBACK = 'Traceback (most recent call last):\n  File "handler.py", line 9\nRuntimeError: worker died'


def test_a_crashed_model_is_logged_with_its_log_stream(fill_mask_page, aws, operator_log):
    log_stream = (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/sentiment-unmasking"
        ":log-stream:AllTraffic/abc"
    )
    aws.endpoint_fails(
        "ModelError",
        "Received server error (500) from primary with message \"worker died\".",
        request_id="5e6f7a8b-aaaa-4bbb-8ccc-0123456789ab",
        OriginalStatusCode=500,
        OriginalMessage=CONTAINER_TRACEBACK,
        LogStreamArn=log_stream,
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert "is not available right now" in app.error[0].value
    assert "worker died" not in page_text(app)
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert level == "ERROR"
    assert "code=ModelError status=424 request_id=5e6f7a8b-aaaa-4bbb-8ccc-0123456789ab model_status=500 " in line
    assert f"log_stream={log_stream} " in line
    # The container's stack trace stays on one log line, so CloudWatch keeps it in one event.
    assert log_field(line, "body") == CONTAINER_TRACEBACK
    assert "\n" not in line


NOT_JSON = "worker crashed: **CUDA** out of memory _retry_ <b>later</b>\n" + "x" * 2950  # 3,010 characters


def test_a_reply_that_is_not_json_is_shown_as_plain_text_truncated(fill_mask_page, aws, operator_log):
    aws.endpoint_answers(
        "sentiment-unmasking",
        {"inputs": "The film was <mask>.", "parameters": {"top_k": 5}},
        NOT_JSON.encode(),
        content_type="text/plain",
        request_id="0f0e0d0c-1111-4222-8333-444455556666",
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert app.error[0].value == (
        "The model 'sentiment-unmasking' is not available right now: it sent a reply that is not JSON."
    )
    [expander] = app.expander
    assert expander.label == "Reply (not JSON)"
    [reply] = app.code
    assert reply.language == "plaintext"  # displayed verbatim: neither Markdown nor HTML is rendered
    assert reply.value == NOT_JSON[:500] + "… [2510 more characters]"
    assert not any("CUDA" in markdown.value for markdown in app.markdown)
    assert "CUDA" not in app.error[0].value
    assert not charts(app) and not app.dataframe
    [(level, line)] = operator_log()
    assert level == "ERROR"
    assert line.startswith(
        "SageMaker endpoint 'sentiment-unmasking' failed (failed): code=NotJSON status=200 "
        "request_id=0f0e0d0c-1111-4222-8333-444455556666 content_type=text/plain "
    )
    assert log_field(line, "body") == NOT_JSON[:2000] + "… [1010 more characters]"  # the log keeps 2,000
    assert "\n" not in line  # one CloudWatch event


def test_a_function_reply_that_is_not_json_is_shown_as_such(counterfactual_page, aws, operator_log):
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT}, b"OK", request_id="r-1")

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert "it sent a reply that is not JSON" in app.error[0].value
    assert app.code[0].value == "OK"
    [(level, line)] = operator_log()
    assert line == (
        "Lambda function 'text-counterfactuals' failed (failed): code=NotJSON status=200 request_id=r-1 "
        'detail="replied with something that is not JSON" body=OK'
    )


ERROR_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><p>The proxy server received an invalid response.</p></body></html>\n"
)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html; charset=utf-8",
        "application/json",  # mislabelled: the page is recognised by how it starts
    ],
)
def test_an_html_error_page_from_an_endpoint_is_logged_never_shown(fill_mask_page, aws, operator_log, content_type):
    aws.endpoint_answers(
        "sentiment-unmasking",
        {"inputs": "The film was <mask>.", "parameters": {"top_k": 5}},
        ERROR_PAGE.encode(),
        content_type=content_type,
        request_id="7d7d7d7d-2222-4333-8444-555566667777",
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert app.error[0].value == "The model 'sentiment-unmasking' is not available right now. Please try again later."
    assert "Bad Gateway" not in page_text(app)
    assert not app.code and not app.expander
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert level == "ERROR"
    assert "code=HTMLReply status=200 request_id=7d7d7d7d-2222-4333-8444-555566667777 " in line
    assert log_field(line, "body") == ERROR_PAGE


def test_an_html_page_in_a_rejection_is_not_shown(fill_mask_page, aws, operator_log):
    aws.endpoint_fails(
        "ModelError", "Received client error (404) from primary", OriginalStatusCode=404, OriginalMessage=ERROR_PAGE
    )

    app = submit(fill_mask_page, "The film was <mask>.")

    assert "could not work with this input" in app.warning[0].value
    assert not app.code and not app.expander
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert level == "INFO"
    assert log_field(line, "body") == ERROR_PAGE


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

    assert "The model 'text-counterfactuals' is not available right now" in app.error[0].value
    assert_no_operator_talk(app)


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


def test_an_html_error_page_from_a_function_is_logged_never_shown(counterfactual_page, aws, operator_log):
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT}, ERROR_PAGE.encode(), request_id="r-2")

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert app.error[0].value == "The model 'text-counterfactuals' is not available right now. Please try again later."
    assert "Bad Gateway" not in page_text(app)
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert "code=HTMLReply status=200 request_id=r-2 " in line


def test_a_crashed_function_is_logged_with_its_error_and_stack_trace_and_not_shown(
    counterfactual_page, aws, operator_log
):
    error_object = {
        "errorMessage": "division by zero",
        "errorType": "ZeroDivisionError",
        "requestId": "c0ffee00-1234-4abc-8def-0123456789ab",
        "stackTrace": ['  File "/var/task/app.py", line 42, in handler\n    return 1 / 0\n'],
    }
    aws.function_answers(
        "text-counterfactuals",
        {"text": COUNTERFACTUAL_TEXT},
        error_object,
        function_error="Unhandled",
        request_id="c0ffee00-1234-4abc-8def-0123456789ab",
    )

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert app.error[0].value == "The model 'text-counterfactuals' is not available right now. Please try again later."
    assert not app.code and not app.expander and not app.dataframe
    for internal in ("division by zero", "ZeroDivisionError", "app.py"):
        assert internal not in page_text(app)
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert level == "ERROR"
    assert line.startswith(
        "Lambda function 'text-counterfactuals' failed (failed): code=ZeroDivisionError status=200 "
        "request_id=c0ffee00-1234-4abc-8def-0123456789ab function_error=Unhandled detail=\"division by zero\" "
    )
    assert json.loads(log_field(line, "body")) == error_object  # with its stack trace


def test_a_function_answer_of_the_wrong_shape_is_logged_with_its_body(counterfactual_page, aws, operator_log):
    aws.function_answers("text-counterfactuals", {"text": COUNTERFACTUAL_TEXT}, {"statusCode": 200, "result": []})

    app = submit(counterfactual_page, COUNTERFACTUAL_TEXT)

    assert "is not available right now" in app.error[0].value
    assert_no_operator_talk(app)
    [(level, line)] = operator_log()
    assert "code=UnexpectedReply " in line
    assert json.loads(log_field(line, "body")) == {"statusCode": 200, "result": []}
