"""The opt-out endpoint over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from loopback import serving
from pydantic import SecretStr
from sqlalchemy import select

from amends.delivery.channels import unsubscribe_link, unsubscribe_token
from amends.delivery.optout import optout_server
from amends.errors import ConfigurationError
from amends.runtime import Runtime
from amends.storage import models

SECRET = "s3cret-for-tests"


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
        assert client.post(link("rk@example.com")).status_code == 200  # twice is fine
    assert suppressions(rt) == [("rk@example.com", "marketing")]


def test_the_link_in_the_mail_is_the_one_the_endpoint_takes(rt: Runtime, endpoint: str) -> None:
    settings = rt.settings.model_copy(
        update={
            "unsubscribe_secret": SecretStr(SECRET),
            "unsubscribe_url": f"{endpoint}/unsubscribe",
        }
    )
    assert httpx.post(unsubscribe_link(settings, "Ann@Example.com")).status_code == 200
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


def test_the_winback_mail_links_to_its_own_opt_out(rt: Runtime, endpoint: str) -> None:
    import re
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
                ref="C-1", name="Ann", email="ann@example.com", last_purchase_on=date(2025, 1, 1)
            )
        )
    run_night(current)
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    (offer,) = rt.channels[next(iter(rt.channels))].delivered
    (href,) = re.findall(r'href="([^"]+)"', offer.body)
    assert httpx.post(href.replace("&amp;", "&")).status_code == 200
    assert suppressions(rt) == [("ann@example.com", "marketing")]


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
