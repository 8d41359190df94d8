#!/usr/bin/env python3
"""Measures the NVIDIA driver's process checkpoint API on this machine's GPU.

For each size, a child process allocates that much GPU memory and fills it with a known pattern;
this process then calls the driver API CRIU's CUDA plugin and cuda-checkpoint use on the child
(cuCheckpointProcessLock, cuCheckpointProcessCheckpoint: GPU memory to host; then
cuCheckpointProcessRestore, cuCheckpointProcessUnlock: back to the GPU), and the child checks its
data afterwards. Prints, per size, the checkpoint and restore times, the GPU memory the child
still held while checkpointed, whether its data survived, and the --gpu-checkpoint-rates entry
for hiatus's cost model (src/scheduling/cost.ts).

Needs an NVIDIA GPU, a driver with the checkpoint API (570 or later: the cuda-checkpoint README,
"570 Features") on x86-64, and Python 3 (ctypes only, nothing to install). Anywhere else it prints
why it skipped and exits 0: it is a measurement, not a test.

    python3 benchmarks/gpu/checkpoint-rates.py                # 1, 16 and 64 GiB, as fit in free memory
    python3 benchmarks/gpu/checkpoint-rates.py --sizes 1,4 --device 1

Struct layouts and entry points: cuda.h, "CUDA Checkpointing" (CUcheckpointLockArgs: timeoutMs,
reserved0, reserved1[7]; the other argument structs: 8 reserved 64-bit words).
"""

import argparse
import ctypes
import os
import platform
import re
import subprocess
import sys
import time

GiB = 1 << 30
MiB = 1 << 20
CHUNK = 256 * MiB
CHECKPOINT_API = ("cuCheckpointProcessLock", "cuCheckpointProcessCheckpoint", "cuCheckpointProcessRestore", "cuCheckpointProcessUnlock")
CUDA_ERROR_NO_DEVICE = 100


class LockArgs(ctypes.Structure):
    _fields_ = [("timeoutMs", ctypes.c_uint), ("reserved0", ctypes.c_uint), ("reserved1", ctypes.c_uint64 * 7)]


class Reserved(ctypes.Structure):
    """CUcheckpointCheckpointArgs, CUcheckpointRestoreArgs, CUcheckpointUnlockArgs: zeroed."""

    _fields_ = [("reserved", ctypes.c_uint64 * 8)]


class Skip(Exception):
    pass


