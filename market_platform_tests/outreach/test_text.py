"""Pure parts: masking, chat escaping and splitting, templates, the subscriber CSV."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from market_platform.errors import InputError
from market_platform.outreach import messages, subscribers
from market_platform.outreach.channels import text
from market_platform.outreach.masking import mask_email, mask_number, scrub
from market_platform.outreach.render import render


def test_masking_hides_addresses_numbers_and_chat_ids():
    assert mask_email("anna.schmidt@example.de") == "a***@e***.de"
    assert mask_number("+4915112345678") == "+49*********78"
    assert mask_number("700123") == "700*23"
    cleaned = scrub("550 <anna.schmidt@example.de> unknown, call +49 151 1234567")
    assert "anna" not in cleaned and "1234567" not in cleaned and "a***@e***.de" in cleaned


def test_escaping_for_both_parse_modes():
    assert text.escape_html("5 < 6 & <b>") == "5 &lt; 6 &amp; &lt;b&gt;"
    assert text.escape_markdown_v2("Preis: 2.50 € (heute)!") == r"Preis: 2\.50 € \(heute\)\!"


def test_split_keeps_entities_whole_and_respects_the_limit():
    body = "\n\n".join(f"Absatz {i}: " + "Brot & <Butter> " * 30 for i in range(40))
    parts = text.split(body, 1000, text.escape_html, heading="<b>Betreff</b>")

    assert len(parts) > 1
    assert all(text.utf16_len(p) <= 1000 for p in parts)
    assert parts[0].startswith("<b>Betreff</b>\n\nAbsatz 0:")
    joined = "".join(parts)
    assert joined.count("&amp;") == 40 * 30 and joined.count("&lt;Butter&gt;") == 40 * 30
    # A single word longer than the limit is cut, never lost.
    word = "x" * 2500
    assert "".join(text.split(word, 1000)) == word


def test_templates_in_german_and_english():
    site = messages.BusySite("heidenheim.arkaden", "Schloss-Arkaden", "count", 1234.4, "17:00",
                             None, 812.0, ["09:00", "10:00"])
    de = render("busy_alert", "de", day=date(2024, 5, 14), sites=[site])
    en = render("busy_alert", "en", day=date(2024, 5, 14), sites=[site])

    assert de.subject == "Morgen viel los: Schloss-Arkaden"
    assert "für Dienstag, den 14.5.2024" in de.text
    assert "etwa 1.234 Besucher pro Stunde" in de.text and "etwa 812." in de.text
    assert en.subject == "Busy tomorrow: Schloss-Arkaden"
    assert "for Tuesday, 2024-05-14" in en.text and "about 1,234 visitors per hour" in en.text


def test_busy_sites_by_capacity_and_by_usual_day():
    hours = pd.date_range("2024-05-12 22:00", periods=168, freq="h", tz="UTC")
    local_day = hours.tz_convert("Europe/Berlin").date
    usual = [40.0 if h.hour in (10, 11) else 10.0 for h in hours]
    busy_day = [90.0 if d == date(2024, 5, 14) and h.hour == 15 else u
                for d, h, u in zip(local_day, hours, usual)]
    forecasts = pd.concat([
        pd.DataFrame({"site_id": "a", "hour_utc": hours, "forecast": busy_day}),
        pd.DataFrame({"site_id": "b", "hour_utc": hours, "forecast": usual}),
        pd.DataFrame({"site_id": "pool", "hour_utc": hours, "forecast": usual}),
    ])
    sites = pd.DataFrame({"site_id": ["a", "b", "pool"], "name": ["A", "B", "Bad"],
                          "kind": ["count", "count", "occupancy"],
                          "capacity": [None, None, 45.0], "timezone": "Europe/Berlin",
                          "osm_market_id": [None, "node/42", None]})

    busy = messages.busy_sites(forecasts, sites, date(2024, 5, 14), share=0.8, factor=1.25)

    assert sorted(busy) == ["a", "pool"]
    assert busy["a"].peak == 90.0 and busy["a"].peak_hour == "17:00"  # 15 UTC, summer time
    assert busy["a"].usual_peak == 40.0 and busy["a"].share is None
    assert busy["pool"].share == pytest.approx(40 / 45)


def test_subscriber_csv_is_checked_without_leaking_addresses(tmp_path):
    good = tmp_path / "subscribers.csv"
    good.write_text(
        "subscriber_id,email,telegram_chat_id,whatsapp_number,channel,language,markets,"
        "regions,consent_at\n"
        "s1,Anna@Example.DE,,,email,de,heidenheim.arkaden;node/42,09162 09,"
        "2024-01-02T09:30:00+01:00\n"
        "s2,,-100123,,telegram,en,,DE,\n"
    )
    people = subscribers.read_csv(good)
    assert people[0].email == "Anna@example.de"
    assert people[0].markets == ("heidenheim.arkaden", "node/42")
    assert people[0].regions == ("09", "09162")
    assert people[0].consent_at.isoformat() == "2024-01-02T08:30:00+00:00"
    assert people[1].consent_at is None and people[1].address() == "-100123"

    bad = tmp_path / "bad.csv"
    bad.write_text("subscriber_id,email,channel\ns3,anna(at)example.de,email\n")
    with pytest.raises(InputError) as error:
        subscribers.read_csv(bad)
    assert "row 2 (subscriber s3): email is not a valid address" in str(error.value)
    assert "anna" not in str(error.value)


def test_emails_of_one_alert_share_the_body_and_differ_in_recipient_and_id(tmp_path):
    from email import message_from_bytes
    from email.policy import SMTPUTF8

    from market_platform.outreach.channels.base import Outbound
    from market_platform.outreach.channels.email import EmailChannel
    from market_platform.outreach.config import OutreachConfig

    chart = tmp_path / "karte.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\nnot really a picture")
    channel = EmailChannel(OutreachConfig(smtp_from="Marktplattform <info@example.org>"))
    body = "Morgen viel los in den Schloss-Arkaden: gegen 17 Uhr etwa 180 Besucher.\n"
    sent = {}
    for key, recipient, utf8 in [("busy:1", "anna@example.de", False),
                                 ("busy:2", "jörg@bäckerei.example", True)]:
        message = Outbound(key, key, recipient, "de", "Morgen viel los: Öffnungszeiten", body,
                           attachment=str(chart))
        sent[key] = message_from_bytes(channel._build(message, utf8), policy=SMTPUTF8)

    first, second = sent["busy:1"], sent["busy:2"]
    assert first["To"] == "anna@example.de"
    assert second["To"] == "jörg@bäckerei.example"
    assert first["Message-ID"] != second["Message-ID"]
    for mail in (first, second):
        assert mail["From"] == "Marktplattform <info@example.org>"
        assert mail["Subject"] == "Morgen viel los: Öffnungszeiten"
        assert mail["Content-Language"] == "de"
        assert mail["Date"]
        text, picture = [part for part in mail.iter_parts()]
        assert text.get_content().replace("\r\n", "\n") == body
        assert picture.get_filename() == "karte.png"
        assert picture.get_content() == chart.read_bytes()
    # The ASCII-only message keeps its non-ASCII subject RFC 2047-encoded.
    assert b"=?utf-8?" in channel._build(Outbound("busy:3", "s", "anna@example.de", "de",
                                                  "Öffnung", body), False)
