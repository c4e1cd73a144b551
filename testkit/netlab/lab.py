"""A shaped network link in a Linux network namespace, for tests and benchmarks.

:class:`NetLab` creates a namespace ``tkn-<tag>`` joined to the host by a veth pair (the
host end ``<ns>-h`` gets ``<subnet>.1``, the namespace end ``<ns>-n`` gets ``<subnet>.2``
and a default route via the host end). A browser started inside the namespace (see
:meth:`NetLab.chromium_wrapper`) reaches a server on the host at :attr:`NetLab.host_ip`,
over a link that the lab can shape while the test runs:

* bandwidth, per direction: ``tc qdisc ... tbf rate R burst B latency L`` on the sending
  end (uplink = namespace to host, on the namespace end; downlink on the host end);
* random loss, both directions: nftables ``numgen random mod 1000 < N drop`` in the
  netdev ingress and egress hooks of the namespace end (UDP only by default, like a lossy radio that TCP
  recovers from by itself);
* a total outage: every packet in or out of the namespace is dropped until it ends;
* an address change (a phone moving from Wi-Fi to cellular): the namespace end is
  re-addressed and its default route re-added; old sockets keep the old address.

The kernel here has no netem, hence tbf and nftables. Everything the lab makes is named
after its namespace and removed by :meth:`close` (idempotent; also run by the context
manager on failure, and by :func:`remove_stale` for labs of processes that died). Needs
root, ``ip``, ``tc`` and ``nft``; :func:`netlab_available` says whether they are there.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

logger = logging.getLogger(__name__)

PREFIX = "tkn-"
CHROMIUM = os.environ.get("TAKAN_TEST_CHROMIUM", "/usr/bin/chromium")
#: Labs take /24s from here; one already on the host (another lab) is skipped.
_POOL = ipaddress.ip_network("10.233.0.0/16")
_TABLE = "takan_netlab"
_lock = threading.Lock()
_counter = 0


class NetLabError(RuntimeError):
    """A command of the lab failed; the message quotes it and its stderr."""


@dataclass(frozen=True)
class Shape:
    """A token bucket: ``rate_kbit`` kbit/s, ``burst_bytes`` bucket, ``latency_ms`` queue."""

    rate_kbit: int
    burst_bytes: int = 16_000
    latency_ms: int = 200

    def tbf_args(self) -> list[str]:
        return [
            "tbf", "rate", f"{self.rate_kbit}kbit", "burst", str(self.burst_bytes),
            "latency", f"{self.latency_ms}ms",
        ]


def netlab_available() -> Optional[str]:
    """None if a lab can be made here, else why not (for ``pytest.skip``)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install.sh installs iproute2 and nftables)"
    return None


