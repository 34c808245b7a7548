"""Adversarial: ``scaleinv report --out DIR`` never loses a file it was not given.

Each case builds into a folder that holds something (user files, a changed report, links, a
read-only part, another build, a killed build) and asserts the one-line error or the success,
and that nothing outside the output folder changed (a checksum of the surroundings).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaleinv.cli.main import main
from scaleinv.errors import ScaleinvError
from scaleinv.reports import build

MINI = """\
title = "mini"
[problem]
inputs = ["x0"]
outputs = ["x0**2"]
[run]
starts = [[1.5]]
steps = 2
[[rules]]
name = "gd"
"""
CLI = "from scaleinv.cli.main import main; import sys; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def place(tmp_path) -> Path:
    """A folder with a spec, a user's own files around the output folder, and nothing else."""
    (tmp_path / "mini.toml").write_text(MINI)
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("my thesis\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    return tmp_path


def _checksum(root: Path, skip: str) -> dict[str, str]:
    """Every entry under ``root`` but ``skip`` (the output folder): type and content hash."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == skip or rel.startswith(skip + "/"):
            continue
        if path.is_symlink():
            found[rel] = "link " + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _strays(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".*") if ".building-" in p.name or ".old-" in p.name)


def _cli(place: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", CLI, "report", "mini.toml", *args]
    return subprocess.run(command, cwd=place, capture_output=True, text=True, timeout=600, **kw)


def _one_line_error(err: str, match: str) -> None:
    lines = [ln for ln in err.splitlines() if not ln.startswith(("scaleinv report", "  "))]
    assert len(lines) == 1 and lines[0].startswith("scaleinv: error: "), err
    assert match in lines[0], err


def _refused(place: Path, out: str, match: str, capsys) -> None:
    """The build is refused in one line, before any work, and touches nothing at all."""
    before = _checksum(place, "")
    assert main(["report", str(place / "mini.toml"), "--out", str(place / out), "--no-pdf"]) == 2
    err = capsys.readouterr().err
    _one_line_error(err, match)
    assert "derive" not in err  # refused before any work
    assert _checksum(place, "") == before and not _strays(place)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One report of MINI, built once; tests start from copies of it."""
    folder = tmp_path_factory.mktemp("template")
    (folder / "mini.toml").write_text(MINI)
    return build(folder / "mini.toml", folder / "out", pdf=False).out_dir


@pytest.fixture
def out(place, template) -> Path:
    """``place/out``: an earlier report exactly as scaleinv wrote it (a copy of the template)."""
    shutil.copytree(template, place / "out", symlinks=True)
    return place / "out"


def _report(place: Path, out: str = "out") -> Path:
    build(place / "mini.toml", place / out, pdf=False)
    return place / out


# -- what a folder may hold -----------------------------------------------------------------


def test_a_user_file_beside_a_report_is_never_deleted(place, out, capsys) -> None:
    (out / "thesis.txt").write_text("mine\n")
    _refused(place, "out", "did not write (thesis.txt)", capsys)


def test_a_user_folder_inside_a_report_is_never_deleted(place, out, capsys) -> None:
    (out / "chapters").mkdir()
    (out / "chapters" / "one.tex").write_text("mine\n")
    _refused(place, "out", "did not write (chapters", capsys)


def test_a_user_file_among_the_figures_is_never_deleted(place, out, capsys) -> None:
    (out / "figures" / "mine.png").write_bytes(b"\x89PNG mine")
    _refused(place, "out", "figures/mine.png", capsys)


def test_an_empty_user_folder_inside_a_report_is_kept(place, out, capsys) -> None:
    (out / "empty").mkdir()
    _refused(place, "out", "did not write (empty)", capsys)


def test_a_folder_with_report_tex_but_no_manifest_is_refused(place, capsys) -> None:
    """The old recognition (a ``report.tex``) deleted everything else in the folder."""
    out = place / "out"
    out.mkdir()
    (out / "report.tex").write_text("\\documentclass{article}\n")
    (out / "thesis.txt").write_text("mine\n")
    (out / "chapters").mkdir()
    (out / "chapters" / "one.tex").write_text("mine\n")
    _refused(place, "out", "no MANIFEST.json", capsys)


@pytest.mark.parametrize("name", ["report.tex", "figures/loss.png", "MANIFEST.json"])
def test_a_changed_report_file_is_refused(place, out, capsys, name) -> None:
    with (out / name).open("a") as handle:
        handle.write("% my edit\n")
    _refused(place, "out", "changed" if name != "MANIFEST.json" else "did not write", capsys)


def test_a_same_size_change_is_found_by_the_hash(place, out, capsys) -> None:
    text = (out / "report.tex").read_bytes()
    (out / "report.tex").write_bytes(text[:-2] + b"%%")
    _refused(place, "out", "report.tex changed", capsys)


@pytest.mark.parametrize(
    "manifest",
    ["{", "[]", '{"files": 3}', '{"files": {"report.tex": 1}}', "\x00" * 10, '{"nofiles": {}}'],
)
def test_a_broken_manifest_is_no_manifest(place, capsys, manifest) -> None:
    out = place / "out"
    out.mkdir()
    (out / "MANIFEST.json").write_text(manifest)
    (out / "report.tex").write_text("x")
    _refused(place, "out", "did not write", capsys)


def test_a_report_missing_some_of_its_files_is_replaced(place, out) -> None:
    (out / "report.tex").unlink()
    shutil.rmtree(out / "figures")
    before = _checksum(place, "out")
    _report(place)
    assert (out / "report.tex").exists() and _checksum(place, "out") == before


def test_an_earlier_report_is_replaced_and_the_manifest_lists_exactly_its_files(place, out) -> None:
    first = (out / "report.tex").stat().st_ino
    before = _checksum(place, "out")
    _report(place)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"MANIFEST.json"} and "report.tex" in files
    assert (out / "report.tex").stat().st_ino != first  # a new build, swapped in
    assert _checksum(place, "out") == before and not _strays(place)


