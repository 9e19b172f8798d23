"""A fake `adb` for tests: behaves like one or more attached phones.

State lives in $FAKE_PHONE_DIR: devices.json (serial, state, props, per-CPU max frequency,
optional disconnect_after_runs, after which the phone is gone: unlisted, every call fails) and
one folder per serial that is the phone's filesystem (/sys/devices/system/cpu/..., whose
cpu*/cpufreq folders are the phone's CPU layout, and /data/local/tmp). `shell` runs the
command with the host's sh, device paths mapped into that folder and the phone's own
`getprop`/`taskset` first on PATH, so whatever the code under test pushes (e.g. a
benchmark_model) really runs. Every call is logged
to adb.log as a JSON line. $FAKE_ADB_SIGINT_ON_RUN=N: on the N-th benchmark run, Ctrl-C, i.e.
SIGINT to adb's whole process group (the caller included), as a terminal would send it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEVICE_PATHS = ("/data/local/tmp", "/sys/")


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def main(argv):
    state_dir = os.environ["FAKE_PHONE_DIR"]
    with open(os.path.join(state_dir, "devices.json")) as f:
        devices = json.load(f)
    with open(os.path.join(state_dir, "adb.log"), "a") as log:
        log.write(json.dumps(argv) + "\n")
    devices = [d for d in devices if not disconnected(state_dir, d)]
    serial = None
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
    if not argv:
        fail("adb: usage: adb [-s SERIAL] COMMAND")
    if argv[0] == "devices":
        print("List of devices attached")
        for d in devices:
            extra = " usb:1-1 product:{p} model:{m} device:{p} transport_id:1".format(
                p=d["props"].get("ro.product.device", "x"),
                m=d["props"].get("ro.product.model", "x").replace(" ", "_")) \
                if d["state"] == "device" else " usb:1-2 transport_id:2"
            print(f"{d['serial']:<20} {d['state']}{extra}")
        print()
        return 0
    if serial is None:
        if not devices:
            fail("adb: no devices/emulators found")
        if len(devices) > 1:
            fail("adb: more than one device/emulator")
        serial = devices[0]["serial"]
    matches = [d for d in devices if d["serial"] == serial]
    if not matches:
        fail(f"adb: device '{serial}' not found")
    device = matches[0]
    if device["state"] == "unauthorized":
        fail("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set")
    if device["state"] == "offline":
        fail("adb: device offline")
    root = os.path.join(state_dir, serial)
    runs_file = os.path.join(root, ".benchmark_runs")

    def to_host(path):
        for p in DEVICE_PATHS:
            path = path.replace(p, os.path.join(root, p.lstrip("/")).rstrip("/") +
                                ("/" if p.endswith("/") else ""))
        return path

    if argv[0] == "push":
        local, remote = argv[1], to_host(argv[2])
        if not os.path.exists(local):
            fail(f"adb: error: cannot stat '{local}': No such file or directory")
        os.makedirs(os.path.dirname(remote), exist_ok=True)
        shutil.copyfile(local, remote)
        print(f"{local}: 1 file pushed, 0 skipped. 35.2 MB/s ({os.path.getsize(local)} bytes "
              "in 0.001s)")
        return 0
    if argv[0] == "shell":
        command = to_host(" ".join(argv[1:]))
        env = dict(os.environ, PATH=os.path.join(HERE, "device_bin") + os.pathsep +
                   os.environ["PATH"], FAKE_PHONE_ROOT=root)
        if "taskset" in command:
            with open(runs_file, "a+") as f:
                f.seek(0)
                count = int(f.read() or 0) + 1
            with open(runs_file, "w") as f:
                f.write(str(count))
            if str(count) == os.environ.get("FAKE_ADB_SIGINT_ON_RUN"):
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                os.killpg(os.getpgrp(), signal.SIGINT)
                fail("", 130)
        proc = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode
    fail(f"adb: unknown command {argv[0]}")


def benchmark_runs(state_dir, serial):
    path = os.path.join(state_dir, serial, ".benchmark_runs")
    return int(open(path).read() or 0) if os.path.exists(path) else 0


def disconnected(state_dir, device):
    """True once the device has done its disconnect_after_runs benchmark runs."""
    limit = device.get("disconnect_after_runs")
    return limit is not None and benchmark_runs(state_dir, device["serial"]) >= limit


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
