"""A report's output folder: built beside it, swapped in whole, replacing only scaleinv's own.

A build writes into ``.NAME.building-*`` next to the output folder ``NAME`` and, when it
succeeded, exchanges the two. So that no file a user did not give scaleinv is ever lost:

- scaleinv writes a :data:`MANIFEST` (every file with its size and SHA-256, and the scaleinv
  version) into each folder it builds, and replaces an existing folder only when it holds
  exactly such a report: no file outside the manifest, none changed, no symbolic link. Anything
  else is refused before any work, and checked again at the swap;
- ``--out`` given as a symbolic link is followed (its target is built and swapped; the link
  stays as it was);
- the folder and its subfolders must be writable, checked before any work;
- builds into one folder take turns for their short start and swap (an ``flock`` on the
  parent folder), and each holds a lock in its own building folder for its whole run —
  inherited by LaTeX, so a folder is not taken for stale while any process still writes
  into it. A stale building folder (a build killed with SIGKILL) is removed by the next
  build, at its start and again at its swap. A folder is taken for scaleinv's own by
  ownership, never by its name: its lock file holds the token that is also its name's suffix
  (:func:`make_owned`), so a user's ``.NAME.old-2020`` beside the output is never touched.
  On SIGTERM or SIGHUP a build removes its folder, kills LaTeX and then dies of the signal as
  it would have;
- ``--out`` is a literal path (no patterns); the working folder and its parents are refused;
- a rebuilt folder keeps the mode and owner it had (a new one follows the umask);
- on Linux the swap is one atomic ``renameat2(RENAME_EXCHANGE)``: the folder is never missing,
  it holds the old or the new report. Elsewhere it is two renames (missing for an instant).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeAlias

from scaleinv._version import __version__
from scaleinv.errors import OutputFolderError

__all__ = ["MANIFEST", "OutputFolder", "check_replaceable", "make_owned", "write_manifest"]

#: The file listing what scaleinv wrote into a report folder.
MANIFEST = "MANIFEST.json"
_LOCK = ".scaleinv-build.lock"
_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: What :func:`signal.signal` takes and returns (None: a handler not installed from Python).
_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _walk(folder: Path) -> dict[str, os.stat_result]:
    """Every entry under ``folder`` by relative POSIX path, with its lstat (links not followed)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            found[path.relative_to(folder).as_posix()] = path.lstat()
    return found


def write_manifest(folder: Path) -> None:
    """Write :data:`MANIFEST` into ``folder``, listing every file in it."""
    files = {
        rel: {"size": st.st_size, "sha256": _digest(folder / rel)}
        for rel, st in sorted(_walk(folder).items())
        if rel != MANIFEST and stat.S_ISREG(st.st_mode)
    }
    text = json.dumps({"scaleinv": __version__, "files": files}, indent=1, sort_keys=True)
    (folder / MANIFEST).write_text(text + "\n", encoding="utf-8")