def test_an_output_path_that_is_a_file_is_refused(place, capsys) -> None:
    (place / "out").write_text("a file\n")
    _refused(place, "out", "exists and is not a folder", capsys)


# -- links ------------------------------------------------------------------------------------


def test_a_symlinked_out_is_followed_not_replaced(place) -> None:
    (place / "real").mkdir()
    (place / "link").symlink_to(place / "real" / "report")
    before = _checksum(place, "real/report")
    for _ in range(2):  # a first build, then one replacing it through the link
        build(place / "mini.toml", place / "link", pdf=False)
        assert (place / "link").is_symlink() and os.readlink(place / "link").endswith("report")
        assert (place / "real" / "report" / "MANIFEST.json").is_file()
        assert _checksum(place, "real/report") == before and not _strays(place)


def test_a_symlinked_out_to_user_files_is_refused(place, capsys) -> None:
    (place / "link").symlink_to(place / "thesis")
    _refused(place, "link", "did not write (chapter1.tex)", capsys)


@pytest.mark.parametrize("target", ["/etc/passwd", "figures", "../notes.txt", "missing"])
def test_a_symlink_inside_a_report_is_refused_and_kept(place, out, capsys, target) -> None:
    (out / "figures" / "x.png").symlink_to(target)
    _refused(place, "out", "symbolic links (figures/x.png)", capsys)
    assert os.readlink(out / "figures" / "x.png") == target


def test_a_manifest_that_is_a_symlink_is_refused(place, out, capsys) -> None:
    (out / "MANIFEST.json").rename(place / "m.json")
    (out / "MANIFEST.json").symlink_to(place / "m.json")
    _refused(place, "out", "symbolic links (MANIFEST.json)", capsys)


# -- permissions ----------------------------------------------------------------------------


def _read_only(path: Path) -> None:
    """Make ``path`` unwritable (chmod; as root, ``chattr +i``, which binds root too)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
    elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode:
        pytest.skip("running as root without chattr: cannot make a folder read-only")


def _writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o755)


def test_a_read_only_parent_is_refused_before_any_work(place, capsys) -> None:
    (place / "ro").mkdir()
    _read_only(place / "ro")
    try:
        _refused(place, "ro/out", "cannot write", capsys)
    finally:
        _writable(place / "ro")


def test_a_report_with_a_read_only_part_is_refused_before_any_work(place, out, capsys) -> None:
    _read_only(out / "figures")
    try:
        _refused(place, "out", "figures not writable", capsys)
    finally:
        _writable(out / "figures")


# -- concurrency and killed builds ------------------------------------------------------------


@pytest.mark.slow
def test_two_concurrent_builds_both_succeed_and_the_folder_never_goes_missing(place) -> None:
    before = _checksum(place, "out")
    command = [sys.executable, "-c", CLI, "report", "mini.toml", "--out", "out", "--no-pdf"]
    procs = [
        subprocess.Popen(command, cwd=place, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    missing, seen = 0, False
    while any(p.poll() is None for p in procs):
        present = (place / "out" / "report.tex").is_file()
        missing += seen and not present
        seen = seen or present
        time.sleep(0.002)
    errors = [p.communicate()[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert missing == 0  # the swap is one atomic exchange
    assert _checksum(place, "out") == before and not _strays(place)
    assert _cli(place, "--out", "out", "--no-pdf").returncode == 0


SWAPPER = """
import sys
from scaleinv.reports import builder

