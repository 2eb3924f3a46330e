"""The business profile: read once, written by `amends init`, and the sample identity refused
for real mail."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from amends.business import Business, example_business, load_business
from amends.cli import app
from amends.domain import Category, OfferKind, Severity
from amends.errors import ConfigurationError
from amends.messages.catalogue import business_context
from amends.settings import Settings

BUSINESSES = Path(__file__).parents[1] / "fixtures" / "businesses"


def business(name: str) -> Business:
    return load_business(BUSINESSES / f"{name}.yaml")


def test_the_three_fixture_businesses_load() -> None:
    cleaner, restaurant, plumber = (business(n) for n in ("dry_cleaner", "restaurant", "plumber"))
    assert (cleaner.currency, restaurant.currency, plumber.currency) == ("EUR", "GBP", "USD")
    assert not any(b.is_example for b in (cleaner, restaurant, plumber))
    assert example_business().is_example


def test_the_signature_follows_the_customers_language() -> None:
    cleaner = business("dry_cleaner")
    assert str(cleaner.signature("es")) == "Marta Gil, encargada de la tienda"
    assert str(cleaner.signature("es_MX")) == "Marta Gil, encargada de la tienda"
    assert str(cleaner.signature("fr")) == "Marta Gil, shop manager"  # English for the rest


def test_templates_get_the_profile_under_the_same_keys(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, business_file=BUSINESSES / "restaurant.yaml")
    context = business_context(settings, "es")
    assert context["name"] == "The Copper Kettle"
    assert context["signature"] == "Sam Okafor, director general"
    assert (context["signer"], context["title"]) == ("Sam Okafor", "director general")
    assert context["email"] == "hello@copperkettle.co.uk"
    assert settings.business_timezone == "Europe/London"


def test_without_a_profile_amends_is_the_demos_sample_business(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.business.is_example and settings.business_name == "Acme Cleaning"
    (tmp_path / "business.yaml").write_text(
        (BUSINESSES / "plumber.yaml").read_text(), encoding="utf-8"
    )
    assert Settings(home=tmp_path).business_name == "Reyes Plumbing"


@pytest.mark.parametrize("host", ["smtp.example.net", "192.0.2.10", "10.0.0.5"])
def test_real_mail_as_the_sample_business_is_refused_in_one_line(tmp_path: Path, host: str) -> None:
    settings = Settings(home=tmp_path, smtp_host=host)
    with pytest.raises(ConfigurationError) as refused:
        settings.check_identity()
    message = str(refused.value)
    assert "amends init" in message and "\n" not in message and host in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_local_catcher_takes_the_sample_business(tmp_path: Path, host: str) -> None:
    Settings(home=tmp_path, smtp_host=host).check_identity()


def test_a_real_profile_sends_anywhere(tmp_path: Path) -> None:
    Settings(
        home=tmp_path, smtp_host="smtp.example.net", business_file=BUSINESSES / "plumber.yaml"
    ).check_identity()


def test_the_email_adapter_refuses_the_sample_identity_on_a_real_server(tmp_path: Path) -> None:
    from amends.delivery.channels import EmailAdapter

    with pytest.raises(ConfigurationError, match="amends init"):
        EmailAdapter(Settings(home=tmp_path, smtp_host="smtp.example.net"))


def test_remedies_fit_by_category_severity_and_one_off() -> None:
    kinds = [
        r.kind for r in example_business().remedies_for(Category.SERVICE_FAILURE, Severity.CRITICAL)
    ]
    assert OfferKind.FREE_TRIAL_AND_GUARANTEE in kinds and OfferKind.GUARANTEE_CONTRACT in kinds
    one_off = [
        r.kind
        for r in example_business().remedies_for(
            Category.SERVICE_FAILURE, Severity.CRITICAL, one_off=True
        )
    ]
    assert not {OfferKind.FREE_TRIAL, OfferKind.GUARANTEE_CONTRACT} & set(one_off)
    assert [r.kind for r in example_business().remedies_for(Category.BILLING, Severity.HIGH)] == [
        OfferKind.REFUND,
        OfferKind.SERVICE_CREDIT,
        OfferKind.DISCOUNT,
    ]


def test_closed_days_and_holidays_move_to_the_next_open_day() -> None:
    restaurant = business("restaurant")  # closed Mondays, 25 and 26 December
    assert restaurant.next_open_day(date(2026, 12, 7)) == date(2026, 12, 8)  # a Monday
    assert restaurant.next_open_day(date(2026, 12, 25)) == date(2026, 12, 27)
    assert restaurant.next_open_day(date(2026, 12, 27)) == date(2026, 12, 27)


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"signatures": {"es": {"name": "Marta"}}}, "'en' entry"),
        ({"opening_days": ["mon", "funday"]}, "opening_days.1"),
        ({"currency": "euro"}, "currency"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"sender_email": "not an address"}, "sender_email"),
        # Names go into mail headers: a line break would inject one.
        ({"name": "Acme\r\nBcc: everyone@example.com"}, "name"),
        ({"remedies": [{"kind": "free_lunch"}]}, "remedies.0.kind"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_wrong_profile_is_refused_naming_the_field(
    tmp_path: Path, change: dict, named: str
) -> None:
    data = yaml.safe_load((BUSINESSES / "plumber.yaml").read_text()) | change
    with pytest.raises(ConfigurationError, match=named):
        load_business(write(tmp_path, data))


def test_a_profile_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "business.yaml"
    path.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not a YAML business profile"):
        load_business(path)


FLAGS = [
    "--yes",
    "--name", "Tintorería La Estrella",
    "--signer", "Marta Gil",
    "--title-es", "encargada de la tienda",
    "--sender-email", "atencion@tintoreria-estrella.es",
    "--opening-days", "mon,tue,wed,thu,fri,sat",
    "--holidays", "2026-12-25,2027-01-06",
    "--remedies", "redo,refund,service_credit",
]  # fmt: skip


def test_init_with_flags_writes_a_profile_amends_reads(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--home", str(tmp_path), *FLAGS])
    assert result.exit_code == 0, result.output
    settings = Settings(home=tmp_path)
    profile = settings.business
    assert profile.name == "Tintorería La Estrella" and not profile.is_example
    assert str(profile.signature("es")) == "Marta Gil, encargada de la tienda"
    assert str(profile.signature("en")) == "Marta Gil, customer care manager"  # the default
    assert profile.sender_name == "Tintorería La Estrella"  # defaults to the name
    assert [r.kind for r in profile.remedies] == ["redo", "refund", "service_credit"]
    assert profile.holidays == [date(2026, 12, 25), date(2027, 1, 6)]
    settings.model_copy(update={"smtp_host": "smtp.example.net"}).check_identity()


def test_init_asks_with_defaults(tmp_path: Path) -> None:
    answers = "Reyes Plumbing\nLuis Reyes\nowner\npropietario\noffice@reyes.example.com\n"
    answers += "\n\nUSD\nAmerica/New_York\n\n\nredo,refund\n"
    result = CliRunner().invoke(app, ["init", "--home", str(tmp_path)], input=answers)
    assert result.exit_code == 0, result.output
    profile = Settings(home=tmp_path).business
    assert (profile.name, profile.currency, profile.timezone) == (
        "Reyes Plumbing",
        "USD",
        "America/New_York",
    )
    assert profile.opening_days == ["mon", "tue", "wed", "thu", "fri"]
    assert profile.sender_name == "Reyes Plumbing"


def test_init_never_replaces_a_profile_unasked(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["init", "--home", str(tmp_path), *FLAGS]).exit_code == 0
    before = (tmp_path / "business.yaml").read_text()
    again = CliRunner().invoke(app, ["init", "--home", str(tmp_path), *FLAGS, "--name", "Other"])
    assert again.exit_code == 1 and "--force" in again.output
    assert (tmp_path / "business.yaml").read_text() == before


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--currency", "euro"], "currency"),
        (["--remedies", "refund,free_lunch"], "no remedy free_lunch"),
        (["--sender-email", "nobody"], "sender_email"),
    ],
)
def test_init_refuses_a_wrong_answer_and_writes_nothing(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    result = CliRunner().invoke(app, ["init", "--home", str(tmp_path), *FLAGS, *flags])
    assert result.exit_code == 1 and named in result.output
    assert not (tmp_path / "business.yaml").exists()


def test_init_with_yes_needs_what_has_no_default(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--home", str(tmp_path), "--yes"])
    assert result.exit_code == 1 and "--name is needed" in result.output
