"""A seccomp filter for the sandbox: system calls no transform needs answer EPERM (bwrap's `--seccomp FD`).

Defence in depth behind the namespaces: a bug in the interpreter turned into arbitrary code still cannot
mount, trace, load modules, create namespaces, use keyrings, eBPF, io_uring, userfaultfd, SysV IPC (shared
memory no rlimit bounds) or memfds, or touch clocks and swap. The program is classic BPF over `seccomp_data`:
check the architecture (any other one, and x86-64's x32 ABI, kills the process), then the denied numbers.
Only x86-64 and aarch64 have tables here; on another architecture `program()` is None and the sandbox runs
without the filter (the namespaces and limits still apply).
"""

from __future__ import annotations

import errno
import platform
import struct

_DENIED_X86_64 = {
    "shmget": 29, "semget": 64, "msgget": 68, "ptrace": 101, "syslog": 103, "mknod": 133, "personality": 135,
    "vhangup": 153, "pivot_root": 155, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "clock_settime": 227, "mbind": 237,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "migrate_pages": 256, "mknodat": 259,
    "unshare": 272, "move_pages": 279, "perf_event_open": 298, "fanotify_init": 300, "fanotify_mark": 301,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "memfd_create": 319, "kexec_file_load": 320,
    "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
_DENIED_AARCH64 = {
    "lookup_dcookie": 18, "mknodat": 33, "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51,
    "vhangup": 58, "quotactl": 60, "acct": 89, "personality": 92, "unshare": 97, "kexec_load": 104,
    "init_module": 105, "delete_module": 106, "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142,
    "settimeofday": 170, "adjtimex": 171, "msgget": 186, "semget": 190, "shmget": 194, "add_key": 217,
    "request_key": 218, "keyctl": 219, "swapon": 224, "swapoff": 225, "mbind": 235, "migrate_pages": 238,
    "move_pages": 239, "perf_event_open": 241, "fanotify_init": 262, "fanotify_mark": 263,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "setns": 268, "process_vm_readv": 270,
    "process_vm_writev": 271, "kcmp": 272, "finit_module": 273, "memfd_create": 279, "bpf": 280,
    "userfaultfd": 282, "kexec_file_load": 294, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
# (machine) -> (AUDIT_ARCH_*, denied numbers, whether numbers from 0x40000000 up are the x32 ABI to refuse)
_ARCHES = {
    "x86_64": (0xC000003E, _DENIED_X86_64, True),
    "aarch64": (0xC00000B7, _DENIED_AARCH64, False),
}

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter as bwrap reads it (an array of struct sock_filter), or None on an architecture without a table."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit, denied, x32 = arch
    ops = [_op(_LD_W_ABS, _ARCH), _op(_JEQ_K, audit, jt=1), _op(_RET_K, _KILL_PROCESS), _op(_LD_W_ABS, _NR)]
    if x32:
        ops += [_op(_JGE_K, 0x40000000, jf=1), _op(_RET_K, _KILL_PROCESS)]
    for number in sorted(denied.values()):
        ops += [_op(_JEQ_K, number, jf=1), _op(_RET_K, _ERRNO | errno.EPERM)]
    ops.append(_op(_RET_K, _ALLOW))
    return b"".join(ops)
