"""The OpenAPI 3 description of the JSON API; tests check responses against it."""

from functools import cache
from typing import Any

from ..models import HISTORY_KINDS, MOVEMENT_KINDS, VOCABULARY_KINDS
from ..services.bulk import MAX_OPERATIONS
from ..services.history import PAINT_FIELDS
from ..services.listing import MAX_PAGE, MAX_PER_PAGE, SORT_COLUMNS, STOCK_STATUSES
from ..services.reorder import PER_PAGE as REORDER_PER_PAGE
from ..services.validation import (
    CONTROL_CHARS,
    CONTROL_CHARS_MULTILINE,
    MAX_INT,
    MAX_PRICE,
    MAX_PRICE_DIGITS,
    MAX_STOCK,
    SPACES,
)

NULLABLE_STRING = {"type": "string", "nullable": True}
TIMESTAMP = {"type": "string", "format": "date-time"}
PRICE = {"type": "string", "pattern": r"^[0-9]{1,8}\.[0-9]{2}$", "example": "12.99"}
# Text is refused with control characters in it (Unicode's Cc; a multi-line text may hold
# tabs and line breaks); white space (\s) around it is trimmed, and blank text counts as
# missing, so a required text needs something besides spaces. Lengths count what is sent.
# The character classes are validation's own, so that document and API cannot drift apart.
CONTROL = CONTROL_CHARS.pattern.removeprefix("[").removesuffix("]")
MULTILINE_CONTROL = CONTROL_CHARS_MULTILINE.pattern.removeprefix("[").removesuffix("]")
# \s without the control characters among it (tab, line breaks), which text may not hold.
SPACE = "[" + "".join(rf"\u{ord(c):04x}" for c in SPACES if not CONTROL_CHARS.match(c)) + "]"
TEXT = {"type": "string", "pattern": rf"^[^{CONTROL}]*$"}
MULTILINE_TEXT = {"type": "string", "pattern": rf"^[^{MULTILINE_CONTROL}]*$"}
REQUIRED_TEXT = {
    "type": "string",
    "minLength": 1,
    "pattern": rf"^[^{CONTROL}]*[^\s{CONTROL}][^{CONTROL}]*$",
}
# An http(s) address with a host (the scheme in any case); empty or blank for none.
URL_CHAR = rf"[^\s{CONTROL}]"
HOST = rf"[^\s/?#\[\]{CONTROL}]"
HTTP_URL = {
    "type": "string",
    "pattern": rf"^{SPACE}*(?:[Hh][Tt][Tt][Pp][Ss]?://{HOST}+(?:[/?#]{URL_CHAR}*)?)?{SPACE}*$",
    "description": "An http:// or https:// address with a host name; empty for none.",
}
COLOR = {
    "type": "string",
    "pattern": rf"^{SPACE}*(?:#[0-9A-Fa-f]{{6}})?{SPACE}*$",
    "description": "A colour written #RRGGBB (saved in upper case); empty for none.",
}
# A query parameter sent empty (`?sort=`) is taken as left out, as HTML forms send them.
EMPTY_IS_DEFAULT = {"allowEmptyValue": True}


# The type and colour family come from lists the admins keep (GET /vocabularies).
LISTED_VALUE = {
    **TEXT,
    "maxLength": 50,
    "nullable": True,
    "description": "One of the values GET /vocabularies lists for this field, in any case "
    "and spacing; it is saved in the list's spelling. Others are refused (422).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "pagination"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "pagination": _ref("Pagination"),
        },
    }


