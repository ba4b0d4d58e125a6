"""The S3 backend against a real moto server: the shared conformance suite, then faults."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    ConnectionClosedError,
)

from artifactstore_core.config import load_settings
from artifactstore_core.errors import (
    BackendUnavailableError,
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    MissingBlobError,
    MissingExtraError,
)
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.storage import open_blob_store
from artifactstore_core.storage.s3 import S3BlobStore
from artifactstore_core.storage.s3 import _upload as s3_upload
from artifactstore_core.testing.blobstore_contract import (
    BlobStoreContract,
    LeaveStaging,
    Plant,
)
from artifactstore_core.testing.faultproxy import fault_proxy
from artifactstore_core.testing.servers import (
    S3_TEST_ACCESS_KEY,
    S3_TEST_REGION,
    S3_TEST_SECRET_KEY,
    create_s3_bucket,
    free_port,
    s3_client,
    s3_server,
)

pytestmark = [pytest.mark.s3, pytest.mark.integration]

MiB = 2**20
# Short timeouts and few attempts keep every fault test to a few seconds.
FAST: dict[str, Any] = {
    "connect_timeout": 1.0,
    "read_timeout": 3.0,
    "max_attempts": 2,
}


def make_store(endpoint: str, bucket: str, prefix: str = "blobs", **options: Any) -> S3BlobStore:
    settings: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region": S3_TEST_REGION,
        "access_key_id": S3_TEST_ACCESS_KEY,
        "secret_access_key": S3_TEST_SECRET_KEY,
        **FAST,
    }
    return S3BlobStore(bucket, prefix, **{**settings, **options})


def new_bucket(endpoint: str) -> str:
    return create_s3_bucket(endpoint, f"t-{uuid.uuid4().hex[:16]}")


def all_keys(endpoint: str, bucket: str) -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def open_uploads(endpoint: str, bucket: str) -> list[str]:
    listing = s3_client(endpoint).list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


class Trigger(io.BytesIO):
    """In-memory bytes that call ``action`` once the stream has been read past ``at``."""

    def __init__(self, data: bytes, at: int, action: Callable[[], None]) -> None:
        super().__init__(data)
        self._at = at
        self._action: Callable[[], None] | None = action

    def _check(self) -> None:
        if self._action is not None and self.tell() >= self._at:
            action, self._action = self._action, None
            action()

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self._check()
        return super().readinto(buffer)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return new_bucket(s3_endpoint)


@pytest.fixture
def store(s3_endpoint: str, bucket: str) -> Iterator[S3BlobStore]:
    blob_store = make_store(s3_endpoint, bucket)
    yield blob_store
    blob_store.close()


class TestS3BlobStore(BlobStoreContract):
    supports_modified_at = supports_size_of = supports_staging = True

    @pytest.fixture
    def blob_store(self, store: S3BlobStore) -> S3BlobStore:
        return store

    @pytest.fixture
    def plant(self, s3_endpoint: str, store: S3BlobStore) -> Plant:
        import s3fs

        outsider = s3fs.S3FileSystem(
            key=S3_TEST_ACCESS_KEY,
            secret=S3_TEST_SECRET_KEY,
            endpoint_url=s3_endpoint,
            skip_instance_cache=True,
        )
        return lambda key, data: outsider.pipe_file(f"{store.bucket}/{store.prefix}/{key}", data)

    @pytest.fixture
    def leave_staging(self, plant: Plant) -> LeaveStaging:
        """The staging object of a writer that died between its upload and its clean-up."""
        return lambda: plant(f"staging/{uuid.uuid4().hex}", b"uploaded, never published")

    def test_keys_follow_the_layout_under_the_prefix(
        self, store: S3BlobStore, s3_endpoint: str
    ) -> None:
        stored = store.write(io.BytesIO(b"layout"))
        hexpart = stored.hash.blake3.hex
        key = f"blobs/blake3/{hexpart[:2]}/{hexpart[2:4]}/{hexpart}"
        assert all_keys(s3_endpoint, store.bucket) == [key]  # no staging object left
        assert stored.uri == f"s3://{store.bucket}/{key}"
        assert store.url == f"s3://{store.bucket}/blobs"

    @pytest.mark.parametrize("with_expected", [False, True], ids=["staged", "direct"])
    def test_large_blob_goes_up_in_parts(
        self, s3_endpoint: str, bucket: str, with_expected: bool
    ) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB)
        data = os.urandom(13 * MiB)
        expected = hash_bytes(data) if with_expected else None
        stored = store.write(io.BytesIO(data), expected)
        assert stored.created
        with store.open(stored.hash) as reader:
            assert reader.read() == data
        assert all_keys(s3_endpoint, bucket) == [store.key(stored.hash.blake3)]
        if with_expected:  # uploaded straight to its key: the ETag counts the parts
            head = s3_client(s3_endpoint).head_object(
                Bucket=bucket, Key=store.key(stored.hash.blake3)
            )
            assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 3 MiB

    def test_mismatch_aborts_the_multipart_upload(self, s3_endpoint: str, bucket: str) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB)
        promised = hash_bytes(b"promised")
        with pytest.raises(IntegrityError, match=promised.content_address):
            store.write(io.BytesIO(os.urandom(12 * MiB)), promised)
        assert all_keys(s3_endpoint, bucket) == []
        assert open_uploads(s3_endpoint, bucket) == []

    @pytest.mark.parametrize("with_expected", [False, True], ids=["staged", "direct"])
    @pytest.mark.parametrize(
        "size", [5 * MiB, 10 * MiB, 23 * MiB], ids=["1part", "2parts", "5parts"]
    )
    def test_parts_round_trip(
        self, s3_endpoint: str, bucket: str, with_expected: bool, size: int
    ) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB, parts_in_flight=2)
        data = os.urandom(size)
        blob = hash_bytes(data)
        stored = store.write(io.BytesIO(data), blob if with_expected else None)
        assert stored.created
        assert stored.hash == blob
        with store.open(blob) as reader:
            assert reader.read() == data
        assert all_keys(s3_endpoint, bucket) == [store.key(blob.blake3)]
        assert open_uploads(s3_endpoint, bucket) == []
        if with_expected:  # uploaded straight to its key: the ETag tells how
            head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key=store.key(blob.blake3))
            parts = -(-size // (5 * MiB))  # no empty last part when the size is a multiple
            etag = head["ETag"].strip('"')
            assert etag.endswith(f"-{parts}") if parts > 1 else "-" not in etag  # one PUT

    @pytest.mark.parametrize("promise", ["blake3", "sha256"], ids=["direct", "staged"])
    def test_mismatch_found_after_every_part_is_up_leaves_nothing(
        self, s3_endpoint: str, bucket: str, promise: str
    ) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB, parts_in_flight=3)
        data = os.urandom(31 * MiB)  # seven parts
        forged = bytearray(data)
        forged[-1] ^= 0xFF  # only the last byte differs: found once every part is sent
        promised = hash_bytes(bytes(forged))
        expected = promised if promise == "blake3" else promised.sha256
        with pytest.raises(IntegrityError, match="refused to store"):
            store.write(io.BytesIO(data), expected)
        assert all_keys(s3_endpoint, bucket) == []  # neither the blob nor a staging object
        assert open_uploads(s3_endpoint, bucket) == []
        assert not store.exists(hash_bytes(data).blake3)
        assert not store.exists(promised.blake3)

    def test_parts_go_up_concurrently_within_the_limit(self, s3_endpoint: str, bucket: str) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB, parts_in_flight=3)
        active = peak = 0

        async def slow(**_: Any) -> None:  # an UploadPart starts: it takes at least 0.2 s
            nonlocal active, peak  # changed on the event loop's thread only
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.2)

        def done(**_: Any) -> None:
            nonlocal active
            active -= 1

        events = store.filesystem.s3.meta.events
        events.register("before-parameter-build.s3.UploadPart", slow)
        events.register("after-call.s3.UploadPart", done)
        data = os.urandom(40 * MiB)  # eight parts
        stored = store.write(io.BytesIO(data), hash_bytes(data))
        assert peak == 3
        with store.open(stored.hash) as reader:
            assert reader.read() == data

    @pytest.mark.parametrize("with_expected", [False, True], ids=["staged", "direct"])
    def test_a_failed_part_stops_the_write_and_aborts(
        self, s3_endpoint: str, bucket: str, with_expected: bool
    ) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB, parts_in_flight=2)

        def failing(params: dict[str, Any], **_: Any) -> None:  # before part 3 is sent
            if params["PartNumber"] == 3:
                error = {"Code": "InternalError", "Message": "part went missing"}
                meta = {"HTTPStatusCode": 500}
                raise ClientError({"Error": error, "ResponseMetadata": meta}, "UploadPart")

        store.filesystem.s3.meta.events.register("before-parameter-build.s3.UploadPart", failing)
        data = os.urandom(64 * MiB)
        source = io.BytesIO(data)
        with pytest.raises(BackendUnavailableError, match="part went missing") as caught:
            store.write(source, hash_bytes(data) if with_expected else None)
        assert s3_endpoint in str(caught.value)
        assert repr(bucket) in str(caught.value)
        assert isinstance(caught.value.__cause__, ClientError)
        assert source.tell() < len(data)  # stopped as soon as the failure was seen
        assert all_keys(s3_endpoint, bucket) == []
        assert open_uploads(s3_endpoint, bucket) == []

    def test_a_retried_part_is_sent_whole(self, s3_endpoint: str, bucket: str) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB)
        assert not store.exists(hash_bytes(b"connects").blake3)
        lost: list[int] = []

        def lose_the_first(request: Any, **_: Any) -> None:
            if not lost:  # the body is read to its end, then the connection drops
                lost.append(len(request.body.read()))
                raise ConnectionClosedError(endpoint_url=request.url)

        store.filesystem.s3.meta.events.register("before-send.s3.UploadPart", lose_the_first)
        data = os.urandom(12 * MiB)
        stored = store.write(io.BytesIO(data), hash_bytes(data))
        assert lost == [5 * MiB]  # botocore retried, rewinding the body first
        with store.open(stored.hash) as reader:
            assert reader.read() == data

    def test_sha256_only_expectation_is_checked_before_publishing(self, store: S3BlobStore) -> None:
        data = b"checked by sha256"
        wrong = hash_bytes(b"other").sha256
        with pytest.raises(IntegrityError, match=str(wrong)):
            store.write(io.BytesIO(data), wrong)
        assert list(store.iter_addresses()) == []
        assert list(store.iter_staging(datetime.now(UTC) + timedelta(hours=1))) == []
        assert store.write(io.BytesIO(data), hash_bytes(data).sha256).created

    def test_known_blob_with_expected_hash_is_not_uploaded_again(self, store: S3BlobStore) -> None:
        data = b"already there"
        store.write(io.BytesIO(data))
        second = store.write(io.BytesIO(data), hash_bytes(data))
        assert second.created is False
        with pytest.raises(IntegrityError):
            store.write(io.BytesIO(b"not it"), hash_bytes(data))

    @pytest.mark.parametrize("size", [1024, 12 * MiB], ids=["single-put", "multipart"])
    def test_create_only_write_yields_to_a_concurrent_writer(
        self, s3_endpoint: str, bucket: str, size: int
    ) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB)
        data = os.urandom(size)
        blob = hash_bytes(data)

        def other_writer() -> None:  # lands after our existence check, before our commit
            key = store.key(blob.blake3)
            s3_client(s3_endpoint).put_object(Bucket=bucket, Key=key, Body=data)

        stored = store.write(Trigger(data, at=1, action=other_writer), blob)
        assert stored.created is False  # If-None-Match: * answered 412
        assert open_uploads(s3_endpoint, bucket) == []
        with store.open(blob) as reader:
            assert reader.read() == data

    def test_without_conditional_writes(self, s3_endpoint: str, bucket: str) -> None:
        store = make_store(s3_endpoint, bucket, conditional_writes=False)
        data = b"for servers without If-None-Match"
        assert store.write(io.BytesIO(data), hash_bytes(data)).created
        assert store.write(io.BytesIO(data + b"!")).created
        assert store.write(io.BytesIO(data)).created is False

    def test_failing_source_leaves_nothing_behind(self, s3_endpoint: str, bucket: str) -> None:
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB)

        def explode() -> None:
            raise OSError("source disk went away")

        source = Trigger(os.urandom(16 * MiB), at=9 * MiB, action=explode)
        with pytest.raises(OSError, match="source disk went away"):  # not translated
            store.write(source)
        assert all_keys(s3_endpoint, bucket) == []
        assert open_uploads(s3_endpoint, bucket) == []

    def test_blob_over_the_copy_limit_is_copied_in_parts(
        self, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(s3_upload, "COPY_OBJECT_LIMIT", 1 * MiB)
        monkeypatch.setattr(s3_upload, "COPY_PART_SIZE", 5 * MiB)
        store = make_store(s3_endpoint, bucket, part_size=5 * MiB)
        data = os.urandom(11 * MiB)
        stored = store.write(io.BytesIO(data))
        with store.open(stored.hash) as reader:
            assert reader.read() == data
        assert all_keys(s3_endpoint, bucket) == [store.key(stored.hash.blake3)]

    def test_stale_staging_objects_are_listed_and_deleted(
        self, store: S3BlobStore, s3_endpoint: str
    ) -> None:
        stale = f"blobs/staging/{uuid.uuid4().hex}"
        s3_client(s3_endpoint).put_object(Bucket=store.bucket, Key=stale, Body=b"half")
        store.write(io.BytesIO(b"a real blob"))
        now = datetime.now(UTC)
        assert list(store.iter_staging(now - timedelta(hours=1))) == []
        assert list(store.iter_staging(now + timedelta(minutes=1))) == [stale]
        store.delete_staging(stale)
        assert list(store.iter_staging(now + timedelta(minutes=1))) == []
        assert len(list(store.iter_addresses())) == 1
        with pytest.raises(InvalidInputError, match="not a staging key"):
            store.delete_staging(store.key(hash_bytes(b"a real blob").blake3))
        with pytest.raises(InvalidInputError, match="timezone-aware"):
            list(store.iter_staging(datetime.now()))  # naive: refused


# --- configuration --------------------------------------------------------------------


def test_factory_builds_the_store_from_settings(s3_endpoint: str, bucket: str) -> None:
    settings = load_settings(
        s3_endpoint_url=s3_endpoint,
        s3_region=S3_TEST_REGION,
        s3_access_key_id=S3_TEST_ACCESS_KEY,
        s3_secret_access_key=S3_TEST_SECRET_KEY,
        s3_addressing_style="path",
    )
    store = open_blob_store(f"s3://{bucket}/some/prefix/", settings)
    assert isinstance(store, S3BlobStore)
    assert store.url == f"s3://{bucket}/some/prefix"
    stored = store.write(io.BytesIO(b"via settings"))
    assert stored.uri.startswith(f"s3://{bucket}/some/prefix/blake3/")


def test_unset_settings_fall_back_to_aws_variables(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ENDPOINT_URL", "REGION", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
        monkeypatch.delenv(f"ARTIFACTSTORE_S3_{name}", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_TEST_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_TEST_REGION)
    store = S3BlobStore.from_url(f"s3://{bucket}", load_settings(), **FAST)
    assert store.endpoint == s3_endpoint
    assert store.write(io.BytesIO(b"via AWS_*")).created


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://bucket/p?x=1", "gs://bucket"])
def test_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="s3://bucket/prefix"):
        S3BlobStore.from_url(url, load_settings())


def test_half_given_credentials_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="no secret access key"):
        S3BlobStore("bucket", access_key_id="only-the-id")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"part_size": 4 * MiB}, "part size must be at least 5 MiB"),
        ({"parts_in_flight": 0}, "parts_in_flight must be at least 1"),
        ({"read_timeout": 0}, "read_timeout must be more than 0 s, got 0"),
        ({"connect_timeout": -1}, "connect_timeout must be more than 0 s, got -1"),
    ],
)
def test_upload_options_are_checked(option: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        S3BlobStore("bucket", **option)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("S3_CONNECT_TIMEOUT", "0"),
        ("S3_READ_TIMEOUT", "-1"),
        ("S3_READ_TIMEOUT", "soon"),
        ("S3_MAX_ATTEMPTS", "0"),
        ("S3_MAX_ATTEMPTS", "11"),
    ],
)
def test_timeout_settings_are_validated(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(f"ARTIFACTSTORE_{variable}", value)
    with pytest.raises(ConfigurationError, match=f"ARTIFACTSTORE_{variable}: .*{value!r}"):
        load_settings()


def test_timeout_settings_reach_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONNECT_TIMEOUT", "READ_TIMEOUT", "MAX_ATTEMPTS"):
        monkeypatch.delenv(f"ARTIFACTSTORE_S3_{name}", raising=False)
    default = S3BlobStore.from_url("s3://bucket/p", load_settings())
    assert (default.connect_timeout, default.read_timeout, default.max_attempts) == (5, 30, 3)
    # 3 x (5 + 30) + backoff (1 + 2) for the request, 5 + 30 for the clean-up
    assert (default.request_bound, default.failure_bound) == (108, 143)
    monkeypatch.setenv("ARTIFACTSTORE_S3_READ_TIMEOUT", "7.5")
    monkeypatch.setenv("ARTIFACTSTORE_S3_MAX_ATTEMPTS", "5")
    store = S3BlobStore.from_url("s3://bucket/p", load_settings(), connect_timeout=2)
    config = store.filesystem.config_kwargs
    assert (config["connect_timeout"], config["read_timeout"]) == (2, 7.5)
    assert config["retries"] == {"mode": "standard", "total_max_attempts": 5}
    assert store.filesystem.retries == 1  # s3fs's own retry loop is off: attempts do not multiply
    assert store.request_bound == 5 * 9.5 + 1 + 2 + 4 + 8


def test_without_s3fs_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(MissingExtraError, match=r"artifact-store\[s3\]"):
        S3BlobStore("bucket")


# --- faults ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("with_expected", [False, True], ids=["staged", "direct"])
def test_server_killed_during_a_multipart_upload(with_expected: bool) -> None:
    with s3_server() as server:
        bucket = server.create_bucket("killed")
        store = make_store(server.endpoint_url, bucket, part_size=5 * MiB)
        # Killed once the first two parts have been handed over. The write reads ahead of
        # the uploads by at most the parts in flight, the part being filled and one hash
        # chunk (4 x 5 + 5 + 4 MiB past the 10 MiB mark), well short of the end.
        data = os.urandom(48 * MiB)
        expected = hash_bytes(data) if with_expected else None
        source = Trigger(data, at=10 * MiB, action=server.kill)
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as caught:
            store.write(source, expected)
        assert time.monotonic() - started < 20  # bounded retries
        message = str(caught.value)
        assert server.endpoint_url in message
        assert repr(bucket) in message
        assert caught.value.__cause__ is not None
        # The source was not read to its end: the upload was never completed.
        assert source.tell() < len(data)
    # moto keeps its state in memory, so what stays visible after a failure is checked
    # against a paused server below.


@pytest.mark.slow
def test_server_frozen_during_a_multipart_upload_leaves_nothing_visible() -> None:
    with s3_server() as server:
        bucket = server.create_bucket("frozen")
        # A stalled upload is cut once its body has not moved for the read timeout.
        store = make_store(
            server.endpoint_url, bucket, part_size=5 * MiB, read_timeout=1.0, max_attempts=1
        )
        data = os.urandom(24 * MiB)
        blob = hash_bytes(data)
        source = Trigger(data, at=10 * MiB, action=server.pause)
        try:
            with pytest.raises(BackendUnavailableError, match="did not answer in time") as caught:
                store.write(source, blob)  # straight to the final key: the riskier path
            assert server.endpoint_url in str(caught.value)
        finally:
            server.resume()
        checker = make_store(server.endpoint_url, bucket)
        deadline = time.monotonic() + 5
        while open_uploads(server.endpoint_url, bucket) and time.monotonic() < deadline:
            time.sleep(0.1)  # the server now answers the requests queued while frozen
        assert not checker.exists(blob.blake3)
        assert all_keys(server.endpoint_url, bucket) == []
        assert open_uploads(server.endpoint_url, bucket) == []


def test_connection_cut_during_a_read_is_an_error_not_short_data(
    s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(2 * MiB)
    stored = make_store(s3_endpoint, bucket).write(io.BytesIO(data))
    port = int(s3_endpoint.rsplit(":", 1)[1])
    with fault_proxy(port) as proxy:
        proxy.reset(after_bytes=256 * 1024, direction="down")
        through_proxy = make_store(proxy.endpoint_url, bucket)
        with (
            pytest.raises((BackendUnavailableError, IntegrityError)) as caught,
            through_proxy.open(stored.hash) as reader,
        ):
            reader.read()
        assert proxy.stats.resets > 0
    if isinstance(caught.value, BackendUnavailableError):
        assert proxy.endpoint_url in str(caught.value)
        assert repr(bucket) in str(caught.value)


def test_blob_changed_in_the_bucket_fails_the_read(store: S3BlobStore, s3_endpoint: str) -> None:
    data = os.urandom(64 * 1024)
    stored = store.write(io.BytesIO(data))
    forged = bytes([data[0] ^ 0xFF]) + data[1:]  # same size, one byte flipped
    s3_client(s3_endpoint).put_object(
        Bucket=store.bucket, Key=store.key(stored.hash.blake3), Body=forged
    )
    with pytest.raises(IntegrityError, match="corrupt"), store.open(stored.hash) as reader:
        reader.read()


def test_blob_replaced_while_being_read_fails_the_read(s3_endpoint: str, bucket: str) -> None:
    store = make_store(s3_endpoint, bucket, read_block_size=256 * 1024)
    data = os.urandom(2 * MiB)
    stored = store.write(io.BytesIO(data))
    with pytest.raises(IntegrityError), store.open(stored.hash) as reader:
        reader.read(64 * 1024)
        s3_client(s3_endpoint).put_object(
            Bucket=bucket, Key=store.key(stored.hash.blake3), Body=os.urandom(2 * MiB)
        )
        reader.read()


@pytest.mark.slow
def test_wrong_credentials_name_endpoint_and_bucket() -> None:
    with s3_server() as server:
        bucket = server.create_bucket("guarded")
        key_id, secret = server.create_credentials()
        server.enable_auth()
        # The real credentials work, so the refusals below come from checking them.
        good = make_store(
            server.endpoint_url, bucket, access_key_id=key_id, secret_access_key=secret
        )
        assert good.write(io.BytesIO(b"authorised")).created
        for wrong_id, wrong_secret in (
            (key_id, "not-the-secret"),
            ("AKIAUNKNOWNKEY000000", secret),
        ):
            store = make_store(
                server.endpoint_url,
                bucket,
                access_key_id=wrong_id,
                secret_access_key=wrong_secret,
            )
            with pytest.raises(BackendUnavailableError, match="refused access") as caught:
                store.exists(hash_bytes(b"authorised").blake3)
            assert server.endpoint_url in str(caught.value)
            assert repr(bucket) in str(caught.value)
            assert caught.value.__cause__ is not None


def test_missing_bucket_is_named(s3_endpoint: str) -> None:
    store = make_store(s3_endpoint, "no-such-bucket-here")
    for operation in (
        lambda: store.write(io.BytesIO(b"x")),
        lambda: store.exists(hash_bytes(b"x").blake3),
        lambda: list(store.iter_addresses()),
    ):
        with pytest.raises(ConfigurationError, match="'no-such-bucket-here' does not exist") as e:
            operation()
        assert s3_endpoint in str(e.value)


def test_a_closed_store_reconnects_when_used_again(store: S3BlobStore) -> None:
    stored = store.write(io.BytesIO(b"before close"))
    connected = store.filesystem
    store.close()
    store.close()  # twice is harmless
    assert store.filesystem is not connected  # the closed client is not reused
    assert store.exists(stored.hash.blake3)
    assert store.write(io.BytesIO(b"after close")).created


def test_missing_blob_is_an_integrity_failure(store: S3BlobStore) -> None:
    absent = hash_bytes(b"absent")
    with pytest.raises(MissingBlobError, match=str(absent.blake3)):
        store.open_raw(absent.blake3)
    assert store.delete(absent.blake3) is False


def test_nothing_listening_is_backend_unavailable() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = make_store(endpoint, "some-bucket")
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        store.write(io.BytesIO(b"nowhere to go"))
    assert time.monotonic() - started < 10  # retried, but a bounded number of times
    assert endpoint in str(caught.value)
    assert "'some-bucket'" in str(caught.value)
    assert caught.value.__cause__ is not None
