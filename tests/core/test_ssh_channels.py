"""core/ssh_channels.py without I/O: which connection a channel goes on."""

from __future__ import annotations

from core.ssh_channels import Lanes


class Conn:
    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed


async def test_waits_leave_the_reserve_to_probes_and_spill_onto_a_second_connection() -> None:
    lanes: Lanes[Conn] = Lanes(10, reserve=2, max_connections=4)
    made: list[Conn] = []

    async def connect() -> Conn:
        made.append(Conn())
        return made[-1]

    waits = [await lanes.acquire(True, connect) for _ in range(9)]
    probes = [await lanes.acquire(False, connect) for _ in range(2)]

    assert [w.conn for w in waits].count(made[0]) == 8  # all but the reserve
    assert waits[8].conn is made[1]
    assert probes[0].conn is made[0] and probes[1].conn is made[0]  # the reserve, not queued
    assert len(made) == 2 and lanes.peak == 11


async def test_a_refused_channel_lowers_the_limit_for_every_connection_after() -> None:
    lanes: Lanes[Conn] = Lanes(10, max_connections=4)

    async def connect() -> Conn:
        return Conn()

    held = [await lanes.acquire(False, connect) for _ in range(4)]
    lanes.refused(held[-1])  # the fourth was refused: the server allows three
    await lanes.release(held[-1], False)

    assert lanes.limit == 3
    fourth = await lanes.acquire(False, connect)
    assert fourth.conn is not held[0].conn  # a new connection, not a fourth channel


async def test_a_closed_connection_is_replaced_and_forgotten_once_its_channels_end() -> None:
    lanes: Lanes[Conn] = Lanes(10)

    async def connect() -> Conn:
        return Conn()

    first = await lanes.acquire(False, connect)
    first.conn.closed = True
    second = await lanes.acquire(False, connect)
    assert second.conn is not first.conn
    await lanes.release(first, False)
    await lanes.release(second, False)
    assert [lane.conn for lane in lanes.live()] == [second.conn]
    lanes.pick(False)
    assert len(lanes.lanes) == 1
