"""The web application of ``dtnn serve`` (Starlette; uvicorn runs it, see server.py).

Routes::

    GET  /               the drawing page (static/index.html)
    GET  /static/...     its script, style sheet and icon: every asset is served here
    POST /api/predict    classify an image (PNG/JPEG/... body, or JSON) or a raw array
    GET  /api/model      the model card (name, parameters, size, accuracy, classes, ...)
    GET  /healthz        liveness: {"status": "ok"}

Every error is a 4xx (or, for a bug, 500) with a one-line JSON body ``{"error": ...}``;
request bodies above ``max_body`` bytes are refused with 413 while they stream in.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dtnn.data.images import decode_image
from dtnn.errors import UserError
from dtnn.log import get_logger
from dtnn.serve.predictor import Predictor, check_top_k, parse_invert

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_BODY = 4 * 1024 * 1024

#: the page loads nothing from elsewhere; the browser enforces it
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                           "script-src 'self'; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status)


class TimingAndHeaders:
    """ASGI middleware: security headers on every response and ``Server-Timing:
    app;dur=<ms>``, the time from the request's arrival to its answer's headers (the
    body is complete by then for every route here)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                ms = 1e3 * (time.perf_counter() - start)
                headers = list(message.get("headers", []))
                headers += [(b"server-timing", f"app;dur={ms:.3f}".encode()),
                            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body of {int(declared)} bytes exceeds the "
                                    f"limit of {limit} bytes")
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _flag(value: Any, name: str) -> bool:
    from dtnn.data._opts import as_bool

    return False if value == "" else as_bool(name, value)


def _image_from_json(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ApiError(422, "'image' must be a base64 string or a data: URL")
    if value.startswith("data:"):
        head, _, value = value.partition(",")
        if ";base64" not in head:
            raise ApiError(422, "'image' data URL must be base64-encoded")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "'image' is not valid base64") from None


def _array_from_json(value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ApiError(422, "'array' must be a (nested) list of numbers of one shape") from None
    return arr


def _array_from_npy(body: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ApiError(422, f"body is not a readable .npy array ({_one_line(exc)})") from None


def parse_predict_request(body: bytes, content_type: str, query) -> Dict[str, Any]:
    """Decode a /api/predict request into ``{"kind": "image"|"array", "data", options}``.

    Accepted bodies: image bytes (``image/*``, ``application/octet-stream`` or no
    type), ``application/x-npy``, or ``application/json`` with ``image`` (base64 or a
    data URL) or ``array`` (nested lists).  Options ``top_k``, ``segment``, ``invert``
    and ``preprocess`` come from the query string or the JSON object.
    """
    options: Dict[str, Any] = dict(query)
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        raise ApiError(400, "empty request body: send an image (e.g. PNG) or an array")
    if kind == "application/json":
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"body is not valid JSON ({_one_line(exc)})") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "JSON body must be an object with 'image' or 'array'")
        unknown = set(doc) - {"image", "array", "top_k", "segment", "invert", "preprocess"}
        if unknown:
            raise ApiError(400, f"unknown field '{sorted(unknown)[0]}' (fields: image, array, "
                                "top_k, segment, invert, preprocess)")
        options.update({k: v for k, v in doc.items() if k not in ("image", "array")})
        if ("image" in doc) == ("array" in doc):
            raise ApiError(400, "JSON body needs exactly one of 'image' and 'array'")
        if "image" in doc:
            data = _image_from_json(doc["image"])
            return {"kind": "image", "data": data, **options}
        return {"kind": "array", "data": _array_from_json(doc["array"]), **options}
    if kind in ("application/x-npy", "application/npy"):
        return {"kind": "array", "data": _array_from_npy(body), **options}
    if kind and not (kind.startswith("image/") or kind in (
            "application/octet-stream", "application/x-www-form-urlencoded")):
        raise ApiError(415, f"unsupported Content-Type '{kind}': send image/png (or any "
                            "image), application/json or application/x-npy")
    return {"kind": "image", "data": body, **options}


def answer(predictor: Predictor, req: Dict[str, Any]) -> Dict[str, Any]:
    """Run one parsed request (in a worker thread).  UserError -> 422."""
    known = {"kind", "data", "top_k", "segment", "invert", "preprocess"}
    unknown = set(req) - known
    if unknown:
        raise ApiError(400, f"unknown option '{sorted(unknown)[0]}' (options: top_k, "
                            "segment, invert, preprocess)")
    top_k = check_top_k(req.get("top_k", 5), len(predictor.classes))
    segment = _flag(req.get("segment", False), "segment")
    invert = parse_invert(req.get("invert"))
    t0 = time.perf_counter()
    if req["kind"] == "image":
        image = decode_image(req["data"], "request body")
    else:
        image = req["data"]
        if not _flag(req.get("preprocess", False), "preprocess"):
            if segment:
                raise ApiError(400, "segment needs an image (or an array with preprocess=true)")
            out = predictor.classify_array(image, top_k)
            out["timings_ms"]["decode"] = 1e3 * (time.perf_counter() - t0)
            return out
        image = np.asarray(image, np.float32)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ApiError(422, f"array of shape {image.shape} is not an image (H, W) or "
                                "(H, W, C)")
        if image.ndim == 3:
            image = image[..., :3].mean(axis=2)
        if not np.isfinite(image).all():
            raise ApiError(422, "array holds NaN or infinite values")
        image = image / 255.0 if image.max() > 1.0 else image
    t1 = time.perf_counter()
    out = predictor.classify_image(image, top_k=top_k, segment=segment, invert=invert)
    out["timings_ms"]["decode"] = 1e3 * (t1 - t0)
    return out


def create_app(predictor: Predictor, max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The ASGI application around one loaded ``Predictor``."""
    log = get_logger()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"cache-control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": predictor.card()["name"]})

    async def model(request: Request) -> Response:
        return JSONResponse(predictor.card())

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        body = await read_body(request, max_body)
        req = parse_predict_request(body, request.headers.get("content-type", ""),
                                    request.query_params)
        out = await run_in_threadpool(answer, predictor, req)
        out["timings_ms"]["total"] = 1e3 * (time.perf_counter() - start)
        return JSONResponse(out)

    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message)

    async def user_error(request: Request, exc: UserError) -> Response:
        return error_response(422, str(exc))

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(exc.status_code, exc.detail or "error")

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error(f"{request.method} {request.url.path}: {type(exc).__name__}: "
                  f"{_one_line(exc)}")
        return error_response(500, "internal error (see the server log)")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/model", model, methods=["GET"]),
        Route("/api/predict", predict, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ApiError: api_error, UserError: user_error, HTTPException: http_error,
        Exception: internal_error})
    app.add_middleware(TimingAndHeaders)
    app.state.predictor = predictor
    return app


def app_for_checkpoint(path: str, max_body: Optional[int] = None) -> Starlette:
    """Load ``path`` and build the app (for ``uvicorn --factory``-style use and tests)."""
    return create_app(Predictor(path), max_body or DEFAULT_MAX_BODY)