def _paint_input(required: list[str], **extra: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {**REQUIRED_TEXT, "maxLength": 200},
            "brand": {**REQUIRED_TEXT, "maxLength": 100},
            "color_code": {**TEXT, "maxLength": 50, "nullable": True},
            "color_type": LISTED_VALUE,
            "color_family": LISTED_VALUE,
            "image_url": {**HTTP_URL, "maxLength": 500, "nullable": True},
            "stock": {"type": "integer", "minimum": 0, "maximum": MAX_STOCK},
            "price": {
                "oneOf": [
                    {
                        "type": "string",
                        "pattern": rf"^[0-9]{{1,{MAX_PRICE_DIGITS}}}(\.[0-9]{{1,2}})?$",
                        "example": "12.99",
                    },
                    {
                        "type": "number",
                        "minimum": 0,
                        "maximum": float(MAX_PRICE),
                        "multipleOf": 0.01,
                    },
                ],
                "description": "A decimal with at most two places, as a string of plain digits "
                "0-9 with an optional `.` (no sign, exponent or spaces) or as a number.",
            },
            "description": {**MULTILINE_TEXT, "maxLength": 5000, "nullable": True},
            "color_preview": {**COLOR, "nullable": True},
            "reorder_level": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_STOCK,
                "description": "The paint is low, and on the reorder list, at or below this "
                "stock; a new paint sent without one gets LOW_STOCK_THRESHOLD.",
            },
            "reorder_quantity": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_STOCK,
                "nullable": True,
                "description": "How many to order when the paint is low; null: enough to "
                "bring the stock back above the reorder level.",
            },
            **extra,
        },
    }
    if required:
        schema["required"] = required
    return schema


STOCK_ADJUSTMENT_PROPERTIES: dict[str, Any] = {
    "delta": {
        "type": "integer",
        "minimum": -MAX_STOCK,
        "maximum": MAX_STOCK,
        "not": {"enum": [0]},
    },
    "reason": {**REQUIRED_TEXT, "maxLength": 200},
}
# A bulk update's fields: any of the paint's, but stock (which an adjustment changes).
BULK_FIELDS = _paint_input([])
BULK_FIELDS["properties"] = {
    name: schema for name, schema in BULK_FIELDS["properties"].items() if name != "stock"
}

