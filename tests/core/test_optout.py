"""The opt-out endpoint over real HTTP on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from loopback import serving
from pydantic import SecretStr
from sqlalchemy import select

from amends.delivery.adapter import Outgoing
from amends.delivery.channels import unsubscribe_link, unsubscribe_token
from amends.delivery.optout import FORM_ACTOR, optout_server
from amends.errors import ConfigurationError
from amends.exit_questions import QUESTIONS
from amends.runtime import Runtime
from amends.storage import models

SECRET = "s3cret-for-tests"
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def endpoint(rt: Runtime) -> Iterator[str]:
    settings = rt.settings.model_copy(
        update={
            "unsubscribe_secret": SecretStr(SECRET),
            "unsubscribe_url": "https://acme.example/unsubscribe",
        }
    )
    with serving(optout_server(settings, rt.db, port=0)) as url:
        yield url


def suppressions(rt: Runtime) -> list[tuple[str, str]]:
    with rt.db.session() as session:
        rows = session.execute(select(models.Suppression.address, models.Suppression.scope))
        return [tuple(row) for row in rows]


def link(address: str, token: str | None = None) -> str:
    token = token or unsubscribe_token(SECRET, address)
    return "/unsubscribe?" + urlencode({"email": address, "token": token})


def test_one_click_records_the_opt_out(rt: Runtime, endpoint: str) -> None:
    with httpx.Client(base_url=endpoint) as client:
        page = client.get(link("rk@example.com"))
        assert page.status_code == 200 and 'method="post"' in page.text
        assert suppressions(rt) == []  # a link scanner's GET changes nothing
        done = client.post(link("rk@example.com"), content="List-Unsubscribe=One-Click")
        assert done.status_code == 200 and "no more offers" in done.text
        again = client.post(link("rk@example.com"), data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200  # twice is fine
    assert suppressions(rt) == [("rk@example.com", "marketing")]


def test_the_link_in_the_mail_is_the_one_the_endpoint_takes(rt: Runtime, endpoint: str) -> None:
    settings = rt.settings.model_copy(
        update={
            "unsubscribe_secret": SecretStr(SECRET),
            "unsubscribe_url": f"{endpoint}/unsubscribe",
        }
    )
    one_click = httpx.post(unsubscribe_link(settings, "Ann@Example.com"), content=ONE_CLICK)
    assert one_click.status_code == 200
    assert suppressions(rt) == [("ann@example.com", "marketing")]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (link("rk@example.com", token="0" * 32), 403),  # a token made for someone else
        (link("victim@example.com", token=unsubscribe_token(SECRET, "rk@example.com")), 403),
        ("/unsubscribe?email=rk@example.com", 403),
        ("/unsubscribe", 403),
        ("/other?" + link("rk@example.com").split("?")[1], 404),
    ],
)
def test_a_forged_or_broken_link_changes_nothing(
    rt: Runtime, endpoint: str, path: str, status: int
) -> None:
    assert httpx.post(endpoint + path).status_code == status
    assert suppressions(rt) == []


def test_a_huge_body_is_refused(rt: Runtime, endpoint: str) -> None:
    response = httpx.post(endpoint + link("rk@example.com"), content=b"x" * 100_000)
    assert response.status_code == 413
    assert suppressions(rt) == []


def test_the_page_escapes_the_address(endpoint: str) -> None:
    address = '<script>alert(1)</script>"@example.com'
    page = httpx.get(endpoint + link(address))
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_the_endpoint_needs_the_secret(rt: Runtime) -> None:
    with pytest.raises(ConfigurationError, match="AMENDS_UNSUBSCRIBE_SECRET"):
        optout_server(rt.settings, rt.db, port=0)


def lapsed_customer_mail(rt: Runtime, endpoint: str, locale: str = "en") -> Outgoing:
    """The first mail the nightly run sends a lapsed customer (the exit questions), with this
    endpoint's links."""
    from dataclasses import replace
    from datetime import date, timedelta

    from amends.delivery.outbox import drain
    from amends.nightly.reengagement import run_night

    settings = rt.settings.model_copy(
        update={
            "unsubscribe_secret": SecretStr(SECRET),
            "unsubscribe_url": f"{endpoint}/unsubscribe",
        }
    )
    current = replace(rt, settings=settings)
    with rt.db.session() as session:
        session.add(
            models.Customer(
                ref="C-1",
                name="Ann Smith",
                email="ann@example.com",
                locale=locale,
                last_purchase_on=date(2025, 1, 1),
            )
        )
    run_night(current)
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    (mail,) = rt.channels[next(iter(rt.channels))].delivered
    return mail


