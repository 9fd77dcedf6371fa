"""Tests of zcproxy.fetch and `zcproxy fetch` against a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import pytest

from zcproxy.cli import main
from zcproxy.errors import DataFormatError, DataNotFoundError
from zcproxy.fetch import DEFAULT, MANIFEST, Resource, fetch


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):  # noqa: N802 - http.server API
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/'served' over HTTP; yields (base_url, served_dir, request_log)."""
    served = tmp_path / "served"
    served.mkdir()
    log: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": log})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served, log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def fixtures(server):
    """Fixture files on the server and a manifest with their true checksums (URLs on a dummy host)."""
    base, served, log = server
    table = b'acc={"": []}\n'
    archive = _tar_gz({"pack/a.txt": b"alpha", "pack/sub/b.txt": b"beta", "README": b"top"})
    bundle = _zip({"release/meta.json": b'{"ids": {}}'})
    for name, content in (("table.json", table), ("pack.tar.gz", archive), ("meta.zip", bundle)):
        (served / name).write_bytes(content)
    manifest = {
        "table": Resource("table", "https://nowhere.invalid/files/table.json", "bench/table.json", "a table",
                          sha256=_sha256(table), md5=hashlib.md5(table).hexdigest()),
        "pack": Resource("pack", "https://nowhere.invalid/pack.tar.gz", "pack", "an archive",
                         sha256=_sha256(archive), member="pack"),
        "meta": Resource("meta", "https://nowhere.invalid/meta.zip", "bench/meta.json", "a zip", member="meta.json"),
    }
    return base, manifest, log, {"table": table}


def test_downloads_verify_and_extract(tmp_path, fixtures):
    base, manifest, log, contents = fixtures
    dest = tmp_path / "data"
    messages: list[str] = []
    results = fetch(["table", "pack", "meta"], dest=dest, base_url=base, manifest=manifest, log=messages.append)
    assert [r.status for r in results] == ["downloaded"] * 3
    assert (dest / "bench" / "table.json").read_bytes() == contents["table"]
    assert results[0].sha256 == _sha256(contents["table"])
    assert (dest / "pack" / "a.txt").read_text() == "alpha"
    assert (dest / "pack" / "sub" / "b.txt").read_text() == "beta"
    assert not (dest / "README").exists()  # only the named member is moved into place
    assert (dest / "bench" / "meta.json").read_text() == '{"ids": {}}'
    assert any("no published checksum" in m and results[2].sha256 in m for m in messages)
    assert sorted(log) == ["/meta.zip", "/pack.tar.gz", "/table.json"]
    assert [p.name for p in dest.rglob("*") if p.name.startswith(".")] == []  # no temp files left


def test_present_targets_are_skipped_unless_forced(tmp_path, fixtures):
    base, manifest, log, contents = fixtures
    dest = tmp_path / "data"
    fetch(["table", "pack"], dest=dest, base_url=base, manifest=manifest, log=None)
    (dest / "pack" / "a.txt").write_text("edited")
    again = fetch(["table", "pack"], dest=dest, base_url=base, manifest=manifest, log=None)
    assert [r.status for r in again] == ["present", "present"]
    assert len(log) == 2
    forced = fetch(["pack"], dest=dest, base_url=base, manifest=manifest, force=True, log=None)
    assert forced[0].status == "downloaded" and len(log) == 3
    assert (dest / "pack" / "a.txt").read_text() == "alpha"


@pytest.mark.parametrize("field", ["sha256", "md5"])
def test_checksum_mismatch_deletes_the_download(tmp_path, fixtures, field):
    base, manifest, _, contents = fixtures
    good = manifest["table"]
    wrong = "0" * (64 if field == "sha256" else 32)
    bad = Resource(good.name, good.url, good.target, good.description,
                   sha256=wrong if field == "sha256" else None, md5=wrong if field == "md5" else None)
    dest = tmp_path / "data"
    with pytest.raises(DataFormatError) as info:
        fetch(["table"], dest=dest, base_url=base, manifest={"table": bad}, log=None)
    message = str(info.value)
    got = _sha256(contents["table"]) if field == "sha256" else hashlib.md5(contents["table"]).hexdigest()
    assert "table" in message and f"expected {field} {wrong}" in message and f"got {got}" in message
    assert not (dest / "bench" / "table.json").exists()
    assert list((dest / "bench").iterdir()) == []


