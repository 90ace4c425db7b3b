"""The pure reading of route-netlink datagrams: which say an address changed."""

from __future__ import annotations

from p2pshare.node.netwatch.core import HEADER, KERNEL_PORT, Verdict, read_datagram

NEWADDR, DELADDR, NEWROUTE, NEWLINK, OVERRUN = 20, 21, 24, 16, 4


def msg(kind: int, body: bytes = b"", length: int | None = None) -> bytes:
    """One nlmsghdr and its body, padded to 4 bytes as the kernel sends it."""
    raw = HEADER.pack(HEADER.size + len(body) if length is None else length, kind, 0, 0, 0) + body
    return raw + b"\0" * (-len(raw) % 4)


def test_an_address_added_or_removed_is_a_change() -> None:
    assert read_datagram(msg(NEWADDR, b"x" * 40), KERNEL_PORT) is Verdict.CHANGED
    assert read_datagram(msg(DELADDR, b"x" * 40), KERNEL_PORT) is Verdict.CHANGED


def test_lost_messages_count_as_a_change() -> None:
    assert read_datagram(msg(OVERRUN), KERNEL_PORT) is Verdict.CHANGED
    assert read_datagram(msg(NEWROUTE, b"y" * 8), KERNEL_PORT, truncated=True) is Verdict.CHANGED


def test_other_messages_are_no_change() -> None:
    assert read_datagram(msg(NEWROUTE, b"r" * 28) + msg(NEWLINK, b"l" * 5), KERNEL_PORT) is Verdict.UNCHANGED
    assert read_datagram(b"", KERNEL_PORT) is Verdict.UNCHANGED


def test_a_change_after_other_messages_and_padding_is_found() -> None:
    data = msg(NEWROUTE, b"r" * 5) + msg(NEWLINK, b"l" * 3) + msg(NEWADDR, b"a" * 7)
    assert read_datagram(data, KERNEL_PORT) is Verdict.CHANGED


def test_a_datagram_from_a_process_is_ignored() -> None:
    """Any local process may unicast to our socket: only the kernel (port 0) counts."""
    assert read_datagram(msg(NEWADDR, b"x" * 40), 4242) is Verdict.IGNORED


def test_malformed_lengths_end_the_walk() -> None:
    assert read_datagram(msg(NEWADDR, length=8), KERNEL_PORT) is Verdict.IGNORED  # shorter than its header
    assert read_datagram(msg(NEWADDR, b"x" * 4, length=4096), KERNEL_PORT) is Verdict.IGNORED  # past the end
    assert read_datagram(msg(NEWROUTE)[:10], KERNEL_PORT) is Verdict.IGNORED  # a cut header
    # what came before a malformed message still counts
    assert read_datagram(msg(DELADDR) + msg(NEWROUTE, length=3), KERNEL_PORT) is Verdict.CHANGED


def test_a_zero_length_header_cannot_loop_forever() -> None:
    assert read_datagram(HEADER.pack(0, NEWROUTE, 0, 0, 0) * 1000, KERNEL_PORT) is Verdict.IGNORED