SCHEMAS: dict[str, Any] = {
    "Paint": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "name",
            "brand",
            "color_code",
            "color_type",
            "color_family",
            "image_url",
            "stock",
            "price",
            "description",
            "color_preview",
            "reorder_level",
            "reorder_quantity",
            "created_at",
            "updated_at",
            "version",
        ],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "brand": {"type": "string"},
            "color_code": NULLABLE_STRING,
            "color_type": NULLABLE_STRING,
            "color_family": NULLABLE_STRING,
            "image_url": NULLABLE_STRING,
            "stock": {"type": "integer", "minimum": 0},
            "price": PRICE,
            "description": NULLABLE_STRING,
            "color_preview": {"type": "string", "pattern": "^#[0-9A-F]{6}$", "nullable": True},
            "reorder_level": {"type": "integer", "minimum": 0},
            "reorder_quantity": {"type": "integer", "minimum": 1, "nullable": True},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "version": {"type": "integer", "minimum": 1},
        },
    },
    "PaintCreate": _paint_input(["name", "brand"]),
    "PaintUpdate": {
        # One object rather than allOf: additionalProperties in one branch would refuse `version`.
        **_paint_input(
            [],
            version={
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_INT,
                "description": "The version the edit was made on; any change since, a stock "
                "movement included, refuses it (409 version_conflict).",
            },
            original={
                "type": "object",
                "additionalProperties": False,
                "properties": _paint_input([])["properties"],
                "description": "Instead of `version`: the value each sent field had when the "
                "edit began; a field sent without its value here is refused (422). Only the "
                "sent fields whose value differs from it are written, and the edit is refused "
                "(409 edit_conflict) only if one of them was changed since to another value; "
                "for stock, any movement since is a conflict.",
            },
        ),
        "oneOf": [{"required": ["version"]}, {"required": ["original"]}],
        "description": "Any subset of the paint's fields, plus what the edit was made on: "
        "`version` or `original`. Setting stock records a correction movement.",
    },
    "StockAdjustment": {
        "type": "object",
        "additionalProperties": False,
        "required": ["delta", "reason"],
        "properties": STOCK_ADJUSTMENT_PROPERTIES,
    },
    "Movement": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "paint_id",
            "delta",
            "stock_after",
            "kind",
            "reason",
            "user",
            "created_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "paint_id": {"type": "integer"},
            "delta": {"type": "integer"},
            "stock_after": {"type": "integer", "minimum": 0},
            "kind": {"type": "string", "enum": list(MOVEMENT_KINDS)},
            "reason": NULLABLE_STRING,
            "user": NULLABLE_STRING,
            "created_at": TIMESTAMP,
        },
    },
    "AdjustmentResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["paint", "movement"],
        "properties": {"paint": _ref("Paint"), "movement": _ref("Movement")},
    },
    "BulkChange": {
        "type": "object",
        "additionalProperties": False,
        "required": ["operations"],
        "properties": {
            "operations": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_OPERATIONS,
                "items": {
                    "oneOf": [
                        _ref("BulkAdjustStock"),
                        _ref("BulkUpdate"),
                        _ref("BulkDelete"),
                    ]
                },
            }
        },
        "description": f"At most {MAX_OPERATIONS:,} operations, applied in order, all or "
        "none. A bad one changes nothing and is named in `fields` as `operations[i].field`, "
        "with every other bad one: 422 for a bad field, 409 for what the paints as they are "
        "refuse (an unknown paint, a version that is not the paint's, stock going below 0).",
    },
    "BulkAdjustStock": {
        "type": "object",
        "additionalProperties": False,
        "required": ["op", "paint_id", "delta", "reason"],
        "properties": {
            "op": {"type": "string", "enum": ["adjust_stock"]},
            "paint_id": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
            **STOCK_ADJUSTMENT_PROPERTIES,
        },
    },
    "BulkUpdate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["op", "paint_id", "fields"],
        "properties": {
            "op": {"type": "string", "enum": ["update"]},
            "paint_id": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
            "fields": {**BULK_FIELDS, "minProperties": 1},
            "version": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_INT,
                "description": "When given, the paint must be at this version.",
            },
        },
        "description": "Set some fields of a paint (not stock: adjust_stock records why).",
    },
    "BulkDelete": {
        "type": "object",
        "additionalProperties": False,
        "required": ["op", "paint_id"],
        "properties": {
            "op": {"type": "string", "enum": ["delete"]},
            "paint_id": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        },
    },
    "BulkResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["applied", "results"],
        "properties": {
            "applied": {"type": "integer", "minimum": 1},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["op", "paint_id"],
                    "properties": {
                        "op": {"type": "string", "enum": ["adjust_stock", "update", "delete"]},
                        "paint_id": {"type": "integer"},
                        "paint": _ref("Paint"),
                        "movement": _ref("Movement"),
                    },
                },
            },
        },
    },
    "Pagination": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "page",
            "per_page",
            "total",
            "pages",
            "has_next",
            "next_cursor",
            "total_is_estimate",
        ],
        "properties": {
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": {"type": "integer", "minimum": 0},
            "pages": {"type": "integer", "minimum": 1},
            "has_next": {"type": "boolean"},
            "next_cursor": {
                "type": "string",
                "nullable": True,
                "description": "Pass as `after` (with the same filters) for the next page: "
                "it is found through the sort index, as fast on page 20,000 as on page 1.",
            },
            "total_is_estimate": {
                "type": "boolean",
                "description": "True when more than 10,000 paints match on PostgreSQL: the "
                "total is then the planner's estimate rather than a count.",
            },
        },
    },
    "PaintPage": _page_of("Paint"),
    "ReorderLine": {
        "type": "object",
        "additionalProperties": False,
        "required": ["paint", "suggested_quantity"],
        "properties": {
            "paint": _ref("Paint"),
            "suggested_quantity": {
                "type": "integer",
                "minimum": 1,
                "description": "The paint's reorder_quantity, or else enough to bring its "
                "stock back above its reorder_level (reorder_level - stock + 1).",
            },
        },
    },
    "ReorderList": {
        "type": "object",
        "required": ["items", "pagination", "brands"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref("ReorderLine")},
            "pagination": _ref("Pagination"),
            "brands": {
                "type": "array",
                "description": "Each brand (supplier) with paints to order, by name: how many "
                "paints and the suggested units in all.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["brand", "paints", "units"],
                    "properties": {
                        "brand": {"type": "string"},
                        "paints": {"type": "integer", "minimum": 1},
                        "units": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
    "MovementPage": _page_of("Movement"),
    "HistoryEntry": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "created_at",
            "kind",
            "user",
            "user_id",
            "token",
            "paint",
            "changes",
            "note",
        ],
        "properties": {
            "id": {"type": "integer"},
            "created_at": TIMESTAMP,
            "kind": {
                "type": "string",
                "enum": list(HISTORY_KINDS),
                "description": "create, edit, delete, import (a CSV file or demo data), stock "
                "(an adjustment), or rename and merge of a type or colour family (one entry "
                "for the shop, `paint` null, however many paints it changed).",
            },
            "user": {
                **NULLABLE_STRING,
                "description": "The admin's name as it was; null for the command line.",
            },
            "user_id": {"type": "integer", "nullable": True},
            "token": {
                **NULLABLE_STRING,
                "description": "The name of the API token the change came through; null for "
                "the admin pages.",
            },
            "paint": {
                "type": "object",
                "nullable": True,
                "additionalProperties": False,
                "required": ["id", "brand", "name", "color_code"],
                "description": "The paint as it was named at the change (it may be deleted since).",
                "properties": {
                    "id": {"type": "integer"},
                    "brand": NULLABLE_STRING,
                    "name": NULLABLE_STRING,
                    "color_code": NULLABLE_STRING,
                },
            },
            "changes": {
                "type": "object",
                "description": "Each changed field with its value before and after (null: not "
                'set; prices as strings such as "4.50"). A rename names color_type or '
                "color_family.",
                "additionalProperties": False,
                "properties": {
                    name: {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["old", "new"],
                        "properties": {"old": {"nullable": True}, "new": {"nullable": True}},
                    }
                    for name in PAINT_FIELDS
                },
            },
            "note": {
                **NULLABLE_STRING,
                "description": "The stock change's reason, the import's file, or how many "
                "paints a rename changed.",
            },
        },
    },
    "HistoryPage": _page_of("HistoryEntry"),
    "Breakdown": {
        "type": "object",
        "required": ["paints", "units"],
        "properties": {
            "brand": {"type": "string"},
            "color_family": NULLABLE_STRING,
            "paints": {"type": "integer"},
            "units": {"type": "integer"},
        },
    },
    "Stats": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "paints",
            "units",
            "value",
            "currency",
            "in_stock",
            "low_stock",
            "out_of_stock",
            "low_stock_threshold",
            "by_brand",
            "by_color_family",
        ],
        "properties": {
            "paints": {"type": "integer"},
            "units": {"type": "integer"},
            "value": {"type": "string", "pattern": r"^\d+\.\d{2}$"},
            "currency": {
                "type": "string",
                "description": "The currency of `value` and of the paints' prices, as the "
                "CURRENCY setting names it (an ISO 4217 code such as EUR, or a symbol).",
            },
            "in_stock": {"type": "integer"},
            "low_stock": {"type": "integer"},
            "out_of_stock": {"type": "integer"},
            "low_stock_threshold": {
                "type": "integer",
                "description": "The reorder level a new paint gets (LOW_STOCK_THRESHOLD). Each "
                "paint is low at or below its own reorder_level: `low_stock` counts the paints "
                "in stock at or below it, `in_stock` those above it, `out_of_stock` stock 0.",
            },
            "by_brand": {"type": "array", "items": _ref("Breakdown")},
            "by_color_family": {"type": "array", "items": _ref("Breakdown")},
        },
    },
    "Vocabularies": {
        "type": "object",
        "additionalProperties": False,
        "required": list(VOCABULARY_KINDS),
        "properties": {
            kind: {"type": "array", "items": {"type": "string", "maxLength": 50}}
            for kind in VOCABULARY_KINDS
        },
        "description": "The values a paint's color_type and color_family may take, each list "
        "in its canonical spellings; admins keep them on the Types & families page.",
    },
    "Error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Each bad field with what is wrong with it.",
                    },
                    "current_version": {"type": "integer"},
                    "current_stock": {"type": "integer"},
                    "conflicts": {
                        "type": "object",
                        "description": "edit_conflict: each clashing field's value when the "
                        "edit began (`original`) and now (`current`).",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["original", "current"],
                            "properties": {
                                "original": {"nullable": True},
                                "current": {"nullable": True},
                            },
                        },
                    },
                },
            }
        },
    },
}

