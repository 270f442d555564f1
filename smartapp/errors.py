"""HTTP errors as FHIR OperationOutcome resources.

Anything a client sent that we cannot use gets a 4xx with an OperationOutcome naming the
problem in one line; an unexpected failure gets a 500 with no internals (logged server-side).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "incomplete",
    413: "too-costly",
    415: "not-supported",
}


def operation_outcome(status: int, text: str, code: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error" if status < 500 else "fatal",
            "code": code or ISSUE_CODES.get(status, "exception"),
            "diagnostics": text,
        }],
    }  # fmt: skip


def outcome_response(status: int, text: str, code: str | None = None) -> Response:
    response = jsonify(operation_outcome(status, text, code))
    response.status_code = status
    return response


class ClientError(Exception):
    """A request we refuse: carries the HTTP status and a one-line reason for the client."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ClientError)
    def _client_error(exc: ClientError) -> Response:
        return outcome_response(exc.status, exc.message, exc.code)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = outcome_response(status, exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return outcome_response(500, "internal error", "exception")