def links(mail: Outgoing) -> dict[str, str]:
    found = [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', mail.body)]
    return {urlsplit(href).path: href for href in found}


def test_the_mail_to_a_lapsed_customer_links_to_its_own_opt_out(rt: Runtime, endpoint: str) -> None:
    mail = lapsed_customer_mail(rt, endpoint)
    assert mail.subject == "Could you tell us why, Ann?"
    assert httpx.post(links(mail)["/unsubscribe"], content=ONE_CLICK).status_code == 200
    assert suppressions(rt) == [("ann@example.com", "marketing")]


def exit_answers(rt: Runtime) -> list[tuple[str | None, ...]]:
    with rt.db.session() as session:
        rows = session.execute(
            select(
                models.ExitAnswers.why,
                models.ExitAnswers.went_to,
                models.ExitAnswers.second_chance,
                models.ExitAnswers.stay,
                models.ExitAnswers.recorded_by,
            )
        )
        return [tuple(row) for row in rows]


def test_the_exit_questions_are_answered_once_on_the_signed_form(
    rt: Runtime, endpoint: str
) -> None:
    form = links(lapsed_customer_mail(rt, endpoint, locale="es"))["/exit-answers"]
    page = httpx.get(form)
    assert page.status_code == 200 and 'lang="es"' in page.text
    for question in QUESTIONS:  # the one definition of the questions, in her language
        assert escape(question.asked_in("es")) in page.text
    assert exit_answers(rt) == []  # a link scanner's GET records nothing
    empty = httpx.post(form, data={"why": "  ", "stay": ""})
    assert empty.status_code == 400 and "al menos una respuesta" in empty.text
    sent = httpx.post(
        form,
        data={
            "why": "Llegaban tarde\ncada semana",
            "stay": "Puntualidad",
            "customer": "C-2",  # not a question: ignored, the link says whose form it is
        },
    )
    assert sent.status_code == 200 and "Gracias" in sent.text
    assert exit_answers(rt) == [
        ("Llegaban tarde cada semana", None, None, "Puntualidad", FORM_ACTOR)
    ]
    again = httpx.post(form, data={"why": "otra vez"})
    assert "ya teníamos sus respuestas" in again.text
    assert len(exit_answers(rt)) == 1


def test_an_answer_form_opens_only_with_its_own_customer_s_token(
    rt: Runtime, endpoint: str
) -> None:
    form = links(lapsed_customer_mail(rt, endpoint))["/exit-answers"]
    token = parse_qs(urlsplit(form).query)["token"][0]
    forged = [
        f"{endpoint}/exit-answers?" + urlencode({"customer": "C-2", "token": token}),
        f"{endpoint}/exit-answers?customer=C-1",
        # An opt-out token signs another purpose: it opens no form.
        f"{endpoint}/exit-answers?"
        + urlencode({"customer": "C-1", "token": unsubscribe_token(SECRET, "C-1")}),
    ]
    for link_ in forged:
        assert httpx.get(link_).status_code == 403
        assert httpx.post(link_, data={"why": "forged"}).status_code == 403
    assert exit_answers(rt) == []


@pytest.mark.parametrize("length", ["-1", "abc", "1e9"])
def test_a_lying_content_length_is_refused_at_once(rt: Runtime, endpoint: str, length: str) -> None:
    import socket

    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        request = (
            f"POST {link('rk@example.com')} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        )
        connection.sendall(request.encode())
        assert connection.recv(100).startswith(b"HTTP/1.0 400")
    assert suppressions(rt) == []


def test_the_form_posts_only_to_the_endpoint_itself(endpoint: str) -> None:
    page = httpx.get(endpoint + "//evil.example" + link("rk@example.com"))
    assert page.status_code == 404
    page = httpx.get(endpoint + link("rk@example.com"))
    assert 'action="/unsubscribe?' in page.text


@pytest.mark.parametrize("body", [b"", b"x=1", b"List-Unsubscribe=Maybe", b"One-Click"])
def test_only_the_one_click_body_unsubscribes(rt: Runtime, endpoint: str, body: bytes) -> None:
    response = httpx.post(endpoint + link("rk@example.com"), content=body)
    assert response.status_code == 400
    assert suppressions(rt) == []


def test_one_click_as_multipart_form_data_unsubscribes(rt: Runtime, endpoint: str) -> None:
    # RFC 8058 prefers multipart/form-data; some mail programs send it.
    response = httpx.post(
        endpoint + link("rk@example.com"), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert response.status_code == 200
    assert suppressions(rt) == [("rk@example.com", "marketing")]


def test_the_page_s_button_sends_the_one_click_body(endpoint: str) -> None:
    page = httpx.get(endpoint + link("rk@example.com"))
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text


def test_a_client_trickling_its_request_is_cut_off_at_the_deadline(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import time

    from amends.delivery import optout

    monkeypatch.setattr(optout, "DEADLINE_SECONDS", 0.5)
    settings = rt.settings.model_copy(update={"unsubscribe_secret": SecretStr(SECRET)})
    with serving(optout_server(settings, rt.db, port=0)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            connection.sendall(f"GET {link('rk@example.com')} HTTP/1.1\r\n".encode())
            # A header line well inside the per-read timeout each time, forever; the server
            # hangs up once the whole request's deadline is past.
            for number in range(100):  # 10 s at most: 20 deadlines
                try:
                    connection.sendall(f"X-Slow-{number}: 1\r\n".encode())
                except OSError:  # the server hung up
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the server still reads a request trickled in for 10 s")


def test_connections_beyond_the_cap_are_answered_503_at_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from amends.delivery import optout

    monkeypatch.setattr(optout, "MAX_CONNECTIONS", 2)
    settings = rt.settings.model_copy(update={"unsubscribe_secret": SecretStr(SECRET)})
    with serving(optout_server(settings, rt.db, port=0)) as url:
        host, port = url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
        try:
            for connection in held:  # each holds a thread, sending half a request
                connection.sendall(b"GET /unsubscribe HTTP/1.1\r\n")
            with socket.create_connection((host, int(port)), timeout=5) as extra:
                assert extra.recv(100).startswith(b"HTTP/1.0 503")
        finally:
            for connection in held:
                connection.close()
        # The slots come back: a later client is served.
        assert httpx.get(url + link("rk@example.com")).status_code == 200
