"""adb: finding the phone, reading what it is, its large cores, pushing and running.

Every failure becomes a `DeviceError` whose message says what to do: no device, several and
no serial, an unauthorized or offline device, a device that went away, a non-arm64 phone,
adb missing.
"""

import dataclasses
import re
import signal
import subprocess
from typing import Dict, List, Optional, Sequence

CPU_FREQ_GLOB = "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"
SUPPORTED_ABIS = ("arm64-v8a",)


class DeviceError(RuntimeError):
    pass


@dataclasses.dataclass
class DeviceEntry:
    serial: str
    state: str                      # device | unauthorized | offline | ...
    details: Dict[str, str]


@dataclasses.dataclass
class ShellResult:
    status: int                     # the command's own exit status on the phone
    stdout: str
    stderr: str


# Echoed after every shell command: only a shell that ran the command can print it, so its
# presence tells the command's own exit status apart from adb's (transport) failures.
_STATUS_MARK = "__android_bench_status="


class Adb:
    """Runs adb (the one on PATH unless `path` says otherwise) for one serial or none."""

    def __init__(self, path: str = "adb", serial: Optional[str] = None, timeout: float = 600):
        self.path, self.serial, self.timeout = path, serial, timeout

    def for_serial(self, serial: str) -> "Adb":
        return Adb(self.path, serial, self.timeout)

    def _call(self, args: Sequence[str], timeout: Optional[float]) -> subprocess.CompletedProcess:
        command = [self.path] + (["-s", self.serial] if self.serial else []) + list(args)
        try:
            proc = subprocess.run(command, capture_output=True, text=True,
                                  timeout=timeout or self.timeout)
        except FileNotFoundError:
            raise DeviceError(f"adb not found ({self.path!r}): install Android platform-tools "
                              "and put adb on PATH, or pass --adb=/path/to/adb") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"adb {' '.join(args)} timed out after "
                              f"{timeout or self.timeout:.0f} s") from None
        if proc.returncode in (130, -signal.SIGINT):
            # Ctrl-C reaches the whole foreground process group: adb may die of it before
            # our own KeyboardInterrupt is raised. Either way the user interrupted the run.
            raise KeyboardInterrupt
        return proc

    def run(self, *args: str, timeout: Optional[float] = None) -> str:
        proc = self._call(args, timeout)
        if proc.returncode != 0:
            raise DeviceError(self._diagnose(args[0], proc))
        return proc.stdout

    def shell_status(self, command: str, timeout: Optional[float] = None) -> ShellResult:
        """Runs `command` on the phone; its exit status and output, whatever the status.

        Raises DeviceError only when adb could not run it (the status marker is missing)."""
        proc = self._call(["shell", f"{command}; echo {_STATUS_MARK}$?"], timeout)
        match = re.search(rf"{_STATUS_MARK}(\d+)\s*$", proc.stdout)
        if not match:
            raise DeviceError(self._diagnose("shell", proc))
        return ShellResult(int(match.group(1)), proc.stdout[:match.start()], proc.stderr)

    def shell(self, command: str, timeout: Optional[float] = None) -> str:
        """stdout of `command`; a DeviceError quoting its output when it exits non-zero."""
        result = self.shell_status(command, timeout)
        if result.status != 0:
            said = (result.stderr.strip() or result.stdout.strip())[-500:]
            raise DeviceError(f"on device {self.serial}, {command!r} exited with status "
                              f"{result.status}: {said or '(no output)'}")
        return result.stdout

    def push(self, local: str, remote: str):
        self.run("push", local, remote)

    def _diagnose(self, what: str, proc: subprocess.CompletedProcess) -> str:
        """Why adb failed, from the device's state now, not from keywords in the message."""
        said = proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
        if self.serial is None:
            return f"adb {what} failed: {said}"
        try:
            entries = list_devices(Adb(self.path, None, 60))
        except DeviceError:
            return f"adb {what} failed on device {self.serial} and adb devices failed too: {said}"
        state = next((e.state for e in entries if e.serial == self.serial), None)
        if state is None:
            return f"device {self.serial} is not connected (any more) (adb said: {said})"
        if state != "device":
            return f"{_state_advice(self.serial, state)} (adb said: {said})"
        return f"adb {what} failed on device {self.serial}: {said}"


