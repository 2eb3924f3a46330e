"""amends' Prefect blocks: Prefect's block standards, registration, and the same settings as the
environment variables they stand for."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import Message
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from factories import make_incident
from loopback import SECRET, Receiver, serving
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from amends.blocks import AmendsDatabase, AmendsWebhooks
from amends.delivery.channels import RecordingAdapter, load_channels
from amends.delivery.webhooks import WebhookAdapter
from amends.domain import ReplyChannel
from amends.errors import NotFound
from amends.flows import recover_incident
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime
from amends.settings import Settings
from amends.storage.db import Database

LOGO = Path(__file__).resolve().parents[2] / "docs" / "logo.png"


class _LogoFromTheRepository(urllib.request.BaseHandler):
    """Answers the blocks' logo URL with the file it will serve: no internet here."""

    handler_order = 100  # before the real HTTPS handler

    def https_open(self, request: urllib.request.Request) -> io.BufferedIOBase | None:
        if request.full_url != str(AmendsDatabase._logo_url):
            return None  # anything else goes to the network, as it would
        headers = Message()
        headers["Content-Type"] = "image/png"
        response = urllib.request.addinfourl(
            io.BytesIO(LOGO.read_bytes()), headers, request.full_url, code=200
        )
        response.msg = "OK"
        return response


@pytest.fixture(autouse=True)
def offline_logo() -> Iterator[None]:
    urllib.request.install_opener(urllib.request.build_opener(_LogoFromTheRepository()))
    yield
    urllib.request.install_opener(None)


class TestAmendsDatabase(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return AmendsDatabase


class TestAmendsWebhooks(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return AmendsWebhooks


def test_both_blocks_share_one_logo() -> None:
    assert AmendsDatabase._logo_url == AmendsWebhooks._logo_url


def test_the_webhook_block_makes_what_the_environment_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMENDS_WEBHOOK_SMS_URL", "https://sms.example/hook?token=t1")
    monkeypatch.setenv("AMENDS_WEBHOOK_SOCIAL_URL", "https://social.example/hook")
    monkeypatch.setenv("AMENDS_WEBHOOK_SECRET", "hush")
    from_env = Settings()
    for name in ("AMENDS_WEBHOOK_SMS_URL", "AMENDS_WEBHOOK_SOCIAL_URL", "AMENDS_WEBHOOK_SECRET"):
        monkeypatch.delenv(name)
    block = AmendsWebhooks(
        sms_url="https://sms.example/hook?token=t1",
        social_url="https://social.example/hook",
        secret="hush",
    )
    from_block = block.apply(Settings())
    assert from_block == from_env

    env_channels, block_channels = load_channels(from_env), load_channels(from_block)
    assert env_channels.keys() == block_channels.keys() == {
        ReplyChannel.EMAIL, ReplyChannel.SMS, ReplyChannel.SOCIAL
    }  # fmt: skip
    sms = block_channels[ReplyChannel.SMS]
    assert isinstance(sms, WebhookAdapter) and sms.url == "https://sms.example/hook?token=t1"
    assert "t1" not in repr(block) and "hush" not in repr(block)


def test_the_database_block_makes_what_the_environment_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql+psycopg://amends:pw@db.example/amends"
    monkeypatch.setenv("AMENDS_DATABASE_URL", url)
    from_env = Settings()
    monkeypatch.delenv("AMENDS_DATABASE_URL")
    block = AmendsDatabase(url=url)
    assert block.apply(Settings()) == from_env
    assert "pw" not in repr(block)


@pytest.mark.usefixtures("prefect_harness")
def test_a_saved_block_keeps_its_secrets_out_of_the_api() -> None:
    name = f"amends-test-{uuid.uuid4().hex[:8]}"
    AmendsWebhooks(chat_url="https://chat.example/hook?token=t2", secret="hush-hush").save(name)
    with get_client(sync_client=True) as client:
        shown = client.read_block_document_by_name(
            name, "amends-webhook-channels", include_secrets=False
        )
    assert "t2" not in json.dumps(shown.data) and "hush" not in json.dumps(shown.data)
    loaded = AmendsWebhooks.load(name)
    assert loaded.secret.get_secret_value() == "hush-hush"
    assert loaded.apply(Settings()).webhook_chat_url == "https://chat.example/hook?token=t2"


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_finds_the_blocks_by_the_collection_entry_point() -> None:
    # A server started where amends is installed registers them by itself, and a block class
    # is found by its slug (Prefect imports the collection's module to look it up).
    with get_client(sync_client=True) as client:
        for slug in ("amends-database", "amends-webhook-channels"):
            assert client.read_block_type_by_slug(slug).slug == slug
    code = (
        "from prefect.blocks.core import Block; "
        "print(Block.get_block_class_from_key('amends-webhook-channels').__module__)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.strip() == "amends.blocks", found.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_block_register_registers_them() -> None:
    with get_client(sync_client=True) as client:
        # Forget what the server registered at start, so that the command is what registers.
        for slug in ("amends-database", "amends-webhook-channels"):
            block_type = client.read_block_type_by_slug(slug)
            if not client.read_block_documents_by_type(slug):
                client.delete_block_type(block_type.id)
    prefect = Path(sys.executable).with_name("prefect")
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    result = subprocess.run(
        [str(prefect), "block", "register", "-m", "amends.blocks"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully registered 2 blocks" in result.stdout
    with get_client(sync_client=True) as client:
        database = client.read_block_type_by_slug("amends-database")
        assert database.name == "Amends Database"
        assert "load" in (database.code_example or "")
        assert client.read_block_type_by_slug("amends-webhook-channels")


@pytest.mark.usefixtures("prefect_harness")
def test_an_sms_complaint_is_answered_through_the_webhook_block(rt: Runtime) -> None:
    Receiver.received, Receiver.answer = [], 200
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Receiver)) as url:
        webhooks = AmendsWebhooks(sms_url=f"{url}/hook?token=t3", secret=SECRET)
        incident = make_incident(ref="INC-SMS-BLOCK", channel="sms", customer={"email": None})
        state = recover_incident(incident, webhooks=webhooks, return_state=True)
    outcome = state.result()
    assert [(m.kind, m.channel, m.status) for m in outcome.messages] == [("apology", "sms", "sent")]
    assert Receiver.received[0]["recipient"] == "+34612345678"
    # The run's parameters, as the server keeps them (and the UI shows them), hide the secrets.
    with get_client(sync_client=True) as client:
        parameters = json.dumps(client.read_flow_run(state.state_details.flow_run_id).parameters)
    assert "t3" not in parameters and SECRET not in parameters


@pytest.mark.usefixtures("prefect_harness")
def test_a_flow_given_the_database_block_keeps_the_case_there(
    rt: Runtime, recorder: RecordingAdapter, tmp_path: Path
) -> None:
    elsewhere = Database(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    elsewhere.upgrade()
    try:
        database = AmendsDatabase(url=str(elsewhere.engine.url))
        outcome = recover_incident(make_incident(ref="INC-DB-BLOCK"), database=database)
        assert case_outcome(elsewhere, "INC-DB-BLOCK").case_id == outcome.case_id
    finally:
        elsewhere.dispose()
    with pytest.raises(NotFound):
        case_outcome(rt.db, "INC-DB-BLOCK")  # not in the environment's database
    assert len(recorder.delivered) == 2  # the runtime's own channels still deliver
