"""security.guard.Evidence: counting each host's blocks of a hashed piece."""

from __future__ import annotations

from dataclasses import dataclass

from ccbt_engine.security.guard import Evidence


@dataclass(frozen=True)
class FakeConn:
    address: tuple[str, int]


def test_one_sender_counts_every_block() -> None:
    conn = FakeConn(("10.0.0.1", 6881))
    ev = Evidence(dict.fromkeys(range(64), conn), {})
    assert ev.host_counts() == {"10.0.0.1": 64}


def test_mixed_senders_are_summed_per_host() -> None:
    a, a2, b = FakeConn(("1.1.1.1", 1)), FakeConn(("1.1.1.1", 2)), FakeConn(("2.2.2.2", 1))
    senders = {0: a, 1: b, 2: a2, 3: a, 4: object()}  # no address: not attributed
    ev = Evidence(senders, {})
    assert ev.host_counts() == {"1.1.1.1": 3, "2.2.2.2": 1}
    assert ev.hosts() == {0: "1.1.1.1", 1: "2.2.2.2", 2: "1.1.1.1", 3: "1.1.1.1"}


def test_no_senders() -> None:
    assert Evidence({}, {}).host_counts() == {}
