"""The OpenAPI 3.1 document of `pricing serve`, built from the package's JSON Schemas.

schemas/openapi.json is this document written out (tests/test_serve.py keeps
the two equal); the server sends the file.  The usage, invoice, export and
diagnostic schemas are embedded unchanged: each keeps its ``$id``, so its own
``#/$defs/…`` references still resolve inside it (JSON Schema 2020-12).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["document"]


def _schema(name: str) -> dict[str, Any]:
    text = resources.files("pricing_dsl").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Diagnostics"), "bad input: the diagnostics say what and where"),
    "401": _json(_ref("Diagnostics"), "missing or wrong bearer token (E702)"),
    "413": _json(_ref("Diagnostics"), "request body over the size limit (E701)"),
}


def _param(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


_CONTRACT = _param("contract", "plan or contract id (default: `contract` in the usage)")
_EXPLAIN = _param("explain", "include each line's explanation: true (default) or false")


def document() -> dict[str, Any]:
    """The OpenAPI document, as data."""
    usage_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("Usage")}},
    }
    invoice = _json(_ref("Invoice"), "the invoice")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pricing-dsl service",
            "version": "1",
            "description": (
                "Rating, invoices, quotes and checks over the ruleset `pricing serve` was "
                "started on. Every response carries the header `Pricing-Ruleset-Version`, the "
                "content hash of the ruleset that answered it. Numbers in requests are read "
                "exactly; money in responses is decimal strings. See docs/serve.md."
            ),
        },
        # The token is optional (`--token-file`): either no credentials or a bearer token.
        "security": [{}, {"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Usage": _schema("usage"),
                "Invoice": _schema("invoice"),
                "Export": _schema("export"),
                "Diagnostic": _schema("diagnostics"),
                "Diagnostics": {
                    "type": "object",
                    "required": ["diagnostics"],
                    "properties": {"diagnostics": {"type": "array", "items": _ref("Diagnostic")}},
                },
                "Check": {
                    "type": "object",
                    "required": ["ok", "diagnostics"],
                    "properties": {
                        "ok": {"type": "boolean", "description": "no errors"},
                        "diagnostics": {"type": "array", "items": _ref("Diagnostic")},
                    },
                },
                "QuoteRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["contract", "vary"],
                    "properties": {
                        "contract": {
                            "oneOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                            ]
                        },
                        "vary": {"type": "string", "examples": ["mau=0..100000"]},
                        "step": {"type": ["string", "number"]},
                        "fix": {"type": "object", "description": "usage keys held at a value"},
                    },
                },
                "Quote": {
                    "type": "object",
                    "required": ["vary", "fixed", "contracts"],
                    "properties": {
                        "vary": {"type": "string"},
                        "fixed": {"type": "object", "additionalProperties": {"type": "string"}},
                        "contracts": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["contract", "currency", "rows"],
                                "properties": {
                                    "contract": {"type": "string"},
                                    "currency": {"type": "string"},
                                    "rows": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["value", "lines", "total"],
                                            "properties": {
                                                "value": {"type": "string"},
                                                "lines": {
                                                    "type": "object",
                                                    "additionalProperties": {"type": "string"},
                                                },
                                                "total": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "BatchLine": {
                    "type": "object",
                    "required": ["line"],
                    "properties": {
                        "line": {"type": "integer", "description": "the input line, from 1"},
                        "invoice": _ref("Invoice"),
                        "diagnostics": {"type": "array", "items": _ref("Diagnostic")},
                    },
                },
            },
        },
        "paths": {
            "/v1/rate": {
                "post": {
                    "summary": "rate one period of usage (pricing rate)",
                    "parameters": [_CONTRACT, _EXPLAIN],
                    "requestBody": usage_body,
                    "responses": {"200": invoice, **_ERRORS},
                }
            },
            "/v1/invoice": {
                "post": {
                    "summary": "the invoice issued on a date (pricing invoice)",
                    "parameters": [
                        _CONTRACT,
                        _param("date", "issue date, the first of a month (YYYY-MM-01)", True),
                        _EXPLAIN,
                    ],
                    "requestBody": {
                        "required": False,
                        "description": "usage of the month before the issue date (default: none)",
                        "content": {"application/json": {"schema": _ref("Usage")}},
                    },
                    "responses": {"200": invoice, **_ERRORS},
                }
            },
            "/v1/quote": {
                "post": {
                    "summary": "lines and totals as one meter varies (pricing quote)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("QuoteRequest")}},
                    },
                    "responses": {"200": _json(_ref("Quote"), "the quote"), **_ERRORS},
                }
            },
            "/v1/rate/batch": {
                "post": {
                    "summary": "rate many usage records; one JSON line back per record",
                    "parameters": [
                        _param("contract", "contract for records that name none"),
                        _param("explain", "include explanations: false (default) or true"),
                    ],
                    "requestBody": {
                        "required": True,
                        "description": "JSON Lines: one usage object per line",
                        "content": {"application/x-ndjson": {"schema": _ref("Usage")}},
                    },
                    "responses": {
                        "200": {
                            "description": "JSON Lines, one per input record, in order; "
                            "a last line with E703 if the time limit stopped the batch",
                            "content": {"application/x-ndjson": {"schema": _ref("BatchLine")}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/check": {
                "post": {
                    "summary": "check ruleset text; nothing is read from or written to disk",
                    "parameters": [
                        _param("filename", "the name diagnostics give the text"),
                        _param("with", "`served`: check it together with the served files"),
                        _param("replaces", "with `with=served`: the served file it stands for"),
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "responses": {"200": _json(_ref("Check"), "the diagnostics"), **_ERRORS},
                }
            },
            "/v1/draft": {
                "post": {
                    "summary": "the playground's call: check a draft, rate and quote with it",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {"200": _json({"type": "object"}, "see docs/serve.md")},
                }
            },
            "/v1/contracts": {
                "get": {
                    "summary": "every plan and contract, resolved (pricing export)",
                    "responses": {"200": _json(_ref("Export"), "the export view")},
                }
            },
            "/v1/contracts/{id}": {
                "get": {
                    "summary": "one plan or contract, resolved (pricing export --contract)",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _json(_ref("Export"), "the export view"),
                        "404": _json(_ref("Diagnostics"), "no such plan or contract (E301)"),
                    },
                }
            },
            "/v1/sources": {
                "get": {
                    "summary": "the served files' text (as loaded) and meters, for the playground",
                    "responses": {"200": _json({"type": "object"}, "files and meters")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "the process answers",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, '{"ok": true}')},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "the ruleset served, and the outcome of the last reload",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "version and last reload")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
    }


if __name__ == "__main__":  # pragma: no cover - how schemas/openapi.json is written
    import sys

    sys.stdout.write(json.dumps(document(), indent=2, ensure_ascii=False) + "\n")