def _listed(folder: Path) -> dict[str, dict] | None:
    """The files the manifest lists, or None when there is no readable manifest."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
        if isinstance(files, dict) and all(isinstance(v, dict) for v in files.values()):
            return files
    except (OSError, ValueError, TypeError, KeyError):
        pass
    return None


def _few(names: list[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_replaceable(folder: Path, shown: str | None = None) -> None:
    """Raise :class:`~scaleinv.errors.OutputFolderError` unless a build may replace ``folder``.

    It may when it does not exist, is empty, or holds exactly a report scaleinv wrote (as
    its :data:`MANIFEST` lists it: nothing else, nothing changed, no links) in writable folders.
    ``shown`` is how the error names the folder (default: ``folder``).
    """
    shown = shown or str(folder)
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise OutputFolderError(shown, "exists and is not a folder")
    entries = _walk(folder)
    if not entries:
        return
    links = [rel for rel, st in entries.items() if stat.S_ISLNK(st.st_mode)]
    if links:
        raise OutputFolderError(
            shown, f"holds symbolic links ({_few(links)}); choose another --out"
        )
    manifest = entries.get(MANIFEST)
    listed = _listed(folder) if manifest and stat.S_ISREG(manifest.st_mode) else None
    if listed is None:
        top = _few([r for r in entries if "/" not in r])
        raise OutputFolderError(
            shown, f"holds files scaleinv did not write ({top}) and no {MANIFEST} of an earlier "
            "report; the build replaces the whole folder: choose another --out, or empty it",
        )  # fmt: skip
    parents = {p.as_posix() for rel in listed for p in Path(rel).parents if p != Path(".")}
    foreign = [r for r in entries if r != MANIFEST and r not in listed and r not in parents]
    if foreign:
        raise OutputFolderError(
            shown, f"holds files scaleinv did not write ({_few(foreign)}); the build replaces "
            "the whole folder: choose another --out, or move them",
        )  # fmt: skip
    changed = [
        rel
        for rel, info in listed.items()
        if rel in entries and not _same(folder, rel, entries[rel], info)
    ]
    if changed:
        raise OutputFolderError(
            shown, f"{_few(changed)} changed since scaleinv wrote the report; "
            "choose another --out, or move what you changed",
        )  # fmt: skip
    dirs = ["", *(r for r, st in entries.items() if stat.S_ISDIR(st.st_mode))]
    locked = [rel or "." for rel in dirs if not os.access(folder / rel, os.W_OK | os.X_OK)]
    if locked:
        raise OutputFolderError(shown, f"cannot replace it: {_few(locked)} not writable")


def _same(folder: Path, rel: str, st: os.stat_result, info: dict) -> bool:
    if not stat.S_ISREG(st.st_mode) or st.st_size != info.get("size"):
        return False
    return _digest(folder / rel) == info.get("sha256")


class _Terminated(BaseException):
    """SIGTERM/SIGHUP arrived during a build (raised so that the build cleans up)."""


#: Seconds a build waits for another build's start or swap in the same parent folder (each
#: holds the lock for a moment; a build stopped there, e.g. by SIGSTOP, would hold it for ever).
LOCK_TIMEOUT = 120.0


@contextlib.contextmanager
def _parent_lock(parent: Path) -> Iterator[None]:
    """Builds into folders of ``parent`` take turns here (start and swap; short); an
    :class:`OutputFolderError` after :data:`LOCK_TIMEOUT` seconds of waiting."""
    fd = os.open(parent, os.O_RDONLY)
    try:
        deadline, pause = time.monotonic() + LOCK_TIMEOUT, 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OutputFolderError(
                        str(parent),
                        f"another build has held its lock for {LOCK_TIMEOUT:g} s (is a scaleinv "
                        "process stopped?); try again when it has finished",
                    ) from None
                time.sleep(pause)
                pause = min(2 * pause, 0.5)
        yield
    finally:
        os.close(fd)


def make_owned(final: Path, kind: str) -> Path:
    """Make ``.NAME.KIND-TOKEN`` beside ``final``, with its lock file holding ``TOKEN``.

    ``kind`` is ``"building"`` or ``"old"``. The token is what makes the folder scaleinv's
    (:func:`_owned`): a folder of that name without its token is a user's.
    """
    token = secrets.token_hex(8)
    folder = final.parent / f".{final.name}.{kind}-{token}"
    folder.mkdir(mode=0o700)
    fd = os.open(folder / _LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as lock:
        lock.write(f"scaleinv build {token}\n")
    return folder


def _owned(folder: Path) -> bool:
    """Whether ``folder`` is one :func:`make_owned` made (its lock file holds its own token)."""
    token = folder.name.rsplit("-", 1)[-1]
    try:
        if folder.is_symlink() or not folder.is_dir():
            return False
        with open(folder / _LOCK, "rb", opener=_no_follow) as lock:
            return lock.read(64) == f"scaleinv build {token}\n".encode()
    except OSError:
        return False


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _stale(folder: Path) -> bool:
    """Whether no live process holds the lock of an owned folder."""
    try:
        fd = os.open(folder / _LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _clean_stale(final: Path) -> None:
    """Remove the folders of killed builds into ``final`` (under the parent lock).

    Only folders scaleinv made for ``final`` (:func:`_owned`) whose lock no process holds;
    names are compared literally, never as patterns.
    """
    prefixes = (f".{final.name}.building-", f".{final.name}.old-")
    with os.scandir(final.parent) as entries:
        found = [Path(e.path) for e in entries if e.name.startswith(prefixes)]
    for folder in found:
        if _owned(folder) and _stale(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


class OutputFolder:
    """One build into an output folder (a context manager; see the module docstring).

    ``with OutputFolder(path) as out:`` checks that ``path`` may be replaced (else raises
    :class:`~scaleinv.errors.OutputFolderError` at once), and makes the building folder
    ``out.work``; write the report there, then call ``out.commit()`` to write the manifest and
    swap it in. Leaving the block without a commit (an error, Ctrl-C, SIGTERM) removes
    ``out.work`` and leaves ``path`` as it was.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with OutputFolder(root / "report") as out:
    ...     _ = (out.work / "report.tex").write_text("hello")
    ...     out.commit()
    >>> sorted(p.name for p in (root / "report").iterdir())
    ['MANIFEST.json', 'report.tex']
    >>> _ = (root / "report" / "notes.txt").write_text("mine")
    >>> try:
    ...     OutputFolder(root / "report").__enter__()
    ... except OutputFolderError as err:
    ...     print(err.reason[:47])
    holds files scaleinv did not write (notes.txt);
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.final = Path(os.path.realpath(self.path))  # a symlink is followed
        here = Path.cwd().resolve()
        if not os.fspath(path) or self.final == here or self.final in here.parents:
            raise OutputFolderError(
                repr(os.fspath(path)), "is the current folder or one of its parents, which a "
                "build would replace whole; choose a subfolder such as --out report",
            )  # fmt: skip
        self.work = self.final.parent / f".{self.final.name}.building"
        self._lock: int | None = None
        self._handlers: dict[int, _Handler] = {}

    @property
    def lock_fds(self) -> tuple[int, ...]:
        """File descriptors child processes writing into :attr:`work` must keep open."""
        return () if self._lock is None else (self._lock,)

    def __enter__(self) -> OutputFolder:
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            with _parent_lock(self.final.parent):  # no build swaps it while it is looked at
                check_replaceable(self.final, str(self.path))
                _clean_stale(self.final)
                self.work = make_owned(self.final, "building")
                self._lock = os.open(self.work / _LOCK, os.O_RDONLY)
                fcntl.flock(self._lock, fcntl.LOCK_EX)
        except OutputFolderError:
            raise
        except OSError as err:
            raise OutputFolderError(
                str(self.path), f"cannot write: {err.strerror or err}"
            ) from None
        os.chmod(self.work, 0o777 & ~_umask())  # mkdtemp makes it private; a report is not
        self._catch_signals()
        return self

    def commit(self) -> None:
        """Write the manifest and swap :attr:`work` in as the output folder."""
        with _parent_lock(self.final.parent):
            check_replaceable(self.final, str(self.path))  # again: it may have changed meanwhile
            (self.work / _LOCK).unlink()  # the fd keeps the lock; the parent lock guards meanwhile
            write_manifest(self.work)
            if not self.final.exists():
                os.rename(self.work, self.final)
            else:
                _keep_mode_and_owner(self.work, self.final)
                if _exchange(self.work, self.final):
                    shutil.rmtree(self.work, ignore_errors=True)  # now the previous report
                else:
                    old = make_owned(self.final, "old")
                    os.rename(self.final, old / "report")
                    os.rename(self.work, self.final)
                    shutil.rmtree(old, ignore_errors=True)
            self.work = self.final
            _clean_stale(self.final)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.work != self.final:
            shutil.rmtree(self.work, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        for number, handler in self._handlers.items():
            signal.signal(number, handler)
        if isinstance(error, _Terminated):  # cleaned up: now die of the signal as we would have
            os.kill(os.getpid(), error.args[0])

    def _catch_signals(self) -> None:
        """Turn SIGTERM/SIGHUP into an exception while the build runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def terminated(number: int, frame: FrameType | None) -> None:
            raise _Terminated(number)

        for number in _SIGNALS:
            if signal.getsignal(number) == signal.SIG_DFL:
                self._handlers[number] = signal.signal(number, terminated)


def _keep_mode_and_owner(new: Path, old: Path) -> None:
    """Give ``new`` the permission bits and (where allowed) the owner of ``old``."""
    st = old.stat()
    os.chmod(new, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):  # only root may give a folder away
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            os.chown(new, st.st_uid, st.st_gid)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
