"""The hostile-input corpus: uploads and request shapes meant to break the service, each generated here from a few
lines of code (no binaries of unknown origin), with the status and error code the service must answer.

Nothing is committed but this script and the table in `tests/data/hostile/README.md`: the test suite
(`tests/test_hostile.py`) generates every case at test time, sends it to a real server and checks the table is the
one `markdown_table()` writes. Encoders differ between Pillow / libjpeg / libwebp versions, so committed binaries
would drift from this script; generated ones always exercise the decoders actually installed. To get the files for
manual checks (curl, another client):

    python -m scripts.make_hostile_corpus --out /tmp/hostile          # one file per upload + requests.json
    python -m scripts.make_hostile_corpus --table                     # the README table

Expectations assume the default limits of `detecteur.config.Settings` (20 MB a file, 40 Mpx, 8 files).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import select
import socket
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from detecteur.config import Settings

REPO = Path(__file__).resolve().parents[1]
FACE = REPO / "tests" / "data" / "samples" / "stylegan-ffhq-real-00006.jpg"
BOUNDARY = "hostile-corpus-boundary"
MB = 1024 * 1024
_DEFAULTS = Settings()


@dataclass(frozen=True)
class HostileRequest:
    """One HTTP request, byte for byte: what a misbehaving client could send."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    # Sent in pieces of `chunk_bytes` with `pause_seconds` between them (a slow client); 0 = all at once.
    chunk_bytes: int = 0
    pause_seconds: float = 0.0


@dataclass(frozen=True)
class HostileCase:
    name: str
    what: str
    status: int  # what the service must answer
    code: str | None  # the error code; None for a judged image (200)
    build: Callable[[], HostileRequest]
    # Uploads small enough to send thousands of times in the soak test.
    soak: bool = True
    notes: str = ""
    # For a judged image: the status each named evidence line must have, e.g. (("metadata", "unreadable"),).
    evidence: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    status: int
    body: dict[str, object] = field(default_factory=dict)
    # Set when the server closed the connection before answering.
    connection_error: str | None = None
    # Body bytes the client got out before the server answered (or closed): less than the body when cut off.
    bytes_sent: int = 0

    @property
    def code(self) -> str | None:
        error = self.body.get("error")
        return str(error.get("code")) if isinstance(error, dict) else None