def fake(spec, work, *rest):  # the build's work done in an instant: only the swaps remain
    (work / "report.tex").write_text(str(work))
    return builder.BuildResult("t", work, work / "report.tex", None, work / "figures", (), (),
                               (), None, "", 0.0)

builder._build_into = fake
for _ in range(int(sys.argv[1])):
    builder.build("mini.toml", "out", pdf=False)
"""


@pytest.mark.slow
def test_many_concurrent_swaps_never_fail_or_leave_the_folder_missing(place) -> None:
    """Two processes swapping reports into one folder as fast as they can (the build's own
    work replaced by an instant one): no error, the folder never missing, nothing stale."""
    before = _checksum(place, "out")
    command = [sys.executable, "-c", SWAPPER, "150"]
    procs = [subprocess.Popen(command, cwd=place, stderr=subprocess.PIPE) for _ in range(2)]
    missing, seen = 0, False
    while any(p.poll() is None for p in procs):
        present = os.path.isdir(place / "out")
        missing += seen and not present
        seen = seen or present
    errors = [p.communicate()[1].decode()[-500:] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert missing == 0 and not _strays(place) and _checksum(place, "out") == before


def _start_and_wait(place: Path, pdf: bool) -> subprocess.Popen:
    """A build in a subprocess, returned once it writes (into LaTeX, when there is TeX)."""
    args = [] if pdf else ["--no-pdf"]
    command = [sys.executable, "-c", CLI, "report", "mini.toml", "--out", "out", *args]
    with (place / "build.err").open("w") as log:
        proc = subprocess.Popen(command, cwd=place, stderr=log, stdout=subprocess.DEVNULL)
    stage = "pdf " if pdf else "figures"
    deadline = time.monotonic() + 300
    while stage not in (place / "build.err").read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, (place / "build.err").read_text()
        time.sleep(0.05)
    time.sleep(0.5 if pdf else 0.0)  # LaTeX has started
    (place / "build.err").unlink()
    return proc


def _writers(folder_prefix: str) -> list[int]:
    """Processes whose working folder is a building folder (LaTeX left running)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(folder_prefix):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_build_is_cleaned_up_and_the_next_one_succeeds(place, template, sig) -> None:
    pdf = shutil.which("latexmk") is not None
    shutil.copytree(template, place / "out")  # an earlier report, a killed build must keep
    earlier = _checksum(place / "out", "")
    before = _checksum(place, "out")
    proc = _start_and_wait(place, pdf)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig  # dies of the signal, as without scaleinv
    assert _checksum(place / "out", "") == earlier
    if sig == signal.SIGTERM:  # it cleaned up itself and killed LaTeX
        time.sleep(0.2)
        assert not _strays(place) and not _writers(str(place / ".out.building-"))
    else:
        assert _strays(place)  # SIGKILL cannot be caught: the next build cleans up
    done = _cli(place, "--out", "out", *([] if pdf else ["--no-pdf"]))
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while _writers(str(place / ".out.building-")) and time.monotonic() < deadline:
        time.sleep(0.2)  # orphaned LaTeX of the SIGKILLed build ends on its own
    if _strays(place):  # it was still writing during the rebuild: the next build removes it
        assert _cli(place, "--out", "out", "--no-pdf").returncode == 0
    assert not _strays(place) and _checksum(place, "out") == before
    assert (place / "out" / "MANIFEST.json").is_file()


def test_a_folder_changed_during_the_build_is_not_replaced(place, out) -> None:

    def meddle(line: str) -> None:
        if line.startswith("latex"):
            (out / "added-meanwhile.txt").write_text("mine\n")

    with pytest.raises(ScaleinvError, match="did not write \\(added-meanwhile.txt\\)"):
        build(place / "mini.toml", out, pdf=False, progress=meddle)
    assert (out / "added-meanwhile.txt").read_text() == "mine\n" and not _strays(place)


def test_without_an_atomic_exchange_the_swap_still_keeps_nothing_stale(
    place, template, monkeypatch
):
    from scaleinv.reports import outdir

    monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    shutil.copytree(template, place / "out")
    before = _checksum(place, "out")
    _report(place)
    assert (place / "out" / "MANIFEST.json").is_file()
    assert _checksum(place, "out") == before and not _strays(place)


