"""The ports collector against real listening sockets."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from healthcheck.collectors.ports import (
    DEFAULT_EPHEMERAL,
    PortsCollector,
    _is_loopback,
    ephemeral_ports,
)
from healthcheck.config import parse_config
from healthcheck.model import Status

from support import free_port

ME = {"pid": os.getpid(), "name": psutil.Process().name()}


@contextmanager
def listening(
    host: str = "127.0.0.1", family: int = socket.AF_INET, port: int = 0
) -> Iterator[int]:
    """A real listening TCP socket for the duration; yields its port."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if family == socket.AF_INET6:
            # Only IPv6, so that an IPv4 socket may share the port.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen()
        yield sock.getsockname()[1]


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def collect(ports: dict[str, int]) -> tuple[dict[str, dict], list, Status, dict, dict]:
    section = PortsCollector().collect(parse_config({"services": {"ports": ports}}))
    json.dumps(section.data)
    by_service = {p["service"]: p for p in section.data["ports"]}
    return by_service, section.findings, section.status, section.data, section.volatile


def test_a_listener_and_a_closed_port() -> None:
    closed = free_port()
    with listening() as port:
        entries, findings, status, data, _ = collect({"web": port, "ghost": closed})
    assert entries["web"] == {
        "service": "web",
        "port": port,
        "listening": True,
        "addresses": [f"127.0.0.1:{port}"],
        "processes": [ME],
    }
    assert entries["ghost"] == {
        "service": "ghost",
        "port": closed,
        "listening": False,
        "addresses": [],
        "processes": [],
    }
    assert [p["port"] for p in data["ports"]] == sorted([port, closed])
    (finding,) = findings
    assert (finding.id, finding.severity) == (f"ports.not-listening:ghost:{closed}", Status.WARN)
    assert finding.title == f"Nothing listens on port {closed} (ghost)"
    assert "supervisorctl status" in finding.hint
    assert status is Status.WARN


def test_all_listening_is_ok() -> None:
    with listening() as first, listening() as second:
        _, findings, status, data, _ = collect({"b": first, "a": second})
    assert (findings, status) == ([], Status.OK)
    assert [p["port"] for p in data["ports"]] == sorted([first, second])


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv4_and_ipv6_listeners_on_one_port() -> None:
    with listening() as port, listening("::1", socket.AF_INET6, port):
        entries, findings, *_ = collect({"web": port})
    assert entries["web"]["addresses"] == [f"127.0.0.1:{port}", f"[::1]:{port}"]
    assert entries["web"]["processes"] == [ME]  # one process, however many sockets
    assert findings == []


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_only_listener_counts() -> None:
    with listening("::1", socket.AF_INET6) as port:
        entries, findings, *_ = collect({"web": port})
    assert entries["web"]["listening"] is True
    assert entries["web"]["addresses"] == [f"[::1]:{port}"]
    assert findings == []


def test_a_connected_socket_is_not_a_listener() -> None:
    # A client connection from an ephemeral port must not count as a listener there.
    with listening() as port, socket.create_connection(("127.0.0.1", port)) as client:
        client_port = client.getsockname()[1]
        entries, findings, *_ = collect({"client": client_port})
    assert entries["client"]["listening"] is False
    assert [f.id for f in findings] == [f"ports.not-listening:client:{client_port}"]


def test_other_listeners_show_exposed_ones_but_not_loopback_ephemeral_ones() -> None:
    low, high = ephemeral_ports()
    with listening("0.0.0.0") as exposed, listening("127.0.0.1") as internal:
        assert low <= internal <= high  # the kernel picked it from the ephemeral range
        _, _, _, data, volatile = collect({"nothing": free_port()})
    if data["other_listeners_left_out"]:
        pytest.skip("this machine has more listeners than the report keeps")
    others = {o["port"]: o for o in data["other_listeners"]}
    assert others[exposed] == {
        "port": exposed,
        "addresses": [f"0.0.0.0:{exposed}"],
        "processes": [ME],
    }
    assert internal not in others
    assert volatile["loopback_ephemeral_listeners"] >= 1
    assert list(others) == sorted(others)


def test_loopback_addresses() -> None:
    assert _is_loopback("127.0.0.1:80")
    assert _is_loopback("127.3.2.1:80")
    assert _is_loopback("[::1]:80")
    assert _is_loopback("[::ffff:127.0.0.1]:80")
    assert not _is_loopback("0.0.0.0:80")
    assert not _is_loopback("[::]:80")
    assert not _is_loopback("10.0.0.5:80")
    assert not _is_loopback("garbage")


def test_ephemeral_range_from_proc_or_default(tmp_path: Path) -> None:
    table = tmp_path / "ip_local_port_range"
    table.write_text("40000\t50000\n")
    assert ephemeral_ports(str(table)) == (40000, 50000)
    table.write_text("nonsense\n")
    assert ephemeral_ports(str(table)) == DEFAULT_EPHEMERAL
    assert ephemeral_ports(str(tmp_path / "absent")) == DEFAULT_EPHEMERAL