# --- building blocks -------------------------------------------------------------------------------------------------


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def face() -> Image.Image:
    return Image.open(FACE).convert("RGB")


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size, compressed row by row so the raw image never exists in memory."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def multipart(parts: list[tuple[str, str | None, str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body from (field, filename or None, content type, data), written by hand so that
    filenames and framing are exactly what the case says."""
    chunks: list[bytes] = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def upload(data: bytes, path: str = "/v1/predict", filename: str = "upload.jpg") -> HostileRequest:
    body = multipart([("file", filename, "application/octet-stream", data)])
    return HostileRequest("POST", path, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, body)


def upload_of(make: Callable[[], bytes], filename: str = "upload.jpg") -> Callable[[], HostileRequest]:
    return lambda: upload(make(), filename=filename)


# --- payloads --------------------------------------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    data = FACE.read_bytes()
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    data = encoded(face(), "PNG")
    return data[: len(data) // 2]


def corrupt_huffman_jpeg() -> bytes:
    """The face JPEG with 0xFF bytes written over its entropy-coded data: invalid Huffman codes and stray markers."""
    data = bytearray(encoded(face(), "JPEG", quality=90))
    start = data.rfind(b"\xff\xda") + 200
    for offset in range(start, len(data) - 200, 97):
        data[offset] = 0xFF
    return bytes(data)


def png_with_bad_crc() -> bytes:
    data = bytearray(encoded(noise(64, 64), "PNG"))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def jpeg_scan_bomb() -> bytes:
    """A progressive JPEG repeating its last scan 1 000 times: each one is a full decoding pass."""
    data = encoded(noise(64, 64), "JPEG", progressive=True)
    last_scan = data[data.rfind(b"\xff\xda") : -2]
    return data[:-2] + last_scan * 1000 + b"\xff\xd9"


def gif_of_1000_frames() -> bytes:
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 4, (32, 32), dtype=np.uint8) * 60, "L") for _ in range(1000)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)


def animated_webp() -> bytes:
    frames = [face().resize((128, 128)), noise(128, 128)]
    return encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, quality=80)


def multi_page_tiff() -> bytes:
    pages = [face()] + [noise(64, 64, seed) for seed in range(19)]
    return encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")


def palette_png_with_transparency() -> bytes:
    palette = face().resize((128, 128)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encoded(palette, "PNG", transparency=0)


def jpeg_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(face(), "JPEG", exif=exif.tobytes())


def jpeg_zip_polyglot() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return FACE.read_bytes() + archive.getvalue()


def bmp_header_claiming(width: int, height: int) -> bytes:
    """A BMP header for a `width`×`height` 24-bit image with almost no pixel data behind it."""
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = bytes(64)
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + len(pixels), 0, 0, 14 + len(header)) + header + pixels


def heic_lookalike() -> bytes:
    return struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + bytes(200)


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><script>alert(1)</script></svg>'


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


# --- request shapes --------------------------------------------------------------------------------------------------


def raw_jpeg_body() -> HostileRequest:
    return HostileRequest("POST", "/v1/predict", {"Content-Type": "image/jpeg"}, FACE.read_bytes())


def json_body() -> HostileRequest:
    return HostileRequest("POST", "/v1/predict", {"Content-Type": "application/json"}, b'{"file": "face.jpg"}')


def multipart_without_boundary() -> HostileRequest:
    body = multipart([("file", "face.jpg", "image/jpeg", FACE.read_bytes())])
    return HostileRequest("POST", "/v1/predict", {"Content-Type": "multipart/form-data"}, body)


def multipart_with_wrong_boundary() -> HostileRequest:
    body = multipart([("file", "face.jpg", "image/jpeg", FACE.read_bytes())], boundary="another-boundary")
    return HostileRequest("POST", "/v1/predict", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, body)


def two_files_on_the_seed_route() -> HostileRequest:
    image = FACE.read_bytes()
    body = multipart([("file", "a.jpg", "image/jpeg", image), ("file", "b.jpg", "image/jpeg", image)])
    return HostileRequest("POST", "/predict", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, body)


def fifty_files() -> HostileRequest:
    small = encoded(noise(32, 32), "PNG")
    body = multipart([("files", f"{index}.png", "image/png", small) for index in range(50)])
    return HostileRequest("POST", "/v1/predict", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, body)


def thousands_of_form_fields() -> HostileRequest:
    body = multipart([(f"field{index}", None, "text/plain", b"x") for index in range(2000)])
    return HostileRequest("POST", "/v1/predict", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, body)


def slow_upload_over_the_limit(path: str) -> Callable[[], HostileRequest]:
    """25 MB in 256 kB pieces, 20 ms apart: a client that would hold the connection for 2 s if let."""

    def build() -> HostileRequest:
        request = upload(bytes(25 * MB), path=path)
        return HostileRequest(
            request.method, path, request.headers, request.body, chunk_bytes=256 * 1024, pause_seconds=0.02
        )

    return build


def lying_content_length() -> HostileRequest:
    """Announces 1 GB and sends a few bytes: refused from the header alone."""
    return HostileRequest(
        "POST",
        "/v1/predict",
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(1024 * MB)},
        b"--" + BOUNDARY.encode(),
    )


def file_over_the_limit() -> bytes:
    return bytes(_DEFAULTS.max_upload_bytes + MB)


def cases() -> list[HostileCase]:
    """Every case, in the order of the README table."""
    image_cases = [
        HostileCase("empty-file", "a file of 0 bytes", 400, "empty_file", upload_of(lambda: b"")),
        HostileCase("one-byte", "a single 0xFF byte", 415, "unsupported_format", upload_of(lambda: b"\xff")),
        HostileCase("plain-text", "UTF-8 text", 415, "unsupported_format", upload_of(lambda: b"hello, detector\n")),
        HostileCase(
            "html",
            "an HTML page with a script",
            415,
            "unsupported_format",
            upload_of(lambda: b"<!doctype html><html><body><script>alert(1)</script></body></html>"),
        ),
        HostileCase("json", "a JSON document", 415, "unsupported_format", upload_of(lambda: b'{"image": "face.jpg"}')),
        HostileCase("svg", "an SVG image with a script", 415, "unsupported_format", upload_of(svg, "face.svg")),
        HostileCase("pdf", "a minimal PDF", 415, "unsupported_format", upload_of(pdf, "face.pdf")),
        HostileCase(
            "zip",
            "a ZIP archive",
            415,
            "unsupported_format",
            upload_of(lambda: jpeg_zip_polyglot()[len(FACE.read_bytes()) :]),
        ),
        HostileCase(
            "random-bytes",
            "4 kB of random bytes",
            415,
            "unsupported_format",
            upload_of(lambda: np.random.default_rng(0).bytes(4096)),
        ),
        HostileCase(
            "heic", "an HEIC file header (not on the allow-list)", 415, "unsupported_format", upload_of(heic_lookalike)
        ),
        HostileCase(
            "ico",
            "a Windows icon: Pillow reads it, the allow-list refuses it",
            415,
            "unsupported_format",
            upload_of(lambda: encoded(face().resize((64, 64)), "ICO")),
        ),
        HostileCase("truncated-jpeg", "the face JPEG cut in half", 422, "corrupt_image", upload_of(truncated_jpeg)),
        HostileCase("truncated-png", "a PNG cut in half", 422, "corrupt_image", upload_of(truncated_png)),
        HostileCase(
            "jpeg-header-only",
            "the first 300 bytes of a JPEG",
            422,
            "corrupt_image",
            upload_of(lambda: FACE.read_bytes()[:300]),
        ),
        HostileCase(
            "corrupt-huffman",
            "a JPEG with 0xFF written over its entropy-coded data",
            422,
            "corrupt_image",
            upload_of(corrupt_huffman_jpeg),
            notes="a damaged photo is not judged: its verdict would describe the damage",
        ),
        HostileCase(
            "png-bad-crc",
            "a PNG with one flipped byte (CRC mismatch)",
            422,
            "corrupt_image",
            upload_of(png_with_bad_crc),
        ),
        HostileCase(
            "jpeg-scan-bomb",
            "a progressive JPEG repeating a scan 1 000 times",
            422,
            "corrupt_image",
            upload_of(jpeg_scan_bomb),
            notes="refused before decoding (each scan is a full pass)",
        ),
        HostileCase(
            "png-bomb-30000x30000",
            "decompression bomb: a 30 000 × 30 000 PNG of zeros (~110 kB)",
            413,
            "too_many_pixels",
            upload_of(lambda: png_of_zeros(30_000, 30_000), "bomb.png"),
            notes="refused from the header, nothing decoded",
        ),
        HostileCase(
            "huge-valid-png",
            "a valid 8 000 × 6 000 PNG (48 Mpx, over the 40 Mpx limit)",
            413,
            "too_many_pixels",
            upload_of(lambda: png_of_zeros(8_000, 6_000), "huge.png"),
        ),
        HostileCase(
            "bmp-header-bomb",
            "a BMP header claiming 50 000 × 50 000 pixels",
            413,
            "too_many_pixels",
            upload_of(lambda: bmp_header_claiming(50_000, 50_000), "bomb.bmp"),
        ),
        HostileCase(
            "one-pixel",
            "a 1 × 1 PNG",
            422,
            "image_too_small",
            upload_of(lambda: encoded(Image.new("RGB", (1, 1)), "PNG")),
        ),
        HostileCase(
            "10000x10",
            "a 10 000 × 10 PNG",
            422,
            "image_too_small",
            upload_of(lambda: encoded(Image.new("RGB", (10_000, 10)), "PNG")),
            notes="a 10-pixel side holds no face; the minimum side is 16",
        ),
        HostileCase(
            "file-over-the-limit",
            "a 21 MB file (the limit is 20 MB)",
            413,
            "file_too_large",
            upload_of(file_over_the_limit),
            soak=False,
        ),
        HostileCase(
            "gif-1000-frames",
            "an animated GIF of 1 000 frames",
            200,
            None,
            upload_of(gif_of_1000_frames, "anim.gif"),
            notes="only the first frame is decoded",
        ),
        HostileCase("animated-webp", "an animated WebP of 2 frames", 200, None, upload_of(animated_webp, "anim.webp")),
        HostileCase("multi-page-tiff", "a TIFF of 20 pages", 200, None, upload_of(multi_page_tiff, "pages.tiff")),
        HostileCase(
            "cmyk-jpeg",
            "the face as a CMYK JPEG",
            200,
            None,
            upload_of(lambda: encoded(Image.open(FACE).convert("CMYK"), "JPEG")),
            notes="converted to RGB",
        ),
        HostileCase(
            "16-bit-png",
            "a 16-bit grayscale PNG",
            200,
            None,
            upload_of(lambda: encoded(Image.fromarray(np.asarray(face().convert("L"), np.uint16) * 257), "PNG")),
            notes="scaled to 8 bits, not clipped",
        ),
        HostileCase(
            "palette-png-transparency",
            "a palette PNG with a transparent entry",
            200,
            None,
            upload_of(palette_png_with_transparency, "palette.png"),
            notes="transparent pixels become white",
        ),
        HostileCase(
            "grayscale-jpeg",
            "the face in grayscale",
            200,
            None,
            upload_of(lambda: encoded(Image.open(FACE).convert("L"), "JPEG")),
        ),
        HostileCase(
            "exif-bogus-orientation",
            "a JPEG whose EXIF orientation is 9 (does not exist)",
            200,
            None,
            upload_of(lambda: jpeg_with_orientation(9)),
            notes="kept as stored",
        ),
        HostileCase(
            "polyglot-jpeg-zip",
            "the face JPEG with a ZIP archive appended",
            200,
            None,
            upload_of(jpeg_zip_polyglot),
            notes="the JPEG is judged; the trailing archive is never read",
        ),
    ]
    request_cases = [
        HostileCase(
            "raw-body-image-content-type",
            "the JPEG as the raw body, Content-Type image/jpeg",
            422,
            "missing_file",
            raw_jpeg_body,
        ),
        HostileCase("json-content-type", "a JSON body instead of multipart", 422, "missing_file", json_body),
        HostileCase(
            "missing-boundary",
            "multipart/form-data without a boundary parameter",
            400,
            "invalid_request",
            multipart_without_boundary,
        ),
        HostileCase(
            "wrong-boundary",
            "a multipart body whose boundary differs from the header's",
            400,
            "invalid_request",
            multipart_with_wrong_boundary,
        ),
        HostileCase(
            "two-files-seed-route",
            "two files in `file` on /predict, which judges one",
            413,
            "too_many_files",
            two_files_on_the_seed_route,
        ),
        HostileCase("fifty-files", "50 files (the limit is 8)", 413, "too_many_files", fifty_files),
        HostileCase(
            "2000-form-fields",
            "2 000 text fields",
            400,
            "invalid_request",
            thousands_of_form_fields,
        ),
        HostileCase(
            "filename-traversal-nul",
            "filename `../../etc/passwd\\x00.jpg` on a valid face",
            200,
            None,
            lambda: upload(FACE.read_bytes(), filename="../../etc/passwd\x00.jpg"),
            notes="the name is never used as a path; it is echoed back without directories and control characters",
        ),
        HostileCase(
            "lying-content-length",
            "Content-Length 1 GB, a few bytes sent",
            413,
            "request_too_large",
            lying_content_length,
            notes="refused from the header",
        ),
        HostileCase(
            "slow-25mb-seed-route",
            "25 MB sent slowly (256 kB every 20 ms, chunked) to /predict",
            413,
            "request_too_large",
            slow_upload_over_the_limit("/predict"),
            soak=False,
            notes="cut off after 20 MB + framing, while streaming",
        ),
        HostileCase(
            "slow-25mb-v1",
            "25 MB sent slowly to /v1/predict (which takes 8 files)",
            413,
            "file_too_large",
            slow_upload_over_the_limit("/v1/predict"),
            soak=False,
            notes="the request is within 8 × 20 MB, so all of it is read; the file is then refused",
        ),
        HostileCase(
            "get-predict",
            "GET on /v1/predict",
            405,
            "method_not_allowed",
            lambda: HostileRequest("GET", "/v1/predict", {}),
        ),
    ]
    from scripts.hostile_metadata import metadata_cases  # it builds on this module's HostileCase and upload

    return image_cases + metadata_cases() + request_cases


# --- sending ---------------------------------------------------------------------------------------------------------


def send(request: HostileRequest, host: str, port: int, timeout: float = 60.0) -> Outcome:
    """Send `request` on a fresh connection and read the answer. A server that answers early (413 mid-upload) and
    closes is fine: the answer is read after the send fails."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        send_error: OSError | None = None
        progress = [0]
        try:
            _send_request(connection, request, progress)
        except OSError as error:
            send_error = error
            if connection.sock is None:  # never connected, or closed before an answer could arrive
                return Outcome(0, connection_error=f"{type(error).__name__}: {error}")
        try:
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            return Outcome(0, connection_error=f"{type(send_error or error).__name__}: {send_error or error}")
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {"raw": raw[:200].decode("latin-1")}
        return Outcome(response.status, body if isinstance(body, dict) else {"json": body}, bytes_sent=progress[0])
    finally:
        connection.close()