def _dead_build(place: Path, out: str = "out", kind: str = "building") -> Path:
    """What a build killed with SIGKILL leaves: a folder holding scaleinv's token, unlocked."""
    from scaleinv.reports import outdir

    folder = outdir.make_owned(place / out, kind)
    (folder / "figures").mkdir()
    (folder / "figures" / "x.png").write_bytes(b"x")
    return folder


def test_stale_building_folders_of_dead_builds_are_removed(place) -> None:
    _dead_build(place, kind="building")
    _dead_build(place, kind="old")
    _dead_build(place, out="other")  # another output folder's: not ours to judge
    _report(place)
    assert [n.split("-")[0] for n in _strays(place)] == [".other.building"]


@pytest.mark.parametrize(
    ("out", "mine"),
    [
        ("vim", ".vim.old-2020"),
        ("out", ".out.building-my-draft"),
        ("out", ".out.old-1"),
        ("*", ".vim.old-2020"),
        ("a?", ".ab.building-x"),
        ("[a]", ".a.old-x"),
    ],
)
def test_folders_beside_the_output_with_build_like_names_are_never_touched(
    place, out, mine
) -> None:
    (place / mine).mkdir()
    (place / mine / "vimrc").write_text("cfg\n")
    before = _checksum(place, out)
    _report(place, out)
    assert (place / out / "MANIFEST.json").is_file()
    assert _checksum(place, out) == before


def test_a_token_file_of_another_build_does_not_make_a_user_folder_stale(place) -> None:
    """The token must name the folder it is in: a copied lock file proves nothing."""
    dead = _dead_build(place)
    mine = place / ".out.building-mine"
    shutil.copytree(dead, mine)
    shutil.rmtree(dead)
    before = _checksum(place, "out")
    _report(place)
    assert _checksum(place, "out") == before


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o705])
def test_the_output_folder_keeps_its_mode_on_every_rebuild(place, mode) -> None:
    (place / "secret").mkdir()
    os.chmod(place / "secret", mode)
    for _ in range(2):
        _report(place, "secret")
        assert (place / "secret" / "MANIFEST.json").is_file()
        assert stat.S_IMODE((place / "secret").stat().st_mode) == mode


def test_a_new_output_folder_follows_the_umask(place) -> None:
    mask = os.umask(0o027)
    try:
        _report(place, "fresh")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((place / "fresh").stat().st_mode) == 0o750


@pytest.mark.parametrize("out", ["", ".", "..", "/"])
def test_the_working_folder_and_its_parents_are_refused(place, out, capsys, monkeypatch) -> None:
    monkeypatch.chdir(place)
    inode = place.stat().st_ino
    before = _checksum(place, "")
    assert main(["report", "mini.toml", "--out", out, "--no-pdf"]) == 2
    _one_line_error(capsys.readouterr().err, "current folder")
    assert place.stat().st_ino == inode and _checksum(place, "") == before


def test_the_api_raises_a_typed_error(place) -> None:
    from scaleinv.errors import OutputFolderError

    out = _report(place)
    (out / "mine.txt").write_text("x")
    with pytest.raises(OutputFolderError, match="mine.txt") as info:
        build(place / "mini.toml", out, pdf=False)
    assert info.value.path == str(out) and isinstance(info.value, OSError)


def test_a_build_stopped_holding_the_parent_lock_is_an_error_not_a_wait(
    tmp_path, monkeypatch
) -> None:
    # A build waited on the parent folder's lock without a timeout (a stopped process holds it).
    import fcntl
    import threading

    from scaleinv.errors import OutputFolderError
    from scaleinv.reports import outdir

    monkeypatch.setattr(outdir, "LOCK_TIMEOUT", 0.3)
    holder = os.open(tmp_path, os.O_RDONLY)  # another open file: flock conflicts with it
    fcntl.flock(holder, fcntl.LOCK_EX)
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with outdir.OutputFolder(tmp_path / "report"):
                pass
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            errors.append(err)

    try:
        worker = threading.Thread(target=enter, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the build waited for the lock"
    finally:
        os.close(holder)
    assert len(errors) == 1 and isinstance(errors[0], OutputFolderError), errors
    assert "another build has held its lock for 0.3 s" in str(errors[0])
    with outdir.OutputFolder(tmp_path / "report"):  # free again: it goes ahead
        pass
