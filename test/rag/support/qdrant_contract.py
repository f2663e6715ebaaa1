"""Stand-in Qdrant for the QdrantStore contract tests (no Qdrant server can run on this machine).

Every request body is validated against Qdrant's published request models (qdrant-client's
`http.models`, generated from Qdrant's OpenAPI schema, with extra fields forbidden), the API key is
checked, and valid requests are carried out by qdrant-client's local mode (its in-process engine with
sparse vectors, the IDF modifier and RRF fusion), so answers have Qdrant's shapes and semantics.
Requests that break the contract get a 422 and are listed at GET /__violations.
"""

import json
import logging
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from pydantic import TypeAdapter, ValidationError
from qdrant_client import QdrantClient
from qdrant_client.http import models as m

logging.disable(logging.WARNING)  # local mode warns that payload indexes are no-ops
API_KEY = sys.argv[1]
client = QdrantClient(location=":memory:")
violations = []


def envelope(result):
    return {"result": result, "status": "ok", "time": 0.0}


def dump(value):
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value


def create_collection(name, body, query):
    request = m.CreateCollection.model_validate(body)
    client.create_collection(name, vectors_config=request.vectors, sparse_vectors_config=request.sparse_vectors)
    return True


def create_index(name, body, query):
    request = m.CreateFieldIndex.model_validate(body)
    client.create_payload_index(name, field_name=request.field_name, field_schema=request.field_schema)
    return {"operation_id": 0, "status": "completed"}


def upsert(name, body, query):
    request = TypeAdapter(m.PointInsertOperations).validate_python(body)
    if not isinstance(request, m.PointsList):
        raise ValueError("diatonic sends PointsList upserts")
    return dump(client.upsert(name, points=request.points, wait=query.get("wait") == ["true"]))


def delete(name, body, query):
    request = TypeAdapter(m.PointsSelector).validate_python(body)
    return dump(client.delete(name, points_selector=request, wait=query.get("wait") == ["true"]))


def scroll(name, body, query):
    request = m.ScrollRequest.model_validate(body)
    points, offset = client.scroll(
        name,
        scroll_filter=request.filter,
        limit=request.limit or 10,
        offset=request.offset,
        with_payload=request.with_payload if request.with_payload is not None else True,
        with_vectors=request.with_vector or False,
    )
    return {"points": dump(points), "next_page_offset": offset}


def query_points(name, body, query):
    request = m.QueryRequest.model_validate(body)
    response = client.query_points(
        name,
        query=request.query,
        using=request.using,
        prefetch=request.prefetch,
        query_filter=request.filter,
        score_threshold=request.score_threshold,
        limit=request.limit or 10,
        with_payload=request.with_payload if request.with_payload is not None else False,
    )
    return dump(response)


ROUTES = [
    ("GET", r"/collections/([^/]+)/exists", lambda name, body, query: {"exists": client.collection_exists(name)}),
    ("GET", r"/collections/([^/]+)", lambda name, body, query: dump(client.get_collection(name))),
    ("PUT", r"/collections/([^/]+)", create_collection),
    ("PUT", r"/collections/([^/]+)/index", create_index),
    ("PUT", r"/collections/([^/]+)/points", upsert),
    ("POST", r"/collections/([^/]+)/points/delete", delete),
    ("POST", r"/collections/([^/]+)/points/scroll", scroll),
    ("POST", r"/collections/([^/]+)/points/query", query_points),
]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        url = urlparse(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/__violations":
            return self.send(200, violations)
        if url.path == "/":
            return self.send(200, {"title": "qdrant - vector search engine (contract stand-in)", "version": "1.12.5"})
        if self.headers.get("api-key") != API_KEY:
            return self.send(401, {"status": {"error": "Must provide an API key or an Authorization bearer token"}})
        for method, pattern, action in ROUTES:
            match = re.fullmatch(pattern, url.path)
            if method != self.command or match is None:
                continue
            name = match.group(1)
            try:
                body = json.loads(raw) if raw else {}
                return self.send(200, envelope(action(name, body, parse_qs(url.query))))
            except ValidationError as error:
                violations.append({"request": f"{self.command} {url.path}", "body": raw.decode(), "error": str(error)})
                return self.send(422, {"status": {"error": f"request does not match Qdrant's schema: {error}"}})
            except ValueError as error:
                code = 404 if "not found" in str(error).lower() else 400
                if code == 400:
                    violations.append({"request": f"{self.command} {url.path}", "body": raw.decode(), "error": str(error)})
                return self.send(code, {"status": {"error": str(error)}})
        violations.append({"request": f"{self.command} {url.path}", "error": "no such route in Qdrant's API as diatonic uses it"})
        return self.send(404, {"status": {"error": f"unknown route {self.command} {url.path}"}})

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
