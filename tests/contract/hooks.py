"""schemathesis hooks of the contract test (loaded by the contract venv through SCHEMATHESIS_HOOKS).

What the document cannot say, and the run would otherwise count against the API:

- An Idempotency-Key stands for one change. The fuzzer draws keys from the documented
  pattern and sends `0` with many bodies, which the API rightly refuses as a reused key
  (422 idempotency_key_reused). A valid key drawn is made unique per request (an invalid
  one is sent as drawn, so refusing bad keys is still tested).
- Values only the data decides: an `after` cursor the API never issued, a colour type or
  family the admins' lists (GET /vocabularies) do not hold, and an edit's `original`
  without the value of a field it sends (OpenAPI 3.0 cannot tie one property's presence to
  another's in a way schemathesis generates from) are refused with 422 naming that
  parameter alone (in a bulk change, `operations[i].fields.color_type`). Valid cases are
  sent without `after` and with no type or family, so
  that they test the rest; a "valid data rejected" failure that is still refused for one of
  these alone (its answer naming nothing else) is dropped. Any other status, field or
  failure fails the run.
"""

import json
import re
import uuid

import schemathesis
from schemathesis.core.parameters import ParameterLocation

IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_PATTERN = re.compile(r"[!-+\--~]{1,255}")
KEY_REUSED = "idempotency_key_reused"
VALID_DATA_REJECTED = "ST202"
VOCABULARY = {"color_type", "color_family"}
MISSING_ORIGINAL = "must give the value the edit started from of:"
# A bulk update's type or family, named by its place in the list of operations.
BULK_VOCABULARY = re.compile(r"operations\[\d+\]\.fields\.(color_type|color_family)")


def data_dependent(operation: str, fields: dict[str, str]) -> bool:
    """Tell whether a 422's fields name only values the data, not the document, decides."""
    if operation == "GET /paints":
        return set(fields) == {"after"}
    if operation == "POST /paints":
        return set(fields) <= VOCABULARY
    if operation == "POST /paints/bulk":
        return all(BULK_VOCABULARY.fullmatch(name) for name in fields)
    if operation == "PATCH /paints/{paint_id}":
        original = fields.get("original")
        return set(fields) - {"original"} <= VOCABULARY and (
            original is None or original.startswith(MISSING_ORIGINAL)
        )
    return False


@schemathesis.hook
def map_case(context, case):
    """Give a valid Idempotency-Key one request; keep data-decided values out of valid cases."""
    if case.meta is None:
        return case
    negative = case.meta.generation.mode.is_negative
    # A case changed is checked again; one that breaks a header rule must stay as drawn.
    if negative and case.meta.phase.data.parameter_location == ParameterLocation.HEADER:
        return case
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and KEY_PATTERN.fullmatch(key):
        case.headers[IDEMPOTENCY_KEY] = str(uuid.uuid4())
    if negative:
        return case
    if isinstance(case.query, dict):
        case.query.pop("after", None)
    if isinstance(case.body, dict):
        for field in VOCABULARY & set(case.body):
            case.body[field] = None
        for operation in _listed(case.body.get("operations")):
            for field in VOCABULARY & set(_mapping(operation.get("fields"))):
                operation["fields"][field] = None
    return case


def _listed(value):
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _mapping(value):
    return value if isinstance(value, dict) else {}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but a 422 for what only the data decides (see the module's doc)."""
    if failure.code != VALID_DATA_REJECTED or response.status_code != 422:
        return True
    try:
        error = json.loads(response.content)["error"]
        fields = error["fields"]
    except (ValueError, KeyError, TypeError):
        return True
    if error.get("code") == KEY_REUSED:
        return False
    return not (fields and data_dependent(case.operation.label, fields))
