"""benchmarks/_report.py and the scripts writing through it: a csv beside a markdown report that names its
command and machine, and the float32-vs-float64 precision the README states."""
from __future__ import annotations

import pandas as pd
import pytest
import torch


@pytest.fixture(scope="module")
def report(benchmark_script):
    return benchmark_script("_report")


def test_write_report_keeps_every_value_and_creates_the_folder(report, tmp_path):
    table = pd.DataFrame({"arch": [3, 102], "seconds": [0.1 + 0.2, 1e-300], "method": ["frozen", "batch, NCHW"]})
    csv_path, md_path = report.write_report(table, tmp_path / "deep" / "er" / "speed", ["# Title", "", "body", "", ""])
    assert (csv_path.name, md_path.name) == ("speed.csv", "speed.md")
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), table)
    assert md_path.read_text() == "# Title\n\nbody\n"


def test_provenance_names_the_command_torch_and_threads(report):
    one = report.provenance("benchmarks/x.py --n 4", 1)
    two = report.provenance("benchmarks/x.py --n 4", 2)
    assert "`benchmarks/x.py --n 4`" in one and f"torch {torch.__version__}" in one
    assert "1 thread," in one and "2 threads," in two
    assert "load average" in one and one.startswith("Generated ") and " UTC " in one


def test_float32_jacobians_stay_close_to_float64(benchmark_script, data_dir, tmp_path, monkeypatch, capsys):
    """The README's claim: float32 rows move the kernel and lambda_min far less than architectures differ."""
    monkeypatch.setenv("ZCPROXY_DATA", str(data_dir))
    precision = benchmark_script("ntk_precision")
    assert precision.main(["--n", "4", "--out", str(tmp_path / "precision")]) == 0
    table = pd.read_csv(tmp_path / "precision.csv")
    assert sorted(zip(table.arch, table.bn)) == sorted((a, b) for a in precision.ARCHS for b in ("frozen", "batch"))
    # README (N = 64): kernel within 2.3 %, lambda_min within 0.31 %; lambda_min differs by 10x across archs
    assert (table.kernel_err_frobenius_rel < 0.03).all() and (table.lambda_min_err_rel < 0.01).all()
    assert (table.row_err_max_rel > 0).all(), "float32 and float64 rows coincide: the float64 path is not float64"
    text = (tmp_path / "precision.md").read_text()
    assert "`benchmarks/ntk_precision.py --threads 1 --n 4 --seed 0`" in text and "| worst_param" in text


def test_speed_report_only_without_a_csv_says_what_to_do(benchmark_script, tmp_path, capsys):
    speed = benchmark_script("ntk_speed")
    with pytest.raises(SystemExit) as stop:
        speed.main(["--report-only", "--out", str(tmp_path / "none")])
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert "none.csv" in message and "does not exist" in message and "without --report-only" in message


def test_allocator_report_is_the_medians_of_its_rounds(benchmark_script):
    import pandas as pd

    allocator = benchmark_script("allocator")
    rows = [{"round": r, "config": c, "arch": 13714, "batch": 64, "load1": 1.0, "seconds": s * (1 + r),
             "fb_seconds": f, "peak_mb": m}
            for r in range(3) for c, s, f, m in (("glibc default", 10.0, 0.5, 2000.0),
                                                 ("low memory (128 KiB)", 20.0, 1.5, 1300.0),
                                                 ("2 MiB", 15.0, 1.0, 1500.0), ("4 MiB", 12.0, 0.6, 1600.0))]
    text = "\n".join(allocator.report(pd.DataFrame(rows), "cmd"))
    line = next(l for l in text.splitlines() if l.startswith("| low memory"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:] == ["40", "1.5", "26.7", "2", "1300"]  # median of 20, 40, 60; 40 / 1.5; 40 / 20
    assert "slows the forward+backward itself 3.0× and the 23 proxies 2.0×" in text
