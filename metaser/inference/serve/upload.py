"""Reading an upload of ``POST /v1/predict``: a multipart ``file`` field or a raw body."""

from __future__ import annotations

__all__ = ["ApiError", "read_upload", "RAW_TYPES"]

MULTIPART_OVERHEAD = 64 * 1024  # multipart headers and boundaries on top of the file itself
RAW_TYPES = ("audio/*", "application/octet-stream")  # raw bodies accepted besides multipart


class ApiError(Exception):
    """A request the service refuses: answered ``status`` with ``{"error", "reason"}``."""

    def __init__(self, status: int, error: str, reason: str):
        super().__init__(error)
        self.status, self.error, self.reason = status, error, reason


async def read_upload(request, max_bytes: int) -> tuple[bytes, str | None]:
    """The uploaded file's bytes and name, from a multipart ``file`` field or a raw ``audio/*`` /
    ``application/octet-stream`` body (its name from the ``X-Filename`` header, if any).

    Raises :class:`ApiError` (415, 413, 400); a client that goes away mid-upload raises
    starlette's ``ClientDisconnect`` (logged as ``client disconnected`` by the middleware).
    """
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    if not multipart and not (ctype.startswith("audio/") or ctype == "application/octet-stream"):
        raise ApiError(
            415,
            "send a multipart form with a 'file' field or a raw audio/* or application/octet-stream body, "
            f"not {ctype or 'no content type'}",
            "unsupported_media_type",
        )
    limit = max_bytes + (MULTIPART_OVERHEAD if multipart else 0)
    too_large = ApiError(413, f"upload larger than the limit of {max_bytes / 2**20:g} MB", "too_large")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise too_large
    if not multipart:
        return bytes(buf), request.headers.get("x-filename") or None
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def body():
        yield bytes(buf)

    try:
        form = await MultiPartParser(request.headers, body(), max_files=1, max_fields=16).parse()
    except MultiPartException as e:
        raise ApiError(400, f"malformed multipart body: {e.message}", "bad_request") from None
    f = form.get("file")
    try:
        if not isinstance(f, UploadFile):
            raise ApiError(400, "the multipart form has no 'file' field", "no_file")
        data = await f.read()
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise too_large
    return data, f.filename or None