def test_http_404_names_the_url(tmp_path, fixtures):
    base, _, _, _ = fixtures
    missing = Resource("gone", f"{base}/absent.json", "gone.json", "missing", sha256="0" * 64)
    with pytest.raises(DataNotFoundError, match=r"could not download gone from http://127\.0\.0\.1:\d+/absent\.json: "
                                                r"HTTP 404"):
        fetch(["gone"], dest=tmp_path / "data", manifest={"gone": missing}, log=None)
    assert not (tmp_path / "data" / "gone.json").exists()


def test_unreachable_host(tmp_path):
    closed = Resource("x", "http://127.0.0.1:9/x.json", "x.json", "nothing listens on port 9", sha256="0" * 64)
    with pytest.raises(DataNotFoundError, match="could not download x from http://127.0.0.1:9/x.json"):
        fetch(["x"], dest=tmp_path, manifest={"x": closed}, log=None)


def test_broken_and_unsafe_archives(tmp_path, server):
    base, served, _ = server
    (served / "broken.tar.gz").write_bytes(b"not a tar at all")
    evil = _tar_gz({"../evil.txt": b"x"})
    (served / "evil.tar.gz").write_bytes(evil)
    manifest = {
        "broken": Resource("broken", f"{base}/broken.tar.gz", "broken", "bad",
                           sha256=_sha256(b"not a tar at all")),
        "evil": Resource("evil", f"{base}/evil.tar.gz", "evil", "path traversal", sha256=_sha256(evil)),
    }
    with pytest.raises(DataFormatError, match="broken: the downloaded archive is broken"):
        fetch(["broken"], dest=tmp_path / "d", manifest=manifest, log=None)
    with pytest.raises(DataFormatError, match="evil"):
        fetch(["evil"], dest=tmp_path / "d", manifest=manifest, log=None)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil").exists()


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data name"):
        fetch(["imagenet-full"], log=None)


