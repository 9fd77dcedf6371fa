"""Property-based tests of every parser of user input: only zcproxy's own errors (or argparse's usage exit) escape.

Arch strings, indices and keys (``NB201.key``), ``--archs`` selections, ``--option`` / ``--setting`` values,
``zcproxy fetch`` names and mirror URLs, and the command line as a whole.
"""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zcproxy.cli import build_parser, main
from zcproxy.cli._args import assignment, parse_value
from zcproxy.errors import ZcproxyError
from zcproxy.fetch import MANIFEST, ensure, fetch, missing
from zcproxy.space import NB201, get_space
from zcproxy.space.selection import select_archs

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OPS = list(NB201.ops)
TOKENS = OPS + ["", "~", "|", "+", "~0", "~1", "~2", "~3", "conv", " ", "\n", "nor_conv_3x3~0"]

# Arch-string-like text: the real grammar's pieces in random order, plus arbitrary text.
arch_like = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=20).map("".join),
    st.builds(lambda ops, seps: "+".join("|" + "|".join(f"{o}~{s}" for o, s in zip(ops[i:i + n], seps)) + "|"
                                         for i, n in ((0, 1), (1, 2), (3, 3))),
              st.lists(st.sampled_from(OPS + ["bad_op", ""]), min_size=6, max_size=6),
              st.lists(st.integers(-1, 3), min_size=3, max_size=3)),
    st.text(max_size=60),
)
any_key = st.one_of(arch_like, st.integers(-10**30, 10**30), st.floats(allow_nan=True), st.none(), st.booleans(),
                    st.lists(st.sampled_from(OPS), max_size=8), st.binary(max_size=8))


@FAST
@given(any_key)
def test_nb201_key_accepts_or_raises_space_error(value):
    try:
        key = NB201.key(value)
    except ZcproxyError:
        return
    assert key.isdigit() and 0 <= int(key) < NB201.size()


@FAST
@given(st.integers(0, 15624))
def test_index_arch_string_and_key_round_trip(index):
    arch = NB201.arch(index)
    assert NB201.key(arch) == NB201.key(index) == NB201.key(str(index)) == NB201.key(f" {index} ") == str(index)
    assert NB201.index(arch) == index


@FAST
@given(st.one_of(arch_like, st.lists(st.one_of(st.integers(-5, 20000).map(str), arch_like,
                                               st.sampled_from(["all", "unique", "sample:", "sample:x", "sample:0",
                                                                "sample:99999", "quantiles:3", "truth", "quantiles:",
                                                                "sample:-1"])),
                                     max_size=4).map(",".join)))
def test_archs_selection_accepts_or_raises_space_error(spec):
    assume("/" not in spec and "\\" not in spec and not spec.strip().endswith((".txt", ".csv")))  # no file reads
    try:
        keys = select_archs(spec, get_space("nb201"), seed=0)
    except ZcproxyError:
        return
    assert keys and all(k.isdigit() and 0 <= int(k) < NB201.size() for k in keys)


def test_archs_selection_with_an_unknown_tilde_user_raises_space_error():
    with pytest.raises(ZcproxyError):
        select_archs("~nosuchuser0", get_space("nb201"), seed=0)


@FAST
@given(st.text(max_size=40))
def test_option_values_always_parse(text):
    value = parse_value(text)
    assert value is None or isinstance(value, (bool, int, float, str))


@FAST
@given(st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False)))
def test_option_numbers_round_trip(number):
    assert parse_value(str(number)) == number


@FAST
@given(st.integers(-1000, 1000), st.integers(1, 1000))
def test_option_fractions(numerator, denominator):
    assert parse_value(f"{numerator}/{denominator}") == pytest.approx(numerator / denominator)


@FAST
@given(st.text(max_size=40))
def test_option_flag_parses_or_exits_with_usage_error(text):
    parser = build_parser()
    try:
        args = parser.parse_args(["score", "--archs", "0", "--store", "s.sqlite", "--option", text])
    except SystemExit as exc:
        assert exc.code == 2
        return
    ((key, value),) = args.option
    assert key and key == key.strip() and "=" in text


names = st.one_of(st.sampled_from(list(MANIFEST)), st.text(max_size=12), st.integers(), st.none())


@FAST
@given(st.one_of(st.lists(names, max_size=4), st.text(max_size=12)))
def test_fetch_names_are_checked_before_anything_is_written(tmp_path_factory, wanted):
    dest = tmp_path_factory.mktemp("dest")
    try:
        result = missing(wanted, dest)
    except ZcproxyError:
        assert not isinstance(wanted, list) or any(n not in MANIFEST for n in wanted)
        with pytest.raises(ZcproxyError):
            fetch(wanted, dest=dest, log=None)
        with pytest.raises(ZcproxyError):
            ensure(wanted, dest, log=None)
        assert list(dest.iterdir()) == []
        return
    assert all(n in wanted for n in result) and result == [n for n in wanted if n in result]  # present ones dropped


@FAST
@given(st.text(max_size=40).filter(lambda t: not t.lower().startswith(("http://", "https://"))))
def test_mirror_urls_that_are_not_http_are_refused(tmp_path_factory, base_url):
    dest = tmp_path_factory.mktemp("dest")
    with pytest.raises(ZcproxyError, match="--base-url"):
        fetch(["nasrobbench201-ids"], dest=dest, base_url=base_url, log=None)
    with pytest.raises(ZcproxyError, match="--base-url"):
        ensure(["nasrobbench201-ids"], dest, base_url=base_url, log=None)
    assert list(dest.iterdir()) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=string.printable, max_size=12))
def test_broken_local_mirror_urls_fail_as_data_errors(tmp_path_factory, tail):
    dest = tmp_path_factory.mktemp("dest")
    try:
        fetch(["nasrobbench201-ids"], dest=dest, base_url=f"http://127.0.0.1:9/{tail}", log=None)
    except ZcproxyError:
        pass
    assert not (dest / MANIFEST["nasrobbench201-ids"].target).exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["fetch --only", "fetch --base-url", "fetch --dest", "score --archs", "score --option",
                        "export --setting", "export --out", "score --shard", "score --dataset", "score --batch",
                        "score --proxies", "score --data-dir", "merge OUT"]),
       st.text(max_size=30))
def test_command_line_never_shows_a_traceback(tmp_path_factory, capsys, flag, value):
    command, option = flag.split()
    folder = tmp_path_factory.mktemp("cli")
    assume(not (command == "fetch" and option == "--only" and value.strip()
                and all(n.strip() in MANIFEST for n in value.split(",") if n.strip())))  # would download
    assume("/" not in value and "\\" not in value)
    store = str(folder / "s.sqlite")
    argv = {"fetch": ["fetch", "--dest", str(folder / "d"), "--only", "nope", "--base-url", "http://127.0.0.1:9"],
            "score": ["score", "--archs", "0", "--proxies", "params", "--store", store, "--quiet"],
            "export": ["export", "--store", store, "--out", str(folder / "o.csv")],
            "merge": ["merge", "OUT", str(folder / "absent.sqlite")]}[command]
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    capsys.readouterr()
    assert code in (0, 1, 2)


@pytest.mark.parametrize("argv", [["fetch", "--dest", "~nosuchuser0/data", "--only", "nb201"],
                                  ["export", "--store", "s.sqlite", "--out", "~nosuchuser0/x.csv"],
                                  ["merge", "~nosuchuser0/out.sqlite", "in.sqlite"],
                                  ["demo", "--data-dir", "~nosuchuser0", "--quiet"]])
def test_unknown_tilde_user_in_a_path_is_a_usage_error(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "~nosuchuser0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
