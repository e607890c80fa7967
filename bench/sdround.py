"""One measured round of a systemd container, shared by bench/systemd.sh and
bench/podman-systemd.sh so every runtime is timed the same way.

Every command runs as the benchmark user through a go script that first moves it into the
user's cgroup delegation (`cgm enter`), prints `ready` and waits for a line: the clock starts
at that go, so the move costs no runtime anything. systemd's final state is asked by one
polling process that entered before the start was let go.
"""

import re
import subprocess
import sys
import time

# Retries the ask (which fails until systemd's bus is up) every 10 ms until a final state.
POLL = ["sh", "-c", "while :; do s=$(\"$@\" 2>/dev/null); case $s in "
        "running|degraded|maintenance|stopping) echo $s; exit 0;; esac; sleep 0.01; done", "poll"]


def analyze(out):
    """systemd's own boot time in seconds from `systemd-analyze` ("… in 149ms (userspace)")."""
    m = re.search(r"in ([0-9.]+)(ms|s) \(userspace\)", out)
    return None if not m else float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


class User:
    """Commands as `uid:gid` with environment `env` (an `env -i …` argv) through `go`."""

    def __init__(self, uid, gid, env, go, cwd="/"):
        self.prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups"] + env + [go]
        self.cwd = cwd

    def spawn(self, cmd):
        """Start cmd; it enters the delegation and waits for the go."""
        p = subprocess.Popen(self.prefix + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=self.cwd)
        if p.stdout.readline().strip() != "ready":
            sys.exit(f"{' '.join(cmd)}: could not enter the delegation: {p.stderr.read()}")
        return p

    @staticmethod
    def go(p, cmd, check=True):
        """Let a spawned command run: (when it got the go, when it ended, exit code, stdout)."""
        t = time.perf_counter()
        p.stdin.write("\n")
        p.stdin.flush()
        out, err = p.communicate()
        end = time.perf_counter()
        if check and p.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: {err.strip()}")
        return t, end, p.returncode, out.strip()

    def run(self, cmd, check=True):
        """Run cmd: (seconds from the go, exit code, stdout)."""
        t, end, rc, out = self.go(self.spawn(cmd), cmd, check)
        return end - t, rc, out

    def round(self, start, ask, stop):
        """start, then `ask + systemctl is-system-running --wait` until systemd answers, then
        stop: (start s, ready s, stop s, systemd's own boot s or None, final state)."""
        wait = ["systemctl", "is-system-running", "--wait"]
        poll = self.spawn(POLL + ask + wait)
        t0, t1, _, _ = self.go(self.spawn(start), start)
        _, end, _, state = self.go(poll, ask)
        _, _, out = self.run(ask + ["systemd-analyze"], check=False)
        st, _, _ = self.run(stop)
        return t1 - t0, end - t0, st, analyze(out), state
