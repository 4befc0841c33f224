"""The OpenAPI 3 description of the JSON API, served at `GET /api/v1/openapi.json`.

Written by hand beside the routes of `gateway.routes.api`; a test checks that every `/api/v1` route
of the app is described, and schemathesis drives the API from this document.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from casestore.states import CaseStatus, Channel

STATUSES = [s.value for s in CaseStatus]
CHANNELS = [c.value for c in Channel]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _named_list(summary: str, description: str) -> dict[str, Any]:
    """A GET answering a JSON array of Named (a configured code and its Spanish name)."""
    schema = {"type": "array", "items": {"$ref": "#/components/schemas/Named"}}
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": {
                    "description": description,
                    "content": {"application/json": {"schema": schema}},
                },
                "401": UNAUTHORIZED,
            },
        }
    }


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


UNAUTHORIZED = _error("No bearer token, or an unknown or revoked one.")
TRACKING = {
    "name": "tracking_number",
    "in": "path",
    "required": True,
    "description": "The case's tracking number; spaces and hyphens are ignored.",
    "schema": {"type": "string"},
}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "A short reason."}},
    },
    "Event": {
        "type": "object",
        "required": ["kind", "at", "actor", "text"],
        "properties": {
            "kind": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string"},
            "text": {"type": "string"},
            "from_status": {"type": ["string", "null"]},
            "to_status": {"type": ["string", "null"]},
        },
    },
    "Survey": {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
            "comment": {"type": ["string", "null"]},
            "channel": {"type": "string"},
            "due_at": NULLABLE_TIME,
            "asked_at": NULLABLE_TIME,
            "answered_at": NULLABLE_TIME,
            "low_score": {"type": "boolean"},
        },
    },
    "Case": {
        "type": "object",
        "required": [
            "tracking_number",
            "status",
            "channel",
            "category",
            "department",
            "priority",
            "created_at",
            "updated_at",
            "citizen",
            "events",
            "survey",
        ],
        "properties": {
            "tracking_number": {"type": "string", "pattern": "^[0-9]{9,12}$"},
            "status": {"type": "string", "enum": STATUSES},
            "channel": {"type": "string", "enum": CHANNELS},
            "category": {"type": "string"},
            "department": {"type": "string"},
            "priority": {"type": "string"},
            "urgent": {"type": "boolean"},
            "description": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "first_response_at": NULLABLE_TIME,
            "resolved_at": NULLABLE_TIME,
            "closed_at": NULLABLE_TIME,
            "citizen": {
                "type": "object",
                "properties": {
                    "phone": {"type": ["string", "null"]},
                    "name": {"type": ["string", "null"]},
                    "national_id": {"type": ["string", "null"]},
                },
            },
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "survey": {"oneOf": [{"$ref": "#/components/schemas/Survey"}, {"type": "null"}]},
        },
    },
    "CasePage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page."},
        },
    },
    "StatusChange": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": STATUSES},
            "note": {"type": "string", "description": "Shown on the case's timeline."},
        },
    },
    "Named": {
        "type": "object",
        "required": ["code", "name"],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "names": {"type": "object", "additionalProperties": {"type": "string"}},
            "department": {"type": "string"},
            "urgent": {"type": "boolean"},
        },
    },
    "Scores": {
        "type": "object",
        "required": ["by", "items"],
        "properties": {
            "by": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    },
    "FollowUps": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"type": "object"}}},
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of `/api/v1`."""
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ventanilla JSON API",
            "version": "1",
            "description": "Cases, status changes, departments, categories and survey scores. "
            "An operator's token sees the cases of that operator's departments only.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `ventanilla token create USER`.",
                }
            },
            "schemas": SCHEMAS,
        },
        "security": secured,
        "paths": {
            "/api/v1/cases": {
                "get": {
                    "summary": "Cases the token's operator may see, newest first",
                    "parameters": [
                        _query("phone", "A phone in any format (an unencoded + is a space)."),
                        _query("status", "One status.", enum=STATUSES),
                        _query("department", "A department code."),
                        _query("q", "Words in the description or timeline."),
                        _query("cursor", "The `next` of the previous page."),
                        _query("limit", "Page size, 1 to 200 (default 50).", pattern="^[0-9]+$"),
                    ],
                    "responses": {
                        "200": _json("One page of cases.", "CasePage"),
                        "400": _error("A bad phone, status, limit or cursor."),
                        "401": UNAUTHORIZED,
                    },
                }
            },
            "/api/v1/cases/{tracking_number}": {
                "get": {
                    "summary": "One case with its timeline and survey",
                    "parameters": [TRACKING],
                    "responses": {
                        "200": _json("The case.", "Case"),
                        "401": UNAUTHORIZED,
                        "404": _error("No such case, or one of another department."),
                    },
                }
            },
            "/api/v1/cases/{tracking_number}/status": {
                "post": {
                    "summary": "Change a case's status, with an optional note",
                    "parameters": [TRACKING],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/StatusChange"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("The case after the change.", "Case"),
                        "400": _error("Not JSON, an unknown status, or a note not a string."),
                        "401": UNAUTHORIZED,
                        "404": _error("No such case, or one of another department."),
                        "409": _error("A transition the status table does not allow."),
                        "413": _error("A body over 64 KiB."),
                    },
                }
            },
            "/api/v1/departments": _named_list("The configured departments", "Departments."),
            "/api/v1/categories": _named_list(
                "The configured categories, each with its department", "Categories."
            ),
            "/api/v1/surveys/scores": {
                "get": {
                    "summary": "Satisfaction (CSAT, mean, response rate) by a dimension",
                    "parameters": [
                        _query(
                            "by",
                            "Grouping (default department).",
                            enum=["department", "category", "channel", "operator", "month"],
                        ),
                        _query("from", "RFC 3339 start time.", format="date-time"),
                        _query("to", "RFC 3339 end time.", format="date-time"),
                    ],
                    "responses": {
                        "200": _json("Scores.", "Scores"),
                        "400": _error("An unknown grouping or a bad time."),
                        "401": UNAUTHORIZED,
                    },
                }
            },
            "/api/v1/surveys/follow-ups": {
                "get": {
                    "summary": "Low scores waiting for a supervisor's follow-up, oldest first",
                    "responses": {
                        "200": _json("Follow-ups.", "FollowUps"),
                        "401": UNAUTHORIZED,
                        "403": _error("Supervisors and admins only."),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document."}},
                }
            },
        },
    }


async def openapi_view(request: Request) -> Response:
    return JSONResponse(document())


routes = [Route("/api/v1/openapi.json", openapi_view, methods=["GET"])]
