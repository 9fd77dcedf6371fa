"""`zcproxy demo`: quick defaults, fetching what is missing (local HTTP server), offline stop, Ctrl-C table."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from zcproxy import runner
from zcproxy.cli import build_parser, main
from zcproxy.cli import demo as demo_cli
from zcproxy.fetch import MANIFEST, Resource
from zcproxy.store import load


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_data(tmp_path, monkeypatch) -> Path:
    """No data anywhere: $ZCPROXY_DATA unset and the home cache moved to an empty folder."""
    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    monkeypatch.setattr("zcproxy._paths.DEFAULT_DIR", tmp_path / "home-cache")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "fresh"


def _cifar_tarball() -> bytes:
    rng = np.random.default_rng(0)
    files = {"batches.meta": {b"label_names": [f"c{i}".encode() for i in range(10)]}}
    for name, n in (("data_batch_1", 80), ("test_batch", 20)):
        files[name] = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                       b"labels": rng.integers(0, 10, n).tolist()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            blob = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path, data_dir, monkeypatch):
    """A local HTTP server with a test-written CIFAR-10 archive and the real NAS-RobBench-201 table."""
    served = tmp_path / "served"
    served.mkdir()
    archive = _cifar_tarball()
    (served / "cifar-10-python.tar.gz").write_bytes(archive)
    (served / "NAS-RobBench-201_html.json").symlink_to(data_dir / "nasrobbench201" / "NAS-RobBench-201_html.json")
    real = MANIFEST["cifar10"]
    monkeypatch.setitem(MANIFEST, "cifar10", Resource(real.name, real.url, real.target, real.description,
                                                      sha256=hashlib.sha256(archive).hexdigest(),
                                                      member=real.member, size=len(archive)))
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_quick_defaults_are_the_leaders_and_the_papers_ntk_on_at_least_30_archs():
    args = build_parser().parse_args(["demo"])
    archs, proxies, workers, threads = demo_cli.choices(args)
    assert {"ntk_clean", "ntk_robust", "meco"} <= set(proxies.split(",")) and len(proxies.split(",")) <= 6
    assert archs.startswith("sample:") and int(archs.split(":")[1]) >= demo_cli.SMALL_N
    assert threads == 1 and 1 <= workers <= 2
    full = demo_cli.choices(build_parser().parse_args(["demo", "--full"]))
    assert full[:2] == ("sample:50", "all")
    assert demo_cli.choices(build_parser().parse_args(["demo", "--full", "--archs", "1,2"]))[0] == "1,2"


@pytest.mark.data
def test_fresh_machine_fetches_what_the_demo_needs_then_scores(no_data, mirror, capsys):
    base, requests = mirror
    code, out, err = _cli(capsys, "demo", "--data-dir", no_data, "--base-url", base, "--archs", "sample:3",
                          "--proxies", "params,meco", "--workers", "1", "--quiet")
    assert code == 0, err
    assert sorted(requests) == ["/NAS-RobBench-201_html.json", "/cifar-10-python.tar.gz"]
    assert "cifar10, nasrobbench201 not found in" in err and "fetching them now" in err
    assert "cifar10" in err and "%" in err  # the progress bars
    assert (no_data / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert "Kendall tau-b" in out and "meco" in out and "params" in out
    assert "warning: only 3 architectures" in out and "intervals are wide" in out
    assert "stages: data" in out and "scoring" in out and "correlation" in out
    requests.clear()
    code, out, err = _cli(capsys, "demo", "--data-dir", no_data, "--base-url", base, "--archs", "sample:3",
                          "--proxies", "params,meco", "--workers", "1", "--quiet")
    assert code == 0 and requests == [] and "fetching" not in err and "3 already in the store" in out


def test_offline_demo_stops_at_once_with_the_fetch_command(no_data, capsys):
    start = time.perf_counter()
    code, out, err = _cli(capsys, "demo", "--data-dir", no_data, "--base-url", "http://127.0.0.1:9", "--quiet")
    assert code == 2 and time.perf_counter() - start < 15
    assert f"zcproxy fetch --only cifar10,nasrobbench201 --dest {no_data}" in err and "cannot be reached" in err
    assert not Path("runs").exists() and not no_data.exists() and "scoring" not in out


@pytest.mark.data
def test_ctrl_c_prints_the_table_of_what_is_done(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real_run = runner.run

    def interrupted_run(archs, *args, **kwargs):
        real_run(archs[:4], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted_run)
    code, out, err = _cli(capsys, "demo", "--data-dir", data_dir, "--archs", "sample:10", "--proxies", "params",
                          "--workers", "1", "--quiet")
    assert code == 130
    assert "interrupted" in err and "finished so far" in err
    assert "over 4 archs" in out and "params" in out and "warning: only 4 architectures" in out
    assert len(load(tmp_path / "runs" / "demo.sqlite")) == 4