class Driver:
    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError:
            raise Skip("no NVIDIA driver on this machine (libcuda.so.1 not found)")

    def call(self, name, *args):
        rc = getattr(self.lib, name)(*args)
        if rc != 0:
            raise RuntimeError(f"{name} failed: CUresult {rc} ({self.error_name(rc)})")

    def error_name(self, rc):
        s = ctypes.c_char_p()
        if self.lib.cuGetErrorName(rc, ctypes.byref(s)) == 0 and s.value:
            return s.value.decode()
        return "unknown"

    def init(self):
        rc = self.lib.cuInit(0)
        if rc == CUDA_ERROR_NO_DEVICE:
            raise Skip("the NVIDIA driver sees no GPU (cuInit: CUDA_ERROR_NO_DEVICE)")
        if rc != 0:
            raise Skip(f"cuInit failed: CUresult {rc} ({self.error_name(rc)})")

    def has_checkpoint_api(self):
        return all(hasattr(self.lib, f) for f in CHECKPOINT_API)

    def version(self):
        v = ctypes.c_int()
        self.call("cuDriverGetVersion", ctypes.byref(v))
        return f"{v.value // 1000}.{(v.value % 1000) // 10}"

    def context(self, device):
        dev = ctypes.c_int()
        self.call("cuDeviceGet", ctypes.byref(dev), device)
        name = ctypes.create_string_buffer(256)
        self.call("cuDeviceGetName", name, 256, dev)
        ctx = ctypes.c_void_p()
        self.call("cuDevicePrimaryCtxRetain", ctypes.byref(ctx), dev)
        self.call("cuCtxSetCurrent", ctx)
        return name.value.decode()

    def mem_info(self):
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.call("cuMemGetInfo_v2", ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value


def kernel_driver_version():
    try:
        with open("/proc/driver/nvidia/version") as f:
            m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", f.read())
            return m.group(1) if m else None
    except OSError:
        return None


def pattern(i):
    """The 32-bit word chunk i is filled with."""
    return (0x9E3779B1 * (i + 1)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# The child: holds GPU memory with a known pattern, then checks it after the parent's round trip.


def child(size, device):
    drv = Driver()
    drv.init()
    drv.context(device)
    ptr = ctypes.c_uint64()
    drv.call("cuMemAlloc_v2", ctypes.byref(ptr), ctypes.c_size_t(size))
    chunks = (size + CHUNK - 1) // CHUNK
    for i in range(chunks):
        n = min(CHUNK, size - i * CHUNK) // 4
        drv.call("cuMemsetD32_v2", ctypes.c_uint64(ptr.value + i * CHUNK), ctypes.c_uint(pattern(i)), ctypes.c_size_t(n))
    drv.call("cuCtxSynchronize")
    print(f"ready {os.getpid()}", flush=True)
    sys.stdin.readline()
    bad = []
    sample = (ctypes.c_uint32 * 1024)()
    for i in range(chunks):
        length = min(CHUNK, size - i * CHUNK)
        for offset in (0, length - ctypes.sizeof(sample)):
            drv.call("cuMemcpyDtoH_v2", sample, ctypes.c_uint64(ptr.value + i * CHUNK + offset), ctypes.c_size_t(ctypes.sizeof(sample)))
            if any(w != pattern(i) for w in sample):
                bad.append(f"chunk {i} at +{offset}")
    print("verified ok" if not bad else f"verified BAD: {', '.join(bad[:5])}", flush=True)


# ----------------------------------------------------------------------------------------------
# The parent: checkpoints and restores the child through the driver API, timing each step.


def measure(drv, size, device, baseline_used):
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", str(size), "--device", str(device)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"child did not allocate {size // GiB} GiB (exit {proc.wait()})")
        pid = int(line[1])
        free, total = drv.mem_info()
        held_running = total - free - baseline_used
        lock = LockArgs(timeoutMs=30_000)
        t0 = time.monotonic()
        drv.call("cuCheckpointProcessLock", pid, ctypes.byref(lock))
        drv.call("cuCheckpointProcessCheckpoint", pid, ctypes.byref(Reserved()))
        t1 = time.monotonic()
        free, total = drv.mem_info()
        held_checkpointed = total - free - baseline_used
        t2 = time.monotonic()
        drv.call("cuCheckpointProcessRestore", pid, ctypes.byref(Reserved()))
        drv.call("cuCheckpointProcessUnlock", pid, ctypes.byref(Reserved()))
        t3 = time.monotonic()
        proc.stdin.write("verify\n")
        proc.stdin.flush()
        verdict = proc.stdout.readline().strip()
        proc.wait(timeout=120)
        return {
            "size": size,
            "checkpoint_s": t1 - t0,
            "restore_s": t3 - t2,
            "held_running": held_running,
            "held_checkpointed": max(0, held_checkpointed),
            "verified": verdict,
        }
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def fit(rows, key):
    """Bytes per second and fixed seconds of a line through the smallest and largest sizes."""
    if len(rows) < 2:
        r = rows[0]
        return r["size"] / r[key], 0.0
    a, b = rows[0], rows[-1]
    slope = (b[key] - a[key]) / (b["size"] - a["size"])
    if slope <= 0:
        return b["size"] / b[key], 0.0
    return 1 / slope, max(0.0, a[key] - a["size"] * slope)


def gfd_product(name):
    """nvidia.com/gpu.product as GPU feature discovery writes it (k8s-device-plugin internal/lm/resource.go, sanitise)."""
    return "-".join(re.sub(r"[^A-Za-z0-9\-_. ]", "", name).split())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,16,64", help="GiB per run, comma-separated (default 1,16,64; sizes that do not fit are left out)")
    ap.add_argument("--device", type=int, default=0, help="CUDA device ordinal (default 0)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.device)
        return 0
    try:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise Skip(f"the CUDA checkpoint API is x86-64 only (cuda-checkpoint README), this machine is {platform.machine()}")
        drv = Driver()
        drv.init()
        if not drv.has_checkpoint_api():
            raise Skip(f"driver {kernel_driver_version() or drv.version()} has no cuCheckpointProcess* API (needs 570 or later)")
        name = drv.context(args.device)
    except Skip as e:
        print(f"SKIPPED: {e}; nothing measured.")
        return 0
    free, total = drv.mem_info()
    baseline_used = total - free
    wanted = [int(s) * GiB for s in args.sizes.split(",") if s.strip()]
    sizes = [s for s in wanted if s <= free * 0.8]
    left_out = [s // GiB for s in wanted if s not in sizes]
    print(f"GPU {args.device}: {name} ({total / GiB:.0f} GiB, {free / GiB:.0f} GiB free), driver {kernel_driver_version() or '?'}, CUDA driver API {drv.version()}")
    if left_out:
        print(f"left out (more than 80% of free GPU memory): {', '.join(f'{s} GiB' for s in left_out)}")
    if not sizes:
        print("SKIPPED: no size fits in free GPU memory; nothing measured.")
        return 0
    rows = []
    print()
    print("| GPU memory | checkpoint (GPU to host) | restore (host to GPU) | GPU memory held while checkpointed | data |")
    print("|---|---|---|---|---|")
    for size in sizes:
        r = measure(drv, size, args.device, baseline_used)
        rows.append(r)
        print(
            f"| {size // GiB} GiB | {r['checkpoint_s']:.2f} s | {r['restore_s']:.2f} s | "
            f"{r['held_checkpointed'] / MiB:.0f} MiB (of {r['held_running'] / MiB:.0f} MiB running) | {r['verified']} |",
            flush=True,
        )
    rate, base = fit(rows, "checkpoint_s")
    restore_rate, restore_base = fit(rows, "restore_s")
    print()
    print(f"checkpoint: {rate / GiB:.2f} GiB/s after {base:.2f} s; restore: {restore_rate / GiB:.2f} GiB/s after {restore_base:.2f} s")
    print(f"hiatus: --gpu-checkpoint-rates {gfd_product(name)}={rate / GiB:.2f}Gi")
    return 0 if all(r["verified"] == "verified ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
