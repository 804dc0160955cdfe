"""Stored files: content-addressed on disk, one row per tenant and hash, never half written."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from core.db.models import Staff, StoredFile
from core.domain.dates import utcnow
from core.domain.status import Role
from core.errors import InactiveStaff, InvalidInput
from core.services import files
from core.services.files import MAX_FILE_BYTES, image_type, store_file
from tests.factories import make_staff, make_tenant

pytestmark = pytest.mark.usefixtures("db")

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00receipt pixels"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """DATA_DIR of these tests (tmp_path itself also holds the SQLite database)."""
    return tmp_path / "data"


async def _collector() -> Staff:
    return await make_staff(await make_tenant(), Role.COLLECTOR)


def _files_under(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_bytes_are_written_under_their_hash_and_recorded_with_their_type(data_dir):
    collector = await _collector()
    digest = hashlib.sha256(JPEG).hexdigest()

    stored = await store_file(
        collector, JPEG, content_type="image/jpeg", telegram_file_id="AgAC-1", data_dir=data_dir
    )

    assert (stored.path, stored.sha256, stored.content_type, stored.size_bytes) == (
        f"files/{digest[:2]}/{digest}.jpg",
        digest,
        "image/jpeg",
        len(JPEG),
    )
    assert (stored.tenant_id, stored.telegram_file_id) == (collector.tenant_id, "AgAC-1")
    assert (data_dir / stored.path).read_bytes() == JPEG
    assert _files_under(data_dir) == [stored.path]


async def test_the_same_bytes_twice_give_the_same_row_and_one_file(data_dir):
    collector = await _collector()

    first = await store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir)
    again = await store_file(
        collector, JPEG, content_type="image/png", telegram_file_id="other", data_dir=data_dir
    )

    assert again.id == first.id
    assert (again.path, again.telegram_file_id) == (first.path, None)
    assert await StoredFile.all().count() == 1
    assert _files_under(data_dir) == [first.path]


async def test_another_company_storing_the_same_bytes_gets_its_own_row_and_shares_the_file(
    data_dir,
):
    ours, theirs = await _collector(), await _collector()

    mine = await store_file(ours, JPEG, content_type="image/jpeg", data_dir=data_dir)
    other = await store_file(theirs, JPEG, content_type="image/jpeg", data_dir=data_dir)

    assert mine.id != other.id
    assert (mine.tenant_id, other.tenant_id) == (ours.tenant_id, theirs.tenant_id)
    assert _files_under(data_dir) == [mine.path]


async def test_two_requests_storing_the_same_bytes_at_once_share_one_row(data_dir):
    collector = await _collector()

    rows = await asyncio.gather(
        *(store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir) for _ in "ab")
    )

    assert rows[0].id == rows[1].id
    assert await StoredFile.all().count() == 1


async def test_a_failed_write_leaves_no_row_and_no_file(data_dir, monkeypatch):
    collector = await _collector()

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full)

    with pytest.raises(OSError, match="No space left"):
        await store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir)

    assert await StoredFile.all().count() == 0
    assert _files_under(data_dir) == []  # the partial file was removed too
    monkeypatch.undo()  # the disk has room again
    stored = await store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir)
    assert (data_dir / stored.path).read_bytes() == JPEG


async def test_a_known_file_missing_from_disk_is_written_again(data_dir):
    collector = await _collector()
    stored = await store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir)
    (data_dir / stored.path).unlink()

    again = await store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir)

    assert again.id == stored.id
    assert (data_dir / stored.path).read_bytes() == JPEG


async def test_an_unknown_content_type_is_kept_with_a_neutral_extension(data_dir):
    collector = await _collector()
    stored = await store_file(
        collector, b"\x00\x01", content_type="Application/X-Thing ", data_dir=data_dir
    )
    assert (stored.content_type, stored.path.endswith(".bin")) == ("application/x-thing", True)


async def test_empty_and_oversize_files_are_refused_before_touching_the_disk(data_dir):
    collector = await _collector()

    with pytest.raises(InvalidInput) as empty:
        await store_file(collector, b"", content_type="image/jpeg", data_dir=data_dir)
    with pytest.raises(InvalidInput) as huge:
        await store_file(
            collector, b"\xff" * (MAX_FILE_BYTES + 1), content_type="image/jpeg", data_dir=data_dir
        )

    assert (empty.value.code, huge.value.code, huge.value.params) == (
        "file_empty",
        "file_too_big",
        {"limit_mb": 20},
    )
    assert (await StoredFile.all().count(), _files_under(data_dir)) == (0, [])


async def test_a_removed_collector_cannot_store_files(data_dir):
    collector = await _collector()
    await Staff.filter(id=collector.id).update(deleted_at=utcnow())
    await collector.refresh_from_db()

    with pytest.raises(InactiveStaff):
        await store_file(collector, JPEG, content_type="image/jpeg", data_dir=data_dir)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JPEG, "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"%PDF-1.4\n", None),
        (b"", None),
        (b"\xff\xd8", None),
    ],
)
async def test_image_type_reads_the_magic_number_not_the_name(data, expected):
    assert image_type(data) == expected
