"""gunicorn settings for the SageMaker serving container (read by ./serve)."""

import logging
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

# SageMaker abandons an invocation after 60 s, so nothing is gained by waiting longer.
timeout = int(os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))
graceful_timeout = 10

# gunicorn's runtime control socket is not needed here, and it would be
# created under $HOME, which a SageMaker container may not be able to write.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# The app's own log lines (model loading) go to stderr too, next to gunicorn's,
# where SageMaker collects them into CloudWatch.
logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")


def post_worker_init(worker):
    # Start loading the model as soon as the worker runs, so the first
    # invocation after a cold start waits for less of it.
    worker.wsgi.extensions["classifier"].warm_up_in_background()
