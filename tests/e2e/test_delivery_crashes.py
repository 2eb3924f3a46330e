"""The outbox against real failures: senders killed mid-send, and two senders at once.

Each test queues mail for several cases, then runs ``amends send`` in separate processes
against a real SMTP server on loopback, and counts what the server received.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from factories import make_incident
from sqlalchemy import func, select

from amends.delivery.mailcatcher import free_port
from amends.delivery.outbox import ON_THE_WIRE
from amends.domain import MessageKind, MessageStatus, Stage
from amends.recovery.intake import open_case
from amends.recovery.stages import run_stage
from amends.runtime import Runtime
from amends.storage import models

# End to end: `amends send` processes, killed mid-send, against an SMTP server on loopback.
pytestmark = pytest.mark.e2e

CASES = 15  # an apology and a check-in invitation each
KILLS = 60  # kill points per run of the kill test


class SlowServer:
    """Accepts each message after a short pause, so that a kill can land mid-conversation.

    Told a victim, it kills that sender at a chosen point of its n-th message: before the
    server's answer (the server has the message; the sender never hears so), or a moment after
    it (the sender has its 250 but may not have recorded it yet).
    """

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.victim: int | None = None  # the pid of the sender to kill
        self.on_message = 0
        self.after_answer: float | None = None  # seconds after the answer; None: before it
        self.seen = 0

    def aim(self, pid: int, on_message: int, after_answer: float | None) -> None:
        self.victim, self.on_message, self.after_answer, self.seen = (
            pid, on_message, after_answer, 0,
        )  # fmt: skip

    def _kill(self) -> None:
        if self.victim is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.victim, signal.SIGKILL)
            self.victim = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        message = email.message_from_bytes(envelope.original_content)
        self.message_ids.append(message["Message-ID"])
        self.seen += 1
        if self.victim is not None and self.seen == self.on_message:
            if self.after_answer is None:
                self._kill()
            else:
                asyncio.get_running_loop().call_later(self.after_answer, self._kill)
        return "250 OK"


@pytest.fixture
def server() -> Iterator[tuple[SlowServer, int]]:
    handler, port = SlowServer(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def queue_mail(rt: Runtime, cases: int = CASES, first: int = 0) -> set[str]:
    """Queue the follow-up and re-engagement mail of several cases, without sending any."""
    for n in range(first, first + cases):
        case_id = open_case(
            rt, make_incident(ref=f"INC-{n}", complaint_message_id=f"<c{n}@customer.example>",
                              customer={"ref": f"C-{n}"})
        )  # fmt: skip
        for stage in Stage:
            run_stage(rt, case_id, stage)
    with rt.db.session() as session:
        return set(session.scalars(select(models.Message.message_id)))


def sender(rt: Runtime, port: int, claim_timeout: float) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMENDS_")}
    env.update(
        AMENDS_HOME=str(rt.settings.home),
        AMENDS_DATABASE_URL=rt.settings.sqlalchemy_url,
        AMENDS_SMTP_PORT=str(port),
        AMENDS_CLAIM_TIMEOUT_SECONDS=str(claim_timeout),
    )
    return [sys.executable, "-m", "amends", "send", "--now"], env


def unsent(rt: Runtime) -> int:
    with rt.db.session() as session:
        return session.scalar(
            select(func.count()).where(models.Message.status != MessageStatus.SENT)
        )


def test_a_sender_killed_at_any_moment_loses_nothing(
    rt: Runtime, server: tuple[SlowServer, int]
) -> None:
    handler, port = server
    expected = queue_mail(rt)
    # Only one sender runs at a time here: a claim older than a second belongs to a dead one
    # (a live sender gives back what it has not sent in half that).
    command, env = sender(rt, port, claim_timeout=1)
    chance, kills, where = random.Random(2026), 0, Counter[str]()
    for attempt in range(3 * KILLS):
        if kills >= KILLS:
            break
        if not unsent(rt):  # all sent: more mail for the next senders to die over
            expected |= queue_mail(rt, first=CASES * (attempt + 1))
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        point = chance.choice(["at a random moment", "before the answer", "after the answer"])
        if point == "at a random moment":  # starting, claiming, composing, recording...
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=chance.uniform(0.2, 1.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        else:
            after = chance.uniform(0, 0.01) if point == "after the answer" else None
            handler.aim(process.pid, chance.randint(1, 3), after)
        process.wait(timeout=120)
        handler.victim = None
        if process.returncode == -signal.SIGKILL:
            kills += 1
            where[point] += 1
    time.sleep(1.1)  # the last killed sender's claims are now old enough to be taken over
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)

    received = Counter(handler.message_ids)
    lost = expected - set(received)
    # A duplicate needs a kill between the server's acceptance and the sender's record (of
    # at most ON_THE_WIRE messages: it records one while it sends the next); each resend
    # carries the message's own Message-ID (counted by that id).
    duplicates = sum(received.values()) - len(received)
    print(
        f"\n{kills} kill points ({', '.join(f'{n} {p}' for p, n in sorted(where.items()))}), "
        f"{len(expected)} messages, {duplicates} duplicates with the same Message-ID, "
        f"{len(lost)} lost"
    )
    assert kills >= KILLS
    assert not lost and set(received) == expected
    assert duplicates <= ON_THE_WIRE * kills
    assert unsent(rt) == 0
    # Under kills too, a case's invitation never arrived before its apology.
    first_arrival = {message_id: handler.message_ids.index(message_id) for message_id in received}
    with rt.db.session() as session:
        for case_id, kind, message_id in session.execute(
            select(models.Message.case_id, models.Message.kind, models.Message.message_id)
        ):
            if kind is MessageKind.CHECKIN_INVITATION:
                apology = session.scalar(
                    select(models.Message.message_id).where(
                        models.Message.case_id == case_id,
                        models.Message.kind == MessageKind.APOLOGY,
                    )
                )
                assert first_arrival[apology] < first_arrival[message_id]


def test_two_senders_at_once_deliver_each_message_once(
    rt: Runtime, server: tuple[SlowServer, int]
) -> None:
    handler, port = server
    expected = queue_mail(rt)
    command, env = sender(rt, port, claim_timeout=600)
    senders = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    reports = [process.communicate(timeout=120)[0] for process in senders]
    assert sorted(handler.message_ids) == sorted(expected)  # each exactly once
    sent = [int(report.split("Sent ")[1].split(";")[0]) for report in reports]
    assert sum(sent) == len(expected)
    print(f"\nthe two senders sent {sent[0]} and {sent[1]} of {len(expected)}")
