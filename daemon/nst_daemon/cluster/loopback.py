"""A Ray cluster on this machine's loopback: a head and worker nodes, each node its own
raylet process. For trying `nst-daemon --cluster` on one machine, and for the tests and
benches (docs/cluster.md).

`python -m nst_daemon.cluster.loopback` prints the head's address, then reads commands on
stdin ("add CPUS" adds a node and prints its id; "quit" ends the cluster); LoopbackCluster
drives it from another process. Loopback only: with LOOPBACK_ENV (which the front door needs
too) every Ray port listens on 127.0.0.1; Ray otherwise swaps 127.0.0.1 for the machine's
address and listens on all interfaces.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ..process import end, read_line

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def serve(head_cpus: int) -> None:
    """The script's side: the cluster, driven by stdin."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": head_cpus,
            "include_dashboard": False,
            "node_ip_address": "127.0.0.1",
        },
    )
    print(cluster.address, flush=True)
    nodes = {}
    try:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["add"]:
                node = cluster.add_node(num_cpus=int(words[1]), node_ip_address="127.0.0.1")
                nodes[node.unique_id] = node
                print(node.unique_id, flush=True)
            elif words[:1] == ["quit"]:
                break
    finally:
        cluster.shutdown()


class LoopbackCluster:
    """The cluster as a subprocess, in `python` (whose nst-studio the actors will run)."""

    def __init__(self, python: str, head_cpus: int = 0, timeout_s: float = 120.0) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", "nst_daemon.cluster.loopback", str(head_cpus)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **LOOPBACK_ENV},
        )
        self.address = self._line(timeout_s)

    def _line(self, timeout_s: float) -> str:
        line = read_line(self.proc, timeout_s).strip()
        if not line:
            self.close()
            raise RuntimeError("the loopback Ray cluster did not answer")
        return line

    def add(self, cpus: int, timeout_s: float = 120.0) -> str:
        """A new worker node with `cpus` CPUs; returns its node id."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"add {cpus}\n")
        self.proc.stdin.flush()
        return self._line(timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                end(self.proc, 10)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