def _send_request(connection: http.client.HTTPConnection, request: HostileRequest, progress: list[int]) -> None:
    connection.putrequest(request.method, request.path, skip_accept_encoding=True)
    headers = dict(request.headers)
    chunked = request.chunk_bytes > 0
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    elif request.method != "GET" and "Content-Length" not in headers:
        headers["Content-Length"] = str(len(request.body))
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    if not chunked:
        if request.body:
            connection.send(request.body)
            progress[0] = len(request.body)
        return
    for piece in _pieces(request.body, request.chunk_bytes):
        if connection.sock is not None and select.select([connection.sock], [], [], 0)[0]:
            return  # the server has answered (or closed) before the end of the body: stop, like a browser
        connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        progress[0] += len(piece)
        time.sleep(request.pause_seconds)
    connection.send(b"0\r\n\r\n")


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# --- documentation ---------------------------------------------------------------------------------------------------


def markdown_table() -> str:
    lines = ["| case | what is sent | expected status | error code | notes |", "|---|---|---|---|---|"]
    for case in cases():
        code = f"`{case.code}`" if case.code else "— (judged)"
        what = case.what.replace("|", "\\|")
        expected = [f"{line.replace('_', ' ')} `{status}`" for line, status in case.evidence]
        notes = "; ".join(expected + ([case.notes] if case.notes else []))
        lines.append(f"| `{case.name}` | {what} | {case.status} | {code} | {notes} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write every case here: <name>.bin request bodies + requests.json")
    parser.add_argument("--table", action="store_true", help="print the README table")
    arguments = parser.parse_args()
    if arguments.table:
        print(markdown_table(), end="")
    if arguments.out:
        arguments.out.mkdir(parents=True, exist_ok=True)
        index = []
        for case in cases():
            request = case.build()
            (arguments.out / f"{case.name}.bin").write_bytes(request.body)
            index.append(
                {
                    "name": case.name,
                    "method": request.method,
                    "path": request.path,
                    "headers": request.headers,
                    "body": f"{case.name}.bin",
                    "expected_status": case.status,
                    "expected_code": case.code,
                }
            )
        (arguments.out / "requests.json").write_text(json.dumps(index, indent=2) + "\n")
        print(f"{len(index)} cases written to {arguments.out}")


if __name__ == "__main__":
    main()
