"""The app of one worker process of ``lookalike serve --workers N``.

uvicorn starts each worker by importing an app factory, so the settings travel in the environment variable
``LOOKALIKE_SERVE_SETTINGS`` (JSON of :func:`lookalike.server.app.create_app`'s keyword arguments), set by
:func:`lookalike.server.serve`. Every worker reads the same dataset file (read-only, short connections) and has
its own queue of embedding work.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from lookalike.server.app import create_app

ENV = "LOOKALIKE_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    kwargs = json.loads(os.environ[ENV])
    dataset = kwargs.pop("dataset_path")
    return create_app(dataset, **kwargs)
