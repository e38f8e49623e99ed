"""An execution environment's filesystem as Lambda gives it: a private /tmp, a read-only task root.

On Lambda a function may write only to /tmp, which is its own (EphemeralStorage's size, 512 MB
by default), and its code folder is read-only. A worker gets the same on Linux, where it can
enter a mount namespace of its own (as root, or through an unprivileged user namespace): a
tmpfs of the declared size on /tmp, HOME in it, and the task root bound read-only. Where it
cannot (another system, or a container that forbids namespaces) the worker gets a private
folder as HOME and TMPDIR instead, so nothing of the host's home (~/.aws) or temp folder
leaks in, and says so once in its log; its code folder then stays writable.
"""

from __future__ import annotations

import ctypes
import os
import sys

PRIVATE_DIR_VARIABLE = "_LOCAL_RUNTIME_PRIVATE_DIR"  # set by the runtime, taken by the worker
EPHEMERAL_VARIABLE = "_LOCAL_RUNTIME_EPHEMERAL_MB"
# Lambda's writable folder. Not a shared temp directory here: a tmpfs mounted for this one
# process, in its own mount namespace, so no other process can see or race on it.
LAMBDA_TMP = "/tmp"  # noqa: S108  # nosec B108
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV = 1, 2, 4
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18


class _Refused(OSError):
    """The kernel refused a step; the message says which."""


def enter(task_root: str) -> str | None:
    """In a fresh worker, before the handler is imported: Lambda's filesystem. Returns None,
    or why only the fallback (a private HOME and TMPDIR) could be given."""
    private = os.environ.pop(PRIVATE_DIR_VARIABLE, None)
    size_mb = int(os.environ.pop(EPHEMERAL_VARIABLE, "512"))
    try:
        _namespace(task_root, size_mb)
    except (_Refused, OSError, AttributeError) as exc:
        if private:
            os.environ["HOME"] = os.environ["TMPDIR"] = private
        return str(exc)
    os.environ["HOME"] = LAMBDA_TMP
    os.environ.pop("TMPDIR", None)
    return None


def _namespace(task_root: str, size_mb: int) -> None:
    if sys.platform != "linux":
        raise _Refused(f"mount namespaces are Linux's, not {sys.platform}'s")
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS if uid == 0 else _CLONE_NEWNS | _CLONE_NEWUSER
    _check(libc.unshare(flags), "unshare")
    if uid != 0:
        # The same ids inside as outside: files the handler writes belong to the user.
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing leaks back to the host
    options = f"size={size_mb}m,mode=1777"
    _mount(libc, "tmpfs", LAMBDA_TMP, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
    _mount(libc, task_root, task_root, None, _MS_BIND | _MS_REC)
    _mount(libc, None, task_root, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_REC)


def _mount(
    libc: ctypes.CDLL,
    source: str | None,
    target: str,
    kind: str | None,
    flags: int,
    options: str | None = None,
) -> None:
    def encoded(value: str | None) -> bytes | None:
        return None if value is None else value.encode()

    result = libc.mount(
        encoded(source), encoded(target), encoded(kind), ctypes.c_ulong(flags), encoded(options)
    )
    _check(result, f"mount {target}")


def _check(result: int, step: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise _Refused(f"{step}: {os.strerror(error)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
