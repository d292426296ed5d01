"""gunicorn settings for the SageMaker serving container (read by ./serve)."""

import os

# SageMaker sends /ping and /invocations to port 8080 of the container.
bind = "0.0.0.0:8080"
worker_class = "gthread"

# Every worker process loads its own copy of the model, so one worker with a few
# threads is the memory-friendly default for a serverless endpoint; torch runs
# its own thread pool inside each prediction. SAGEMAKER_MODEL_SERVER_WORKERS is
# the variable SageMaker's own serving containers use for the same knob.
workers = int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1"))
threads = int(os.environ.get("SERVER_THREADS", "4"))

# SageMaker gives up on an invocation after 60 s; a first request may include
# downloading the model, so let the worker live that long.
timeout = int(os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))
graceful_timeout = 10
keepalive = 75  # longer than SageMaker's idle connection reuse, avoids resets

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


def post_worker_init(worker):
    # Start loading the model as soon as the worker runs, so the first
    # invocation after a cold start waits for less of it.
    worker.wsgi.extensions["classifier"].warm_up_in_background()
