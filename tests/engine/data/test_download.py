"""Downloads: checksums, caching and offline errors, with a fake fetcher (never the network)."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest

from engine.data import download
from engine.data.dataset import DatasetError
from engine.data.download import SOURCES, download_dataset, file_md5

FILES = {"one.gz": b"first file", "two.gz": b"second file" * 1000}


class FakeServer:
    """Serves FILES (or a damaged copy) and counts requests."""

    def __init__(self, damaged: bool = False, offline: bool = False):
        self.requests: list[str] = []
        self.damaged = damaged
        self.offline = offline

    def __call__(self, url, out, progress):
        self.requests.append(url)
        if self.offline:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        body = FILES[url.rsplit("/", 1)[1]]
        if self.damaged:
            body = body[:-1] + b"!"
        half = len(body) // 2
        out.write(body[:half])
        if progress:
            progress(half, len(body))
        out.write(body[half:])
        if progress:
            progress(len(body), len(body))


@pytest.fixture
def fake_source(monkeypatch):
    md5s = tuple((name, hashlib.md5(data).hexdigest()) for name, data in FILES.items())
    monkeypatch.setitem(SOURCES, "mnist", ("https://example.invalid/mnist/", md5s))


def test_downloads_then_uses_the_cache(tmp_path, fake_source):
    server = FakeServer()
    seen = []
    folder = download_dataset("mnist", tmp_path, fetch=server, progress=lambda d, t: seen.append((d, t)))
    assert folder == tmp_path / "mnist"
    assert server.requests == ["https://example.invalid/mnist/one.gz", "https://example.invalid/mnist/two.gz"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES  # and no temp files
    assert seen[-1] == (len(FILES["two.gz"]), len(FILES["two.gz"]))
    download_dataset("mnist", tmp_path, fetch=server)
    assert len(server.requests) == 2  # both cached files matched their checksums


def test_damaged_cache_file_is_downloaded_again(tmp_path, fake_source):
    server = FakeServer()
    download_dataset("mnist", tmp_path, fetch=server)
    (tmp_path / "mnist" / "two.gz").write_bytes(b"half a file")
    download_dataset("mnist", tmp_path, fetch=server)
    assert server.requests[2:] == ["https://example.invalid/mnist/two.gz"]
    assert (tmp_path / "mnist" / "two.gz").read_bytes() == FILES["two.gz"]


def test_checksum_mismatch_keeps_nothing(tmp_path, fake_source):
    with pytest.raises(DatasetError, match="MD5"):
        download_dataset("mnist", tmp_path, fetch=FakeServer(damaged=True))
    assert list((tmp_path / "mnist").iterdir()) == []


def test_offline_error_says_what_to_do(tmp_path, fake_source):
    with pytest.raises(DatasetError) as err:
        download_dataset("mnist", tmp_path, fetch=FakeServer(offline=True))
    message = str(err.value)
    assert "could not download https://example.invalid/mnist/one.gz" in message
    assert "name resolution" in message and "offline" in message and "--path" in message
    assert list((tmp_path / "mnist").iterdir()) == []


def test_default_fetcher_can_be_monkeypatched(tmp_path, fake_source, monkeypatch):
    server = FakeServer()
    monkeypatch.setattr(download, "fetch_url", server)
    download_dataset("mnist", tmp_path)
    assert len(server.requests) == 2


def test_single_file_dataset_returns_the_file(tmp_path, monkeypatch):
    body = b"pretend tarball"
    monkeypatch.setitem(SOURCES, "cifar10", ("https://example.invalid/", (("c.tar.gz", hashlib.md5(body).hexdigest()),)))
    path = download_dataset("cifar10", tmp_path, fetch=lambda url, out, progress: out.write(body))
    assert path == tmp_path / "cifar10" / "c.tar.gz" and path.read_bytes() == body


def test_unknown_dataset(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset"):
        download_dataset("imagenet", tmp_path)


def test_file_md5(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_md5(tmp_path / "f") == "900150983cd24fb0d6963f7d28e17f72"  # RFC 1321 test suite


def test_official_sources_use_the_published_locations():
    assert SOURCES["mnist"][0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert SOURCES["fashion-mnist"][0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert SOURCES["cifar10"][0] + SOURCES["cifar10"][1][0][0] == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    for _, files in SOURCES.values():
        assert all(len(md5) == 32 and int(md5, 16) >= 0 for _, md5 in files)