def test_manifest_is_consistent():
    assert set(DEFAULT) <= set(MANIFEST) and "cifar100" not in DEFAULT
    for name, resource in MANIFEST.items():
        assert resource.name == name
        assert resource.url.startswith(("https://", "http://"))
        if resource.sha256:
            assert len(resource.sha256) == 64 and int(resource.sha256, 16) >= 0
    assert MANIFEST["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert MANIFEST["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"


# ----------------------------------------------------------------------------------------------------- CLI


def test_cli_list(capsys):
    assert main(["fetch", "--list"]) == 0
    out = capsys.readouterr().out
    for name in MANIFEST:
        assert name in out


def test_cli_unknown_name(capsys):
    assert main(["fetch", "--only", "nope"]) == 2
    assert "unknown name" in capsys.readouterr().err


def test_cli_reports_partial_failure(tmp_path, server, capsys):
    base, served, _ = server
    (served / "NasBenchID_6466_idx.txt").write_text("0 1 2")  # not the pinned file: checksum must fail
    code = main(["fetch", "--dest", str(tmp_path / "d"), "--only", "nasrobbench201-ids", "--base-url", base])
    captured = capsys.readouterr()
    assert code == 1
    assert "checksum mismatch for nasrobbench201-ids" in captured.err
    assert "0 of 1 file(s)" in captured.out


@pytest.mark.data
def test_cli_verifies_the_pinned_checksums_of_the_real_files(tmp_path, server, data_dir, capsys):
    base, served, _ = server
    copies = {"NAS-RobBench-201_html.json": data_dir / "nasrobbench201" / "NAS-RobBench-201_html.json",
              "NasBenchID_6466_idx.txt": data_dir / "nasrobbench201" / "NasBenchID_6466_idx.txt",
              "nats_bench.csv": data_dir / "nasbench201" / "nb201_200ep_test_accuracy.csv"}
    for name, source in copies.items():
        (served / name).symlink_to(source)
    dest = tmp_path / "d"
    code = main(["fetch", "--dest", str(dest), "--only", "nasrobbench201,nasrobbench201-ids,nb201",
                 "--base-url", base])
    assert code == 0, capsys.readouterr().err
    for resource in ("nasrobbench201", "nasrobbench201-ids", "nb201"):
        target = dest / MANIFEST[resource].target
        assert _sha256(target.read_bytes()) == MANIFEST[resource].sha256
        assert target.stat().st_size == MANIFEST[resource].size


# ------------------------------------------------------------------------------------- pinned meta.json, ensure


def test_meta_json_is_pinned_like_the_other_files(capsys):
    meta = MANIFEST["nasrobbench201-meta"]
    assert meta.member_sha256 == "54b6d2c2780cfb63de98e9d67e72db9cb0c02be426191d429dbe02c898d4577e"
    assert all(r.checksum != "none" for r in MANIFEST.values())
    assert main(["fetch", "--list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("nasrobbench201-meta"))
    assert "sha256 of meta.json" in line and "none" not in line


def test_archive_member_checksum_is_verified(tmp_path, fixtures):
    base, manifest, _, _ = fixtures
    good = Resource("meta", "https://nowhere.invalid/meta.zip", "bench/meta.json", "a zip", member="meta.json",
                    member_sha256=_sha256(b'{"ids": {}}'))
    messages: list[str] = []
    fetch(["meta"], dest=tmp_path / "a", base_url=base, manifest={"meta": good}, log=messages.append)
    assert (tmp_path / "a" / "bench" / "meta.json").read_text() == '{"ids": {}}'
    assert not any("no published checksum" in m for m in messages)
    bad = Resource("meta", good.url, good.target, "a zip", member="meta.json", member_sha256="0" * 64)
    with pytest.raises(DataFormatError, match=r"checksum mismatch for meta: meta\.json .*sha256 0{64}, got "
                                              + _sha256(b'{"ids": {}}')):
        fetch(["meta"], dest=tmp_path / "b", base_url=base, manifest={"meta": bad}, log=None)
    assert not (tmp_path / "b" / "bench" / "meta.json").exists()
    assert [p for p in (tmp_path / "b").rglob("*") if p.is_file()] == []


@pytest.mark.data
def test_real_meta_json_passes_its_pin(tmp_path, server, data_dir):
    base, served, _ = server
    (served / "meta.zip").write_bytes(_zip({"meta.json": (data_dir / "nasrobbench201" / "meta.json").read_bytes()}))
    fetch(["nasrobbench201-meta"], dest=tmp_path, base_url=base, log=None)
    assert _sha256((tmp_path / "nasrobbench201" / "meta.json").read_bytes()) == MANIFEST["nasrobbench201-meta"].member_sha256


def test_ensure_fetches_only_what_is_missing_with_a_progress_bar(tmp_path, fixtures, monkeypatch, capsys):
    from zcproxy import fetch as fetch_module

    base, manifest, log, contents = fixtures
    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    monkeypatch.setattr("zcproxy._paths.DEFAULT_DIR", tmp_path / "home-cache")
    dest = tmp_path / "data"
    (dest / "bench").mkdir(parents=True)
    (dest / "bench" / "table.json").write_bytes(contents["table"])
    assert fetch_module.missing(["table", "pack"], dest, manifest=manifest) == ["pack"]
    messages: list[str] = []
    results = fetch_module.ensure(["table", "pack"], dest, base_url=base, manifest=manifest, log=messages.append)
    assert [(r.name, r.status) for r in results] == [("pack", "downloaded")] and log == ["/pack.tar.gz"]
    assert any("pack not found in" in m and "fetching it now" in m and "zcproxy fetch --only pack" in m
               for m in messages)
    assert "pack" in capsys.readouterr().err  # the tqdm bar, labelled with the name
    assert fetch_module.ensure(["table", "pack"], dest, base_url=base, manifest=manifest, log=None) == []


def test_ensure_offline_stops_at_once_with_the_command(tmp_path, monkeypatch):
    import time

    from zcproxy import fetch as fetch_module

    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    monkeypatch.setattr("zcproxy._paths.DEFAULT_DIR", tmp_path / "home-cache")
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as info:
        fetch_module.ensure(["cifar10", "nasrobbench201"], tmp_path / "d", base_url="http://127.0.0.1:9", log=None)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "cifar10, nasrobbench201 are missing" in message and "cannot be reached" in message
    assert f"zcproxy fetch --only cifar10,nasrobbench201 --dest {tmp_path / 'd'} --base-url http://127.0.0.1:9" \
        in message
    assert not (tmp_path / "d").exists()