def _state_advice(serial: str, state: str) -> str:
    """What to do about a device listed in a state other than 'device'."""
    if state == "unauthorized":
        return (f"device {serial} is unauthorized: unlock the phone and accept the 'Allow USB "
                "debugging' prompt")
    if state == "offline":
        return f"device {serial} is offline: reconnect the cable or run 'adb reconnect'"
    return f"device {serial} is in state {state!r}, not 'device'"


def list_devices(adb: Adb) -> List[DeviceEntry]:
    """Parses `adb devices -l`."""
    entries = []
    for line in adb.run("devices", "-l").splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        details = dict(p.split(":", 1) for p in parts[2:] if ":" in p)
        entries.append(DeviceEntry(parts[0], parts[1], details))
    return entries


def pick_device(entries: Sequence[DeviceEntry], serial: Optional[str] = None) -> str:
    """The serial to use, or a DeviceError that says why none can be."""
    if not entries:
        raise DeviceError("no Android device found: connect a phone with USB debugging on "
                          "(adb devices -l lists nothing)")
    if serial is None:
        if len(entries) > 1:
            listing = ", ".join(f"{e.serial} ({e.state})" for e in entries)
            raise DeviceError(f"{len(entries)} devices attached ({listing}): choose one with "
                              "--serial")
        entry = entries[0]
    else:
        matches = [e for e in entries if e.serial == serial]
        if not matches:
            raise DeviceError(f"no device with serial {serial!r}; attached: "
                              + ", ".join(e.serial for e in entries))
        entry = matches[0]
    if entry.state != "device":
        raise DeviceError(_state_advice(entry.serial, entry.state))
    return entry.serial


class Phone:
    """One attached phone."""

    def __init__(self, adb: Adb):
        if not adb.serial:
            raise ValueError("Phone needs an Adb bound to a serial")
        self.adb = adb
        self.serial = adb.serial

    def getprop(self, name: str) -> str:
        return self.adb.shell(f"getprop {name}").strip()

    def info(self) -> Dict[str, str]:
        return {"serial": self.serial, "model": self.getprop("ro.product.model"),
                "manufacturer": self.getprop("ro.product.manufacturer"),
                "abi": self.getprop("ro.product.cpu.abi"),
                "android": self.getprop("ro.build.version.release"),
                "sdk": self.getprop("ro.build.version.sdk")}

    def require_supported_abi(self, abi: str):
        if abi not in SUPPORTED_ABIS:
            raise DeviceError(f"device {self.serial} has ABI {abi!r}; the benchmark binary is "
                              f"built for {SUPPORTED_ABIS[0]} (a 64-bit ARM phone is needed)")

    def max_frequencies(self) -> Dict[int, int]:
        """cpu index -> cpuinfo_max_freq (kHz), read in one shell call."""
        output = self.adb.shell(f"for f in {CPU_FREQ_GLOB}; do echo $f $(cat $f); done")
        freqs = {}
        for line in output.splitlines():
            match = re.search(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)", line)
            if match:
                freqs[int(match.group(1))] = int(match.group(2))
        if not freqs:
            raise DeviceError(f"device {self.serial}: could not read CPU frequencies from "
                              f"{CPU_FREQ_GLOB} (got {output.strip()[:200]!r})")
        return freqs

    def large_cores(self, freqs: Optional[Dict[int, int]] = None) -> List[int]:
        """The cores with the highest max frequency (the 'large' cluster)."""
        freqs = freqs or self.max_frequencies()
        top = max(freqs.values())
        return sorted(cpu for cpu, f in freqs.items() if f == top)


def taskset_mask(cores: Sequence[int]) -> str:
    """Hex CPU mask for `taskset`, e.g. cores 4-7 -> 'f0'."""
    if not cores or any(c < 0 for c in cores):
        raise ValueError(f"need non-negative core numbers, got {list(cores)}")
    return format(sum(1 << c for c in set(cores)), "x")
