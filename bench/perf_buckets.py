#!/usr/bin/env python3
"""Sorts perf samples into buckets of work: where the server's CPU time goes.

Reads `perf script -F tid,period,ip,sym,dso --no-inline` output (samples with
DWARF call chains) on stdin and prints, for every sample's thread role (async
worker, blocking/writer thread or commit pool thread):

  - buckets: the first pattern below that matches a frame, leaf to root
    (so a memcpy done by the kernel for a socket read counts as "socket recv"
    only if no earlier, leafier pattern matched);
  - for each bucket, the nearest aymara_mock function on the stack, which
    names the code that asked for the work.

Usage: perf script -i bench/out/perf-w2-cg.data -F tid,period,ip,sym,dso --no-inline \
         | python3 bench/perf_buckets.py
"""

import collections
import sys

# (bucket, substrings of a frame's symbol) — checked leaf to root, in this order
# for each frame; the first frame that matches any pattern decides.
PATTERNS = [
    ("sha256", ("sha2::",)),
    ("page faults (fresh memory)", ("exc_page_fault",)),
    ("file write (kernel)", ("shmem_file_write_iter", "ext4_buffered_write_iter", "generic_perform_write")),
    ("socket recv (kernel)", ("tcp_recvmsg", "__x64_sys_recvfrom", "sock_recvmsg")),
    ("socket send (kernel)", ("tcp_sendmsg", "sock_write_iter", "__x64_sys_sendto", "do_writev")),
    ("loopback TCP delivery (kernel softirq)", ("tcp_v4_rcv", "net_rx_action", "__netif_receive_skb", "process_backlog")),
    ("mkdir/rename/open/unlink (kernel)", ("do_mkdirat", "do_renameat2", "do_sys_openat2", "do_unlinkat", "do_rmdir", "__x64_sys_close")),
    ("preempted on return from a syscall (scheduler)", ("exit_to_user_mode_loop",)),
    ("epoll wait / idle", ("do_epoll_wait", "__x64_sys_epoll_wait")),
    ("futex (wake/wait)", ("__x64_sys_futex", "futex_wake", "futex_wait")),
    ("other syscalls", ("do_syscall_64",)),
    ("malloc/free", ("malloc", "_int_free", "cfree", "realloc", "__libc_free", "_int_malloc", "alloc::raw_vec", "sdallocx")),
    ("memcpy/memmove", ("__memmove", "__memcpy", "__memset")),
    ("multipart parsing (multer/memchr)", ("multer::", "memchr::")),
    ("logging (tracing)", ("tracing_subscriber::", "tracing_core::", "tracing::")),
    ("fault rules (RuleEngine::decide)", ("rules::RuleEngine::decide", "rules::glob", "Match::matches", "rules::model")),
    ("journal (record/push)", ("journal::",)),
    ("JSON (serde_json)", ("serde_json::",)),
    ("HTTP parse/encode (hyper/httparse)", ("httparse::", "hyper::proto::h1::role", "hyper::proto::h1::encode", "hyper::proto::h1::decode")),
    ("uuid / rng", ("uuid::", "rand::", "getrandom")),
    ("hashing (SipHash: HashMap/HeaderMap)", ("core::hash::sip", "hash_elem_using")),
    ("string formatting (fmt)", ("core::fmt::",)),
    ("other aymara_mock code", ("aymara_mock::",)),
    ("tokio runtime / scheduling", ("tokio::",)),
    ("hyper (other)", ("hyper::",)),
]


def role_of(frames):
    syms = " ".join(frames)
    if "multi_thread::worker" in syms:
        return "async worker threads"
    if "blocking::pool" in syms:
        return "blocking pool thread (storage writer)"
    if "fs_pool::work" in syms:
        return "file-system pool thread (commits)"
    # DWARF unwinding copies 16 KiB of user stack per sample: deep stacks
    # (async frames plus a long kernel path) stop before the thread's root.
    return "stack not unwound to its thread root (mostly async workers)"


def bucket_of(frames):
    for sym in frames:
        for name, pats in PATTERNS:
            if any(p in sym for p in pats):
                return name
    return "other"


def owner_of(frames):
    for sym in frames:
        if "aymara_mock::" in sym:
            return sym.split(" ")[0]
    return "-"


def samples(stream):
    frames = []
    period = 0
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield period, frames
            frames, period = [], 0
            continue
        # A sample's first line is "tid period" (perf right-aligns the tid, so
        # it may begin with spaces); its call-chain frames begin with a tab.
        if not line.startswith("\t"):
            parts = line.split()
            period = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
            continue
        # "\t  addr sym (dso)"
        body = line.strip().split(" ", 1)
        sym = body[1].rsplit(" (", 1)[0] if len(body) > 1 else "?"
        frames.append(sym)
    if frames:
        yield period, frames


def main():
    by_role = collections.defaultdict(collections.Counter)
    owners = collections.defaultdict(collections.Counter)
    total = 0
    for period, frames in samples(sys.stdin):
        role = role_of(frames)
        bucket = bucket_of(frames)
        by_role[role][bucket] += period
        owners[(role, bucket)][owner_of(frames)] += period
        total += period
    if not total:
        sys.exit("no samples")
    print(f"{'share':>7}  bucket  [nearest aymara_mock frame: share of the bucket]")
    for role, buckets in sorted(by_role.items(), key=lambda kv: -sum(kv[1].values())):
        role_total = sum(buckets.values())
        print(f"{100 * role_total / total:6.1f}%  == {role} ==")
        for bucket, n in buckets.most_common():
            if 100 * n / total < 0.5:
                continue
            top = owners[(role, bucket)].most_common(2)
            where = ", ".join(
                f"{o.replace('aymara_mock::', '')}: {100 * c / n:.0f}%" for o, c in top if o != "-"
            )
            print(f"{100 * n / total:6.1f}%    {bucket}" + (f"  [{where}]" if where else ""))


if __name__ == "__main__":
    main()
