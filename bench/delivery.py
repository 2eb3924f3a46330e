"""Delivery throughput: the outbox against plain yagmail, to the same loopback SMTP server.

    .venv/bin/python bench/delivery.py [--messages 300] [--rounds 5] [--postgres URL]
                                       [--smtp-latency MS]

Queues N messages in a fresh database, as recover-incident leaves them: cases whose stages are
done, in turn a recovered one (an apology, then a check-in invitation, its check-ins scheduled:
it stays open for them) and a smoothed-over one (an apology alone, which closes it). Drains
them through the outbox (claim, compose, send over one connection for the batch, record each
result and settle each case it changes), and sends N messages with plain
``yagmail.SMTP.send``; several rounds, in alternating order, since this machine is noisy.
Prints the median messages per second of both, the median of the rounds' ratios (goal: the
outbox at least 1.0 of plain yagmail) and the sockets each left open (goal: 0; the outbox's
counted once its database's pool is disposed, so a leaked SMTP or database connection shows).
The SMTP server runs in this process, so both sides share its CPU (and the GIL) alike: on
loopback only CPU counts. With ``--smtp-latency`` it answers each message after a pause, as a
provider across a network does, where waiting is what counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from statistics import median

import yagmail
from aiosmtpd.controller import Controller
from scratch import scratch_database

from amends.delivery.channels import EmailAdapter
from amends.delivery.mailcatcher import free_port
from amends.delivery.outbox import drain, message_id_for
from amends.domain import (
    Category,
    Channel,
    Decision,
    Fault,
    MessageKind,
    MessageStatus,
    ReplyChannel,
    Severity,
    Stage,
)
from amends.settings import Settings
from amends.storage import models
from amends.storage.db import Database

BODY = "<p>Dear Rodolfo,</p><p>We let you down, and we are sorry.</p>" * 5


class Sink:
    def __init__(self, latency: float = 0.0) -> None:
        self.count = 0
        self.latency = latency

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.latency:
            await asyncio.sleep(self.latency)  # a provider's answer across a network
        self.count += 1
        return "250 OK"


def open_sockets() -> int:
    """Sockets this process holds open (the listing's own descriptor may vanish meanwhile)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def queue(db: Database, n: int, sender: str) -> None:
    """N messages as recover-incident leaves them for email customers (see the module's text):
    a case's second message waits for its first; a case that closes does so with its last."""
    now = models.utcnow()
    with db.session() as session:
        customer = models.Customer(
            ref="C-1", name="Rodolfo K.", email="rk@example.com", locale="en"
        )
        queued, number = 0, 0
        while queued < n:
            recovered = number % 2 == 0
            incident = models.Incident(
                ref=f"INC-{number}", customer=customer, channel=Channel.EMAIL, received_at=now,
                summary="x", category=Category.OTHER, severity=Severity.HIGH, fault=Fault.OURS,
                costs={}, payload={},
            )  # fmt: skip
            case = models.Case(
                incident=incident, customer=customer, reply_channel=ReplyChannel.EMAIL,
                first_response_due=now + timedelta(hours=24), stage=Stage.REENGAGE,
                decision=Decision.RECOVER if recovered else Decision.SMOOTH_OVER,
            )  # fmt: skip
            session.add(case)
            session.flush()
            messages = [(Stage.FOLLOW_UP, MessageKind.APOLOGY)]
            if recovered:
                messages.append((Stage.REENGAGE, MessageKind.CHECKIN_INVITATION))
                session.add_all(
                    models.CheckIn(
                        case_id=case.id,
                        number=week,
                        starts_at=now + timedelta(weeks=week),
                        duration_minutes=30,
                        uid=f"case-{case.id}-checkin-{week}@bench",
                    )
                    for week in (1, 2, 3)
                )
            for stage, kind in messages[: n - queued]:
                key = f"bench-{queued}"
                session.add(
                    models.Message(
                        customer_id=customer.id, case_id=case.id, key=key, stage=stage, kind=kind,
                        channel=ReplyChannel.EMAIL, recipient="rk@example.com",
                        subject=f"Sorry {key}", body=BODY,
                        message_id=message_id_for(key, sender, installation="bench"),
                        status=MessageStatus.QUEUED,
                    )
                )  # fmt: skip
                queued += 1
            number += 1


def outbox_round(args: argparse.Namespace, port: int) -> tuple[float, int]:
    """Messages a second through the outbox, and the sockets it left open."""
    with tempfile.TemporaryDirectory() as folder, scratch_database(args.postgres) as url:
        settings = Settings(home=Path(folder), database_url=url, smtp_port=port)
        sockets_before = open_sockets()
        db = Database(settings.sqlalchemy_url)
        db.upgrade()
        queue(db, args.messages, settings.sender_email)
        started = time.perf_counter()
        report = drain(
            db, {ReplyChannel.EMAIL: EmailAdapter(settings)}, claim_timeout=timedelta(hours=1)
        )
        seconds = time.perf_counter() - started
        assert report.sent == args.messages, report
        db.dispose()  # the pool's idle connections are not left open by the outbox
        left = open_sockets() - sockets_before
    return args.messages / seconds, left


def plain_round(args: argparse.Namespace, port: int) -> tuple[float, int]:
    """Messages a second through plain ``yagmail.SMTP.send``, and the sockets it left open."""
    client = yagmail.SMTP(
        user="care@acme.example", host="127.0.0.1", port=port, smtp_ssl=False,
        smtp_starttls=False, smtp_skip_login=True,
    )  # fmt: skip
    sockets_before = open_sockets()
    started = time.perf_counter()
    for i in range(args.messages):
        client.send(to="rk@example.com", subject=f"Sorry {i}", contents=BODY, prettify_html=False)
    seconds = time.perf_counter() - started
    left = open_sockets() - sockets_before
    client.close()
    return args.messages / seconds, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of both, in alternating order; the figures are medians (default 5)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the outbox on PostgreSQL, in a scratch schema of this database "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test); default: a SQLite file",
    )
    parser.add_argument(
        "--smtp-latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="the SMTP server answers each message after this many milliseconds, as a "
        "provider across a network does (default 0: loopback, where only CPU counts)",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)  # plain yagmail leaks; we count, not warn

    sink, port = Sink(args.smtp_latency / 1000), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    outbox, plain, ratios, outbox_left, plain_left = [], [], [], 0, 0
    try:
        for round_ in range(args.rounds):
            # Alternating which goes first cancels a machine getting busier or quieter.
            runs = [outbox_round, plain_round][:: 1 if round_ % 2 == 0 else -1]
            figures = {run: run(args, port) for run in runs}
            outbox.append(figures[outbox_round][0])
            plain.append(figures[plain_round][0])
            outbox_left = max(outbox_left, figures[outbox_round][1])
            plain_left = max(plain_left, figures[plain_round][1])
            ratios.append(outbox[-1] / plain[-1])
    finally:
        controller.stop()
    assert sink.count == 2 * args.messages * args.rounds, sink.count

    database = "PostgreSQL" if args.postgres else "SQLite"
    print(f"messages                 {args.messages} a round, {args.rounds} rounds, {database}")
    print(
        f"outbox -> yagmail        {median(outbox):7.0f} msg/s (median)   "
        f"sockets left open: {outbox_left}"
    )
    print(
        f"plain yagmail.send       {median(plain):7.0f} msg/s (median)   "
        f"sockets left open: {plain_left}"
    )
    print(
        f"ratio outbox / plain     {median(ratios):7.2f}   median of the rounds' ratios "
        f"({min(ratios):.2f}-{max(ratios):.2f}; goal: at least 1.0)"
    )


if __name__ == "__main__":
    main()