def _run(args: Sequence[str], stdin: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), input=stdin, text=True, capture_output=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetLabError(f"{' '.join(args)!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _used_networks() -> set[ipaddress.IPv4Network]:
    out = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    used = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            used.add(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    return used


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Remove namespaces named ``<prefix>...`` whose creating process is gone.

    A lab's namespace is ``tkn-<pid>-<n>``: only those of dead pids are removed, so other
    processes' live labs are left alone.
    """
    removed = []
    for line in _run(["ip", "netns", "list"]).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _run(["ip", "link", "del", f"{name}-h"], check=False)
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


class NetLab:
    """One namespace and its veth link to the host. Use as a context manager."""

    def __init__(self, tag: Optional[str] = None) -> None:
        global _counter
        with _lock:
            _counter += 1
            number = _counter
        # Interface names are at most 15 bytes: "tkn-<pid>-<n>-h" stays under that.
        self.name = f"{PREFIX}{os.getpid() % 100000}-{tag or number}"
        if len(self.name) + 2 > 15:
            raise ValueError(f"lab name {self.name!r} is too long for interface names")
        self.host_if = f"{self.name}-h"
        self.ns_if = f"{self.name}-n"
        self.network: Optional[ipaddress.IPv4Network] = None
        self.host_ip = ""
        self.ns_ip = ""
        self.uplink: Optional[Shape] = None
        self.downlink: Optional[Shape] = None
        self.loss_percent = 0.0
        self.loss_udp_only = True
        self.outage_on = False
        self._created = False
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None

    # ---- lifecycle ----------------------------------------------------------------------

    def create(self) -> "NetLab":
        reason = netlab_available()
        if reason:
            raise NetLabError(reason)
        if self._created:
            return self
        remove_stale()
        self._created = True  # from here on close() undoes whatever part was made
        try:
            used = _used_networks()
            with _lock:
                network = next(n for n in _POOL.subnets(new_prefix=24) if n not in used)
                assert isinstance(network, ipaddress.IPv4Network)
                self.network = network
                hosts = list(network.hosts())
                self.host_ip, self.ns_ip = str(hosts[0]), str(hosts[1])
                _run(["ip", "netns", "add", self.name])
                _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
            _run(["ip", "link", "set", self.ns_if, "netns", self.name])
            _run(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if])
            _run(["ip", "link", "set", self.host_if, "up"])
            self.ns(["ip", "link", "set", "lo", "up"])
            self.ns(["ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_if])
            self.ns(["ip", "link", "set", self.ns_if, "up"])
            self.ns(["ip", "route", "add", "default", "via", self.host_ip])
            self._apply_filter()
        except BaseException:
            self.close()
            raise
        logger.info("netlab %s: host %s <-> namespace %s", self.name, self.host_ip, self.ns_ip)
        return self

    def close(self) -> None:
        """Remove the namespace, the veth pair and the wrapper scripts. Idempotent."""
        if not self._created:
            return
        self._created = False
        _run(["ip", "link", "del", self.host_if], check=False)
        _run(["ip", "netns", "del", self.name], check=False)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        logger.info("netlab %s: removed", self.name)

    def __enter__(self) -> "NetLab":
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- commands -------------------------------------------------------------------------

    def ns(self, args: Sequence[str], check: bool = True, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace."""
        return _run(["ip", "netns", "exec", self.name, *args], stdin=stdin, check=check)

    # ---- link conditions ----------------------------------------------------------------------

    def shape(self, uplink: Optional[Shape] = None, downlink: Optional[Shape] = None) -> None:
        """Limit bandwidth per direction (None: unlimited). Replaces earlier shaping."""
        self.ns(["tc", "qdisc", "del", "dev", self.ns_if, "root"], check=False)
        _run(["tc", "qdisc", "del", "dev", self.host_if, "root"], check=False)
        if uplink is not None:
            self.ns(["tc", "qdisc", "add", "dev", self.ns_if, "root", *uplink.tbf_args()])
        if downlink is not None:
            _run(["tc", "qdisc", "add", "dev", self.host_if, "root", *downlink.tbf_args()])
        self.uplink, self.downlink = uplink, downlink

    def loss(self, percent: float, udp_only: bool = True) -> None:
        """Drop ``percent`` % of packets at random, in each direction (0 ends it)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss percent must be within 0..100, got {percent}")
        self.loss_percent, self.loss_udp_only = percent, udp_only
        self._apply_filter()

    def outage(self, on: bool) -> None:
        """Start or end a total outage: nothing gets in or out of the namespace."""
        self.outage_on = on
        self._apply_filter()

    def clear(self) -> None:
        """No shaping, no loss, no outage."""
        self.shape(None, None)
        self.loss_percent, self.outage_on = 0.0, False
        self._apply_filter()

    def change_address(self) -> str:
        """Move the namespace end to the next free address of its /24; returns it.

        The old address is removed, so sockets bound to it are dead (as on a phone that
        moved to another network); the default route is added again.
        """
        assert self.network is not None
        taken = {self.host_ip, self.ns_ip}
        new = next(str(h) for h in list(self.network.hosts())[2:] if str(h) not in taken)
        old, self.ns_ip = self.ns_ip, new
        # Deleting the primary address also drops the secondaries and the routes: go in order.
        self.ns(["ip", "addr", "del", f"{old}/24", "dev", self.ns_if])
        self.ns(["ip", "addr", "add", f"{new}/24", "dev", self.ns_if])
        self.ns(["ip", "route", "replace", "default", "via", self.host_ip, "src", new])
        logger.info("netlab %s: address %s -> %s", self.name, old, new)
        return new

    def _apply_filter(self) -> None:
        """Write the namespace's nftables table from the lab's state, atomically.

        The netdev ingress/egress hooks of the namespace end drop packets on the wire, so
        a sender sees no error (an ``output`` hook drop would fail its ``sendto`` with
        EPERM, which no real lossy network does).
        """
        rule = ""
        if self.outage_on:
            rule = "drop"
        elif self.loss_percent > 0:
            match = "ip protocol udp " if self.loss_udp_only else ""
            rule = f"{match}numgen random mod 1000 < {int(round(self.loss_percent * 10))} drop"
        body = f" {rule};" if rule else ""
        script = (
            f"table netdev {_TABLE}\ndelete table netdev {_TABLE}\n"
            f"table netdev {_TABLE} {{\n"
            f'  chain ingress {{ type filter hook ingress device "{self.ns_if}" priority 0; policy accept;{body} }}\n'
            f'  chain egress {{ type filter hook egress device "{self.ns_if}" priority 0; policy accept;{body} }}\n'
            "}\n"
        )
        self.ns(["nft", "-f", "-"], stdin=script)

    # ---- browsers ---------------------------------------------------------------------------

    def chromium_wrapper(self, chromium: str = CHROMIUM) -> Path:
        """An executable that starts ``chromium`` inside the namespace (for Playwright).

        Pass it as ``executable_path``; over plain HTTP add :meth:`secure_origin_args`.
        """
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"{self.name}-")
        path = Path(self._tmp.name) / "chromium"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {chromium} "$@"\n')
        path.chmod(0o755)
        return path

    @staticmethod
    def secure_origin_args(origin: str) -> list[str]:
        """Chromium flags that give ``http://<ip>:<port>`` camera access and WebRTC."""
        return [f"--unsafely-treat-insecure-origin-as-secure={origin}"]

    def counters(self) -> dict[str, int]:
        """Bytes and packets through the namespace end (for checks and logs)."""
        out = self.ns(["cat", f"/sys/class/net/{self.ns_if}/statistics/tx_bytes",
                       f"/sys/class/net/{self.ns_if}/statistics/rx_bytes"]).stdout.split()
        return {"tx_bytes": int(out[0]), "rx_bytes": int(out[1])}
