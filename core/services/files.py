"""Stored files (receipt photos, generated documents), kept under DATA_DIR by content hash.

Invariants:
- A file lives at `DATA_DIR/files/<sha256[:2]>/<sha256>.<ext>`: the same bytes are one file
  on disk, and one row per tenant (`StoredFile(tenant, sha256)` is UNIQUE), so storing the
  same bytes twice returns the first row.
- The bytes are on disk before the row exists. They are written to a temporary file in the
  same folder, flushed and renamed into place (an atomic rename), so a failed or partial
  write leaves neither a row nor a half-written file under the final name.
- Disk work runs in a thread (`asyncio.to_thread`): the event loop keeps serving while a
  20 MB photo is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from tortoise.exceptions import IntegrityError

from core.db.models import Staff, StoredFile
from core.errors import InvalidInput
from core.services.access import require_active

# Telegram lets bots download files up to 20 MB; nothing larger can reach us anyway.
MAX_FILE_BYTES = 20 * 1024 * 1024

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/heic": "heic",
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


def image_type(data: bytes) -> str | None:
    """The image type the bytes really are, read from their magic number, or None.

    What a client declares (a file name, a MIME type) is not trusted: a PDF renamed
    `receipt.jpg` is not a photo of a receipt.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image/heic"
    return None


def file_path(sha256: str, content_type: str) -> str:
    """Where the bytes with this hash live, relative to DATA_DIR (the `path` column)."""
    extension = _EXTENSIONS.get(content_type, "bin")
    return f"files/{sha256[:2]}/{sha256}.{extension}"


async def store_file(
    actor: Staff,
    data: bytes,
    *,
    content_type: str,
    telegram_file_id: str | None = None,
    data_dir: Path,
) -> StoredFile:
    """Keep `data` for `actor`'s company; the same bytes stored again give the same row.

    Raises:
        InvalidInput: the file is empty or larger than 20 MB.
    """
    require_active(actor)
    if not data:
        raise InvalidInput("The file is empty; send it again.", code="file_empty")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(
            "The file is larger than 20 MB.", code="file_too_big", limit_mb=MAX_FILE_BYTES // 2**20
        )
    digest = hashlib.sha256(data).hexdigest()
    kind = content_type.strip().lower() or "application/octet-stream"
    existing = await StoredFile.get_or_none(tenant_id=actor.tenant_id, sha256=digest)
    relative = existing.path if existing else file_path(digest, kind)
    # Also for a known row: the disk may have been restored without this file.
    await asyncio.to_thread(_write_once, Path(data_dir) / relative, bytes(data))
    if existing is not None:
        return existing
    try:
        return await StoredFile.create(
            tenant_id=actor.tenant_id,
            sha256=digest,
            path=relative,
            content_type=kind,
            size_bytes=len(data),
            telegram_file_id=telegram_file_id,
        )
    except IntegrityError:
        # The same bytes were stored meanwhile by another request: that row is ours too.
        return await StoredFile.get(tenant_id=actor.tenant_id, sha256=digest)


def _write_once(path: Path, data: bytes) -> None:
    """Put `data` at `path` atomically, unless the same content is already there."""
    if path.is_file() and path.stat().st_size == len(data):
        return  # content-addressed: same name and size is the same file
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