PAINT_ID = {
    "name": "paint_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
PAGE_PARAMETERS = [
    {
        "name": "page",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    },
    {
        "name": "per_page",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 20},
    },
]
SORTS = [*SORT_COLUMNS, *(f"-{column}" for column in SORT_COLUMNS)]
LIST_PARAMETERS = [
    *PAGE_PARAMETERS,
    {
        "name": "q",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {**TEXT, "maxLength": 200},
        "description": (
            "Search: every word must be found, in any case and with or without accents. A word"
            " of 3 or more letters or digits matches anywhere in the name, brand, colour code or"
            " description (a fragment of a code such as 000099 or CIT-0000 too); a shorter one"
            " matches the start of a word. Hyphens, dots and other signs between"
            " letters match any one character: dark-bone finds Dark Bone and Dark-Bone."
        ),
    },
    *(
        {"name": name, "in": "query", **EMPTY_IS_DEFAULT, "schema": {**TEXT, "maxLength": length}}
        for name, length in (("brand", 100), ("color_family", 50), ("color_type", 50))
    ),
    {
        "name": "stock",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "string", "enum": list(STOCK_STATUSES)},
    },
    {
        "name": "sort",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "string", "enum": SORTS, "default": "name"},
    },
    {
        "name": "after",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "string", "maxLength": 1000},
        "description": "The `next_cursor` of the previous page; `page` is then only a label.",
    },
]
COMMON_ERRORS = {
    "400": _error(
        "The request's Host is not one this site answers to (`ALLOWED_HOSTS`), or its chunked "
        "body is malformed."
    ),
    "401": {
        **_error("No valid API token."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": _error("Sent over plain HTTP to a server that answers over HTTPS only (`FORCE_HTTPS`)."),
    "414": _error("The URL is longer than the server accepts (6,144 characters)."),
    "503": {
        **_error(
            "The database is unavailable (down, restarting, locked or too slow): code "
            "`unavailable`, nothing was changed. Code `outcome_unknown`: the connection was "
            "lost while a write was being saved and whether it was is not known; repeat it "
            "with the same Idempotency-Key to find out. Try again after `Retry-After` seconds."
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    },
}
HISTORY_PARAMETERS = [
    *PAGE_PARAMETERS,
    {
        "name": "user",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {**TEXT, "maxLength": 80},
        "description": "Only the changes of the admin with this name (through any of their "
        "tokens too).",
    },
    {
        "name": "kind",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "string", "enum": list(HISTORY_KINDS)},
    },
    *(
        {
            "name": name,
            "in": "query",
            **EMPTY_IS_DEFAULT,
            "schema": {"type": "string", "format": "date"},
            "description": description,
        }
        for name, description in (
            ("since", "Changes on or after this day (UTC), written YYYY-MM-DD."),
            ("until", "Changes on or before this day (UTC), written YYYY-MM-DD."),
        )
    ),
    {
        "name": "after",
        "in": "query",
        **EMPTY_IS_DEFAULT,
        "schema": {"type": "string", "maxLength": 200},
        "description": "The `next_cursor` of the previous page (with the same filters); "
        "`page` is then only a label.",
    },
]
HISTORY_ERRORS = {
    "400": _error(
        "A query parameter has a bad value (each is named in `fields`), or the request's Host "
        "is not one this site answers to (`ALLOWED_HOSTS`)."
    ),
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-+\--~]+$"},
    "description": "Any unique string (a UUID, say). A repeat of this request with the same "
    "key and body within 24 hours changes nothing and gets the first answer again, marked "
    "`Idempotent-Replayed: true`; the same key with another body (byte for byte) gets 422 "
    "(`idempotency_key_reused`). Makes retrying after a lost answer safe.",
}
BODY_ERRORS = {
    "400": _error(
        "The body is not valid JSON, or not an object; its chunked encoding is malformed; or "
        "the request's Host is not one this site answers to (`ALLOWED_HOSTS`)."
    ),
    "413": _error("The body is larger than the server accepts."),
    "415": _error("The body is not sent as application/json."),
    "422": _error("Valid JSON with invalid or unknown fields; each is named in `fields`."),
}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


PATHS: dict[str, Any] = {
    "/paints": {
        "get": {
            "operationId": "list_paints",
            "summary": "List, search, filter and sort paints.",
            "parameters": LIST_PARAMETERS,
            "responses": {
                "200": _json(_ref("PaintPage"), "A page of paints."),
                "422": _error("A query parameter has a bad value."),
                **COMMON_ERRORS,
            },
        },
        "post": {
            "operationId": "create_paint",
            "summary": "Create a paint; opening stock is recorded as a movement.",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": _body("PaintCreate"),
            "responses": {
                "201": {
                    **_json(_ref("Paint"), "The new paint."),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "409": _error("Another paint of this brand has this colour code."),
                **BODY_ERRORS,
                **COMMON_ERRORS,
            },
        },
    },
    "/paints/bulk": {
        "post": {
            "operationId": "bulk_change",
            "summary": "Adjust stock, set fields or delete, for many paints at once: all or none.",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": _body("BulkChange"),
            "responses": {
                "200": _json(_ref("BulkResult"), "Every operation applied; each one's outcome."),
                "409": _error(
                    "The paints as they are refuse an operation (an unknown or already deleted "
                    "paint, a version that is not the paint's, stock leaving its bounds at "
                    "that point of the list), each named in `fields` as `operations[i].field`; "
                    "or a new colour code is used by another paint of its brand."
                ),
                **BODY_ERRORS,
                **COMMON_ERRORS,
            },
        },
    },
    "/paints/{paint_id}": {
        "parameters": [PAINT_ID],
        "get": {
            "operationId": "get_paint",
            "summary": "Get one paint.",
            "responses": {
                "200": _json(_ref("Paint"), "The paint."),
                "404": _error("No such paint."),
                **COMMON_ERRORS,
            },
        },
        "patch": {
            "operationId": "update_paint",
            "summary": "Change some fields of a paint, made on a known version or known values.",
            "requestBody": _body("PaintUpdate"),
            "responses": {
                "200": _json(_ref("Paint"), "The changed paint."),
                "404": _error("No such paint."),
                "409": _error(
                    "The paint changed since `version` (`version_conflict`; `current_version` "
                    "says what it is now), a field sent with `original` was changed since by "
                    "someone else (`edit_conflict`; `conflicts` names each with its values), "
                    "or another paint of this brand has the new colour code."
                ),
                **BODY_ERRORS,
                **COMMON_ERRORS,
            },
        },
        "delete": {
            "operationId": "delete_paint",
            "summary": "Delete a paint and its stock history.",
            "responses": {
                "204": {"description": "Deleted."},
                "404": _error("No such paint."),
                **COMMON_ERRORS,
            },
        },
    },
    "/paints/{paint_id}/stock": {
        "parameters": [PAINT_ID],
        "post": {
            "operationId": "adjust_stock",
            "summary": "Add to or take from the stock, atomically, with a reason.",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": _body("StockAdjustment"),
            "responses": {
                "201": _json(
                    _ref("AdjustmentResult"), "The paint after the change and the movement."
                ),
                "404": _error("No such paint."),
                "409": _error(
                    f"The change would take stock below 0 or above {MAX_STOCK}; "
                    "`current_stock` says what it is; nothing changed."
                ),
                **BODY_ERRORS,
                **COMMON_ERRORS,
            },
        },
    },
    "/paints/{paint_id}/movements": {
        "parameters": [PAINT_ID],
        "get": {
            "operationId": "list_movements",
            "summary": "The paint's stock history, newest first.",
            "parameters": PAGE_PARAMETERS,
            "responses": {
                "200": _json(_ref("MovementPage"), "A page of movements."),
                "404": _error("No such paint."),
                "422": _error("A query parameter has a bad value."),
                **COMMON_ERRORS,
            },
        },
    },
    "/paints/{paint_id}/history": {
        "parameters": [PAINT_ID],
        "get": {
            "operationId": "paint_history",
            "summary": "The paint's history, newest first: every change with who made it, "
            "when, and each field's old and new value. A deleted paint keeps its history.",
            "parameters": HISTORY_PARAMETERS,
            "responses": {
                "200": _json(_ref("HistoryPage"), "A page of entries."),
                "404": _error("No such paint, and no history of one."),
                **COMMON_ERRORS,
                **HISTORY_ERRORS,
            },
        },
    },
    "/activity": {
        "get": {
            "operationId": "list_activity",
            "summary": "Every change in the shop, newest first, by admin, kind and day.",
            "parameters": HISTORY_PARAMETERS,
            "responses": {
                "200": _json(_ref("HistoryPage"), "A page of entries."),
                **COMMON_ERRORS,
                **HISTORY_ERRORS,
            },
        },
    },
    "/stats": {
        "get": {
            "operationId": "get_stats",
            "summary": "Counts, units and value of the stock, overall, per brand and per family.",
            "responses": {"200": _json(_ref("Stats"), "The figures."), **COMMON_ERRORS},
        }
    },
    "/reorder": {
        "get": {
            "operationId": "reorder_list",
            "summary": "The paints at or below their reorder level, by brand, with what to order.",
            "description": "Out-of-stock paints included; ordered by brand, name and id. "
            "`brand` picks one brand (supplier), given exactly as the paints spell it.",
            "parameters": [
                {
                    "name": "brand",
                    "in": "query",
                    **EMPTY_IS_DEFAULT,
                    "schema": {**TEXT, "maxLength": 100},
                },
                PAGE_PARAMETERS[0],
                {
                    **PAGE_PARAMETERS[1],
                    "schema": {**PAGE_PARAMETERS[1]["schema"], "default": REORDER_PER_PAGE},
                },
            ],
            "responses": {
                "200": _json(_ref("ReorderList"), "A page of the reorder list."),
                "422": _error("A query parameter has a bad value."),
                **COMMON_ERRORS,
            },
        }
    },
    "/vocabularies": {
        "get": {
            "operationId": "list_vocabularies",
            "summary": "The allowed values of color_type and color_family.",
            "responses": {
                "200": _json(_ref("Vocabularies"), "Each list, ordered by name."),
                **COMMON_ERRORS,
            },
        },
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["openapi", "info", "paths"]},
                    "The OpenAPI document.",
                ),
                **COMMON_ERRORS,
            },
        }
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document of /api/v1."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "studio paint inventory API",
            "version": "1.0.0",
            "description": "Every route needs 'Authorization: Bearer <token>' "
            "(flask --app wsgi create-token USERNAME). Errors share one shape: "
            '{"error": {"code", "message", "fields"}}. When the database is unavailable '
            "every route answers 503 with Retry-After; creating writes accept an "
            "Idempotency-Key so that a retry is safe.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
