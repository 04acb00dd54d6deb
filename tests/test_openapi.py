"""The OpenAPI document at /api/v1/openapi.json tells the truth about the JSON API."""

import json
import re
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import validate as validate_document
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from studio.api.openapi import openapi_document
from studio.services.validation import MAX_INT, MAX_STOCK

PREFIX = "/api/v1"
# Where the registry keeps the document, so "#/components/..." resolves inside it.
DOCUMENT_URI = "https://studio.invalid/api/v1/openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
NOT_OPERATIONS = {"HEAD", "OPTIONS"}
TOO_LARGE = 2 * 1024 * 1024 + 1  # One byte over the default MAX_CONTENT_LENGTH.


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (METHOD, path template) of every operation the document describes."""
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ]


def pointer(*segments: Any) -> str:
    """Return the URI fragment of a JSON pointer to `segments`."""
    escaped = (str(segment).replace("~", "~0").replace("/", "~1") for segment in segments)
    return "".join("/" + quote(segment, safe="") for segment in escaped)


def query_value(raw: Any, schema: dict[str, Any]) -> Any:
    """Return a query argument as the type its schema describes, as the API reads it."""
    text = str(raw)
    if schema.get("type") == "integer" and re.fullmatch(r"\s*[-+]?\d+\s*", text):
        return int(text)
    return text


def ecma_pattern(validator, pattern, instance, schema):
    """Check `pattern` as ECMAScript reads it: `$` ends the text, not a last line break."""
    if validator.is_type(instance, "string") and not re.search(
        pattern.replace("$", r"\Z"), instance
    ):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


# The document's patterns are ECMAScript's, as OpenAPI says; Python's `$` also matches
# before a trailing "\n", so "Citadel\n" would pass for a text without control characters.
DocumentValidator = extend(OAS30Validator, {"pattern": ecma_pattern})


class Contract:
    """The served document, checking requests and responses against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource(contents=document, specification=DRAFT4)
        self.registry = Registry().with_resource(DOCUMENT_URI, resource)

    def operation(self, method: str, template: str) -> dict[str, Any]:
        item = self.document["paths"].get(template, {})
        assert method.lower() in item, f"{method} {template} is not in the document"
        return item[method.lower()]

    def validate(self, instance: Any, *segments: Any) -> None:
        """Validate `instance` against the schema found at `segments` in the document."""
        reference = {"$ref": f"{DOCUMENT_URI}#{pointer(*segments)}"}
        validate_instance(
            instance,
            reference,
            cls=DocumentValidator,
            registry=self.registry,
            format_checker=oas30_format_checker,
        )

    def check_response(self, response: Any, method: str, template: str) -> None:
        """Fail unless the response's status, headers and body are as documented."""
        responses = self.operation(method, template)["responses"]
        status = str(response.status_code)
        assert status in responses, (
            f"{method} {template} answered {status}, which the document does not list: "
            f"{response.get_data(as_text=True)[:500]}"
        )
        documented = responses[status]
        for header in documented.get("headers", {}):
            assert header in response.headers, f"{method} {template} {status} lacks {header}"
        content = documented.get("content")
        if content is None:
            assert response.get_data() == b"", f"{method} {template} {status} has a body"
            return
        assert response.mimetype in content, f"{method} {template} {status} is {response.mimetype}"
        segments = ("paths", template, method.lower(), "responses", status, "content")
        self.validate(response.get_json(), *segments, response.mimetype, "schema")

    def request_errors(
        self,
        method: str,
        template: str,
        *,
        json: Any = None,
        query: dict[str, Any] | None = None,
    ) -> list[str]:
        """Return what the document finds wrong with a request's body and query."""
        errors = []
        if json is not None:
            segments = ("paths", template, method.lower(), "requestBody", "content")
            errors += self._errors(json, *segments, "application/json", "schema")
        for name, raw in (query or {}).items():
            segments = self._query_parameter(method, template, name)
            if segments is None:
                errors.append(f"query parameter {name} is not documented")
                continue
            if raw == "" and self._at(segments[:-1]).get("allowEmptyValue"):
                continue
            schema = self._at(segments)
            errors += self._errors(query_value(raw, schema), *segments)
        return errors

    def _errors(self, instance: Any, *segments: Any) -> list[str]:
        try:
            self.validate(instance, *segments)
        except SchemaError as exc:
            return [f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
        return []

    def _query_parameter(self, method: str, template: str, name: str) -> tuple | None:
        for owner in (("paths", template, method.lower()), ("paths", template)):
            for index, parameter in enumerate(self._at(owner).get("parameters", [])):
                if parameter["in"] == "query" and parameter["name"] == name:
                    return (*owner, "parameters", index, "schema")
        return None

    def _at(self, segments: tuple) -> Any:
        node: Any = self.document
        for segment in segments:
            node = node[segment]
        return node


class CheckedApi:
    """The API client, checking every answer, and every accepted request, against the document."""

    def __init__(self, api: Any, contract: Contract) -> None:
        self.api, self.contract = api, contract

    def send(self, method: str, template: str, paint_id: int = 0, **kwargs: Any) -> Any:
        response = getattr(self.api, method.lower())(
            PREFIX + template.format(paint_id=paint_id), **kwargs
        )
        self.contract.check_response(response, method, template)
        if response.status_code < 300:
            problems = self.contract.request_errors(
                method, template, json=kwargs.get("json"), query=kwargs.get("query_string")
            )
            assert problems == [], f"the document refuses a request the API accepted: {problems}"
        return response


@pytest.fixture
def contract(api) -> Contract:
    return Contract(api.get(f"{PREFIX}/openapi.json").get_json())


@pytest.fixture
def checked(api, contract) -> CheckedApi:
    return CheckedApi(api, contract)


@pytest.fixture
def paint(make_paint):
    """A paint with a little stock, next to one whose colour code it could clash with."""
    make_paint(name="Mephiston Red", color_code="21-26")
    return make_paint(
        name="Abaddon Black",
        color_code="21-25",
        color_type="Base",
        color_family="Black",
        stock=3,
        price="4.55",
    )


NEW_PAINT = {
    "name": "Averland Sunset",
    "brand": "Citadel",
    "color_code": "21-01",
    "color_type": "Base",
    "color_family": "Yellow",
    "image_url": "https://example.com/averland.png",
    "stock": 6,
    "price": "4.55",
    "description": "A warm, dark yellow.",
    "color_preview": "#fdb825",
    "reorder_level": 3,
    "reorder_quantity": 12,
}


def test_the_served_document_is_valid_openapi_3(api, contract):
    response = api.get(f"{PREFIX}/openapi.json")
    validate_document(response.get_json())
    assert response.get_json()["openapi"].startswith("3.")
    contract.check_response(response, "GET", "/openapi.json")


@pytest.mark.parametrize(("method", "template"), operations(openapi_document()))
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic YWxpY2U6cHc="])
def test_every_operation_needs_a_token(app, contract, method, template, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    path = PREFIX + template.format(paint_id=1)
    response = app.test_client().open(path, method=method, headers=headers)
    assert response.status_code == 401
    contract.check_response(response, method, template)


def test_the_document_lists_exactly_the_api_routes(app, contract):
    routes = {
        (method, re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule).removeprefix(PREFIX))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(PREFIX + "/")
        for method in rule.methods - NOT_OPERATIONS
    }
    assert routes == set(operations(contract.document))


def test_the_life_of_a_paint_matches_the_document(checked):
    created = checked.send("POST", "/paints", json=NEW_PAINT)
    assert created.status_code == 201
    paint = created.get_json()
    assert created.headers["Location"] == f"{PREFIX}/paints/{paint['id']}"
    assert checked.send("GET", "/paints/{paint_id}", paint["id"]).get_json() == paint

    search = {"q": "Averland", "brand": "Citadel", "color_family": "Yellow", "sort": "-price"}
    found = checked.send("GET", "/paints", query_string={**search, "stock": "in_stock"})
    assert [item["id"] for item in found.get_json()["items"]] == [paint["id"]]

    sold = {"delta": -2, "reason": "Sold over the counter"}
    adjusted = checked.send("POST", "/paints/{paint_id}/stock", paint["id"], json=sold)
    assert adjusted.get_json()["paint"]["stock"] == 4
    too_many = {"delta": -5, "reason": "Sold"}
    refused = checked.send("POST", "/paints/{paint_id}/stock", paint["id"], json=too_many)
    assert refused.status_code == 409

    history = checked.send("GET", "/paints/{paint_id}/movements", paint["id"])
    assert [item["kind"] for item in history.get_json()["items"]] == ["adjustment", "initial"]

    # The adjustment moved the paint on to version 2, so an edit made on version 1 is stale.
    stale = checked.send("PATCH", "/paints/{paint_id}", paint["id"], json={"version": 1})
    assert stale.get_json()["error"]["current_version"] == 2
    edit = {"version": 2, "price": "5.10", "stock": 0, "color_code": None}
    edited = checked.send("PATCH", "/paints/{paint_id}", paint["id"], json=edit)
    assert (edited.get_json()["price"], edited.get_json()["version"]) == ("5.10", 3)

    stats = checked.send("GET", "/stats").get_json()
    assert (stats["paints"], stats["out_of_stock"]) == (1, 1)

    assert checked.send("DELETE", "/paints/{paint_id}", paint["id"]).status_code == 204
    assert checked.send("GET", "/paints/{paint_id}", paint["id"]).status_code == 404
    assert checked.send("GET", "/paints/{paint_id}/movements", paint["id"]).status_code == 404
    assert checked.send("GET", "/stats").get_json()["paints"] == 0


class Case(NamedTuple):
    method: str
    template: str
    status: int
    request: dict[str, Any]
    paint_id: str = "paint"


PAINT = "/paints/{paint_id}"
STOCK = "/paints/{paint_id}/stock"
MOVEMENTS = "/paints/{paint_id}/movements"
BULK = "/paints/bulk"
HISTORY = "/paints/{paint_id}/history"
BODY_OPERATIONS = [("POST", "/paints"), ("PATCH", PAINT), ("POST", STOCK), ("POST", BULK)]
# In a body, the test's paint (its id is known only when the test runs).
THE_PAINT = "{paint_id}"
JSON = "application/json"
BODY_FAULTS = [
    (400, {"data": '{"name": ', "content_type": JSON}),
    (400, {"data": "[1, 2]", "content_type": JSON}),
    (400, {"data": '{"stock": NaN}', "content_type": JSON}),
    (413, {"data": "x" * TOO_LARGE, "content_type": JSON}),
    (415, {"data": "name=Averland", "content_type": "application/x-www-form-urlencoded"}),
    (415, {"data": '{"name": "Averland"}', "content_type": "text/plain"}),
]
CASES = [
    Case("GET", "/paints", 200, {}),
    Case(
        "GET",
        "/paints",
        200,
        {
            "query_string": {
                "q": "abad",
                "brand": "Citadel",
                "color_family": "Black",
                "color_type": "Base",
                "stock": "low_stock",
                "sort": "-created_at",
                "page": 1,
                "per_page": 100,
            }
        },
    ),
    Case("GET", "/paints", 422, {"query_string": {"sort": "colour"}}),
    Case("GET", "/paints", 422, {"query_string": {"per_page": 1000}}),
    Case("GET", "/paints", 422, {"query_string": {"page": 0, "stock": "plenty"}}),
    Case("POST", "/paints", 201, {"json": NEW_PAINT}),
    Case("POST", "/paints", 201, {"json": {"name": "Plain", "brand": "Vallejo", "price": 3}}),
    Case("POST", "/paints", 422, {"json": {"brand": " ", "stock": -1, "id": 7}}),
    Case("POST", "/paints", 409, {"json": {**NEW_PAINT, "color_code": "21-25"}}),
    Case("GET", PAINT, 200, {}),
    Case("GET", PAINT, 404, {}, "missing"),
    Case("GET", PAINT, 404, {}, "out of range"),
    Case("PATCH", PAINT, 200, {"json": {"version": 1, "name": "Abaddon Black 2"}}),
    Case("PATCH", PAINT, 404, {"json": {"version": 1}}, "missing"),
    Case("PATCH", PAINT, 409, {"json": {"version": 7, "name": "Late"}}),
    Case("PATCH", PAINT, 409, {"json": {"version": 1, "color_code": "21-26"}}),
    Case("PATCH", PAINT, 422, {"json": {"name": "No version"}}),
    Case("PATCH", PAINT, 200, {"json": {"original": {"price": "4.55"}, "price": "4.95"}}),
    Case("PATCH", PAINT, 409, {"json": {"original": {"price": "1.00"}, "price": "4.95"}}),
    Case("PATCH", PAINT, 422, {"json": {"version": 1, "price": "4.555", "created_at": "now"}}),
    Case("DELETE", PAINT, 204, {}),
    Case("DELETE", PAINT, 404, {}, "missing"),
    Case("POST", STOCK, 201, {"json": {"delta": 12, "reason": "Delivery"}}),
    Case("POST", STOCK, 404, {"json": {"delta": 1, "reason": "Delivery"}}, "missing"),
    Case("POST", STOCK, 409, {"json": {"delta": -4, "reason": "Sold"}}),
    Case("POST", STOCK, 409, {"json": {"delta": MAX_STOCK, "reason": "Miscounted"}}),
    Case("POST", STOCK, 422, {"json": {"delta": 0, "reason": ""}}),
    Case("POST", STOCK, 422, {"json": {"delta": 1, "reason": "Found", "note": "x"}}),
    Case("GET", MOVEMENTS, 200, {"query_string": {"page": 1, "per_page": 1}}),
    Case("GET", MOVEMENTS, 404, {}, "missing"),
    Case("GET", MOVEMENTS, 422, {"query_string": {"per_page": 0}}),
    Case(
        "POST",
        BULK,
        200,
        {
            "json": {
                "operations": [
                    {"op": "adjust_stock", "paint_id": THE_PAINT, "delta": 2, "reason": "In"},
                    {"op": "update", "paint_id": THE_PAINT, "fields": {"reorder_level": 3}},
                    {"op": "delete", "paint_id": THE_PAINT},
                ]
            }
        },
    ),
    Case(
        "POST",
        BULK,
        409,
        {
            "json": {
                "operations": [
                    {"op": "update", "paint_id": THE_PAINT, "fields": {"color_code": "21-26"}}
                ]
            }
        },
    ),
    Case("POST", BULK, 409, {"json": {"operations": [{"op": "delete", "paint_id": MAX_INT}]}}),
    Case("POST", BULK, 422, {"json": {"operations": [{"op": "delete", "paint_id": 0}]}}),
    Case("GET", HISTORY, 200, {"query_string": {"kind": "create", "per_page": 1}}),
    Case("GET", HISTORY, 404, {}, "missing"),
    Case("GET", HISTORY, 400, {"query_string": {"since": "yesterday"}}),
    Case("GET", "/activity", 200, {"query_string": {"since": "2000-01-01", "user": "alice"}}),
    Case("GET", "/activity", 400, {"query_string": {"kind": "sale"}}),
    Case("GET", "/stats", 200, {}),
    Case("GET", "/reorder", 200, {}),
    Case("GET", "/reorder", 200, {"query_string": {"brand": "Citadel", "page": 1, "per_page": 5}}),
    Case("GET", "/reorder", 422, {"query_string": {"brand": "x" * 101, "per_page": 0}}),
    Case("GET", "/vocabularies", 200, {}),
    Case("GET", "/openapi.json", 200, {}),
    *(
        Case(method, template, status, request)
        for method, template in BODY_OPERATIONS
        for status, request in BODY_FAULTS
    ),
]
PAINT_IDS = {"missing": MAX_INT, "out of range": MAX_INT + 1}


def case_id(case: Case) -> str:
    detail = "-".join(sorted(case.request.get("json", case.request.get("query_string", {}))))
    return f"{case.method} {case.template} {case.status} {case.paint_id} {detail}".strip()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_answer_matches_the_document(checked, paint, case):
    paint_id = PAINT_IDS.get(case.paint_id, paint.id)
    request = json.loads(json.dumps(case.request).replace(f'"{THE_PAINT}"', str(paint_id)))
    response = checked.send(case.method, case.template, paint_id, **request)
    assert response.status_code == case.status, response.get_data(as_text=True)[:500]


def test_every_documented_answer_is_exercised():
    document = openapi_document()
    documented = {
        (method, template, status)
        for method, template in operations(document)
        for status in document["paths"][template][method.lower()]["responses"]
    }
    exercised = {(case.method, case.template, str(case.status)) for case in CASES}
    exercised |= {(method, template, "401") for method, template in operations(document)}
    # test_every_operation_answers_503_while_the_database_is_away covers these, and
    # test_every_operation_refuses_what_the_server_refuses_before_the_api the others.
    for status in ("503", *REFUSED_BEFORE_THE_API):
        exercised |= {(method, template, status) for method, template in operations(document)}
    assert documented == exercised


SHOP = "shop.example"
# What the server refuses before any view: an unknown Host, plain HTTP under FORCE_HTTPS, a
# URL over the limit.
REFUSED_BEFORE_THE_API = {
    "400": {"base_url": "https://evil.example"},
    "403": {"base_url": f"http://{SHOP}"},
    "414": {"base_url": f"https://{SHOP}", "query_string": {"q": "a" * 7000}},
}


@pytest.mark.parametrize(("method", "template"), operations(openapi_document()))
def test_every_operation_refuses_what_the_server_refuses_before_the_api(
    extra_apps, method, template
):
    client = extra_apps(FORCE_HTTPS=True, ALLOWED_HOSTS=(SHOP,)).test_client()
    contract = Contract(openapi_document())
    body = {"json": {"name": "x", "brand": "y"}} if method in ("POST", "PATCH") else {}
    for status, request in REFUSED_BEFORE_THE_API.items():
        response = client.open(
            PREFIX + template.format(paint_id=1),
            method=method,
            headers={"Authorization": "Bearer stu_any-token-is-refused-before-it-is-read"},
            **body,
            **request,
        )
        assert response.status_code == int(status), (status, response.get_data(as_text=True))
        contract.check_response(response, method, template)


# Requests near the edges of the rules: the document must accept exactly those the API accepts.
EDGE_REQUESTS = [
    ("POST", "/paints", {"name": "A", "brand": "B"}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": 0.1}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": "12.5"}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": "99999999.99"}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "color_code": None, "stock": 0}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "stock": MAX_STOCK}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "color_preview": "#a1b2c3"}, True),
    ("POST", "/paints", {"name": "A"}, False),
    ("POST", "/paints", {"name": "", "brand": "B"}, False),
    ("POST", "/paints", {"name": "   ", "brand": "B"}, False),
    ("POST", "/paints", {"name": None, "brand": "B"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "colour": "red"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "id": 5}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "stock": -1}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "stock": MAX_STOCK + 1}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "stock": "5"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "stock": 1.5}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": "1.999"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": "-1"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": 100000000}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": None}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "color_preview": "red"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "image_url": "ftp://x/y.png"}, False),
    ("PATCH", PAINT, {"version": 1}, True),
    ("PATCH", PAINT, {"version": 1, "stock": 0, "description": None}, True),
    ("PATCH", PAINT, {}, False),
    ("PATCH", PAINT, {"version": 0}, False),
    ("PATCH", PAINT, {"version": 1, "name": ""}, False),
    ("PATCH", PAINT, {"version": 1, "updated_at": "2024-01-01T00:00:00Z"}, False),
    ("PATCH", PAINT, {"original": {"stock": 3, "description": None}, "stock": 5}, True),
    ("PATCH", PAINT, {"original": {}}, True),
    ("PATCH", PAINT, {"original": {"price": "4.55"}, "version": 1, "price": "5"}, False),
    ("PATCH", PAINT, {"original": "4.55", "price": "5"}, False),
    ("PATCH", PAINT, {"original": {"colour": "red"}}, False),
    ("PATCH", PAINT, {"original": {"stock": -1}, "stock": 5}, False),
    # A field sent back as it started is not written, but still has to be a value it takes.
    ("PATCH", PAINT, {"original": {"stock": 0}, "stock": False}, False),
    ("PATCH", PAINT, {"original": {"name": 1}, "name": 1}, False),
    ("PATCH", PAINT, {"original": {"name": "Abaddon Black"}, "name": "Abaddon Black"}, True),
    ("PATCH", PAINT, {"original": {"stock": {}}}, False),
    ("PATCH", PAINT, {"original": {"name": "A\x01", "stock": 3}, "stock": 4}, False),
    ("POST", STOCK, {"delta": -3, "reason": "Sold"}, True),
    ("POST", STOCK, {"delta": 1, "reason": "x" * 200}, True),
    ("POST", STOCK, {"delta": 1}, False),
    ("POST", STOCK, {"delta": 1, "reason": "  "}, False),
    ("POST", STOCK, {"delta": 1, "reason": "x" * 201}, False),
    ("POST", STOCK, {"delta": 1.5, "reason": "Sold"}, False),
    ("POST", STOCK, {"delta": MAX_STOCK + 1, "reason": "Sold"}, False),
    # Empty means none for every optional text, the image and the colour too.
    ("POST", "/paints", {"name": "A", "brand": "B", "image_url": "", "color_preview": ""}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "image_url": " ", "color_preview": " "}, True),
    (
        "POST",
        "/paints",
        {"name": "A", "brand": "B", "image_url": "HTTPS://EXAMPLE.COM/a.png"},
        True,
    ),
    ("POST", "/paints", {"name": "A", "brand": "B", "image_url": "http://[x"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "image_url": "http://a.b/\x01"}, False),
    # Control characters anywhere, also where trimming would have taken them off; lengths
    # count what is sent.
    ("POST", "/paints", {"name": "A\x01B", "brand": "B"}, False),
    ("POST", "/paints", {"name": "A\t", "brand": "B"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "color_code": "\x85"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "description": "One\r\n\tTwo"}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "description": "One\x0bTwo"}, False),
    ("POST", "/paints", {"name": " " * 5 + "x" * 200, "brand": "B"}, False),
    ("POST", STOCK, {"delta": 1, "reason": "Sold\x1f"}, False),
    # Prices in a string: plain digits 0-9, at most eight before and two after the point.
    *(
        ("POST", "/paints", {"name": "A", "brand": "B", "price": price}, False)
        for price in ["1e3", "1_000", "\u0661\u0662", "12\u0660", " 4.50", "-0", "000000001", "4."]
    ),
    *(
        ("PATCH", PAINT, {"version": 1, "price": price}, False)
        for price in ["1e3", "1_000", "\u0661\u0662", "-0"]
    ),
    ("PATCH", PAINT, {"original": {"price": "1e3"}, "price": "5"}, False),
    ("PATCH", PAINT, {"version": 1, "stock": "1e3"}, False),
    ("POST", STOCK, {"delta": "1e3", "reason": "Found"}, False),
    ("POST", STOCK, {"delta": "\u0661", "reason": "Found"}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": "00000001.5"}, True),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": 67210401.07034123}, False),
    ("POST", "/paints", {"name": "A", "brand": "B", "price": 1e3}, True),
    ("PATCH", PAINT, {"version": MAX_INT + 1}, False),
]
EDGE_QUERIES = [
    ("/paints", {"page": 10_000_000, "per_page": 1}, True),
    ("/paints", {"sort": "-stock", "stock": "out_of_stock"}, True),
    ("/paints", {"q": "x" * 200, "brand": "x" * 100, "color_type": "x" * 50}, True),
    ("/paints", {"page": 10_000_001}, False),
    ("/paints", {"page": "first"}, False),
    ("/paints", {"per_page": 101}, False),
    ("/paints", {"sort": "+name"}, False),
    ("/paints", {"q": "x" * 201}, False),
    ("/paints", {"brand": "x" * 101}, False),
    ("/paints", {"color_family": "x" * 51}, False),
    (MOVEMENTS, {"page": 2, "per_page": 100}, True),
    (MOVEMENTS, {"page": -1}, False),
    # An empty parameter is taken as left out, as an HTML form sends it.
    ("/paints", {"sort": "", "per_page": "", "page": "", "stock": "", "q": "", "after": ""}, True),
    (MOVEMENTS, {"page": "", "per_page": ""}, True),
    ("/paints", {"q": "a\x01"}, False),
    ("/paints", {"brand": "Citadel\n"}, False),
]


def assert_agreement(api, contract, method, template, paint_id, accepted, **request):
    response = getattr(api, method.lower())(PREFIX + template.format(paint_id=paint_id), **request)
    if accepted:
        assert response.status_code < 300, response.get_json()
    else:
        assert response.status_code == 422, response.get_json()
    problems = contract.request_errors(
        method, template, json=request.get("json"), query=request.get("query_string")
    )
    assert bool(problems) != accepted, problems or "the document accepts what the API refuses"


@pytest.mark.parametrize(("method", "template", "body", "accepted"), EDGE_REQUESTS)
def test_request_schemas_accept_what_the_api_accepts(
    api, contract, paint, method, template, body, accepted
):
    assert_agreement(api, contract, method, template, paint.id, accepted, json=body)


@pytest.mark.parametrize(("template", "query", "accepted"), EDGE_QUERIES)
def test_query_parameters_accept_what_the_api_accepts(
    api, contract, paint, template, query, accepted
):
    assert_agreement(api, contract, "GET", template, paint.id, accepted, query_string=query)
