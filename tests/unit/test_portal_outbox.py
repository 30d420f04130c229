from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal.outbox import OutboxEmailNotFoundError, is_email_name, list_outbox, read_email
from portal.sanitize import sanitize_html
from portal.views import link_own_urls
from shared.domain.clock import FixedClock
from shared.domain.email import OutgoingEmail
from shared.email.outbox import OutboxEmailSender

START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def write_emails(directory: Path, subjects: list[str]) -> None:
    """Writes through the app's real local sender, one minute apart."""
    for index, subject in enumerate(subjects):
        clock = FixedClock(START + timedelta(minutes=index))
        sender = OutboxEmailSender(directory, "DoNotReply@billing.pastdue.example", clock=clock.now)
        sender.send(
            OutgoingEmail(
                operation_id=f"op-{index}",
                to_address="billing@contoso.example",
                to_name=None,
                subject=subject,
                plain_text=f"Text of {subject}\nSettle: http://127.0.0.1:7072/accounts/acc-1001/settle?subscription=sub-a",
                html=f"<p>HTML of <b>{subject}</b></p><script>alert(1)</script>",
            )
        )


def test_the_outbox_lists_emails_newest_first(tmp_path: Path) -> None:
    write_emails(tmp_path, ["First", "Second", "Third"])

    entries = list_outbox(tmp_path)

    assert [e.subject for e in entries] == ["Third", "Second", "First"]
    assert entries[0].to == "billing@contoso.example"
    assert entries[0].sent_at == START + timedelta(minutes=2)


def test_the_listing_skips_the_senders_index_and_unfinished_files(tmp_path: Path) -> None:
    write_emails(tmp_path, ["Only"])
    (tmp_path / ".writing-abc.tmp").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("not an email")

    assert [e.subject for e in list_outbox(tmp_path)] == ["Only"]


def test_a_missing_folder_lists_nothing(tmp_path: Path) -> None:
    assert list_outbox(tmp_path / "absent") == []


def test_an_email_is_read_with_its_text_and_html_parts(tmp_path: Path) -> None:
    write_emails(tmp_path, ["Payment failed"])
    (entry,) = list_outbox(tmp_path)

    email = read_email(tmp_path, entry.name)

    assert email.entry.subject == "Payment failed"
    assert email.sender == "DoNotReply@billing.pastdue.example"
    assert email.text.startswith("Text of Payment failed")
    assert email.html is not None
    assert "<b>Payment failed</b>" in email.html


@pytest.mark.parametrize("name", ["../secret.eml", "..eml", ".by-operation", "a/b.eml", ".hidden.eml", "x.txt", ""])
def test_names_outside_the_outbox_are_refused(tmp_path: Path, name: str) -> None:
    assert not is_email_name(name)
    with pytest.raises(OutboxEmailNotFoundError):
        read_email(tmp_path, name)


def test_an_unknown_email_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(OutboxEmailNotFoundError):
        read_email(tmp_path, "20260101T000000Z__nobody__gone__0123456789abcdef.eml")


def test_sanitizing_keeps_layout_and_drops_scripts_and_handlers() -> None:
    dirty = (
        '<table><tr><td style="color:#111">Total <strong>€ 62,45</strong></td></tr></table>'
        '<script>alert(1)</script><p onclick="steal()">Hi</p><img src="https://tracker.example/x.gif">'
        '<iframe src="https://evil.example"></iframe><style>body{background:url(https://x)}</style>'
    )

    clean = sanitize_html(dirty)

    assert clean == ('<table><tr><td style="color:#111">Total <strong>€ 62,45</strong></td></tr></table><p>Hi</p>')


@pytest.mark.parametrize(
    "link",
    [
        '<a href="javascript:alert(1)">x</a>',
        '<a href=" JaVaScRiPt:alert(1)">x</a>',
        '<a href="data:text/html,<script>1</script>">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
    ],
)
def test_sanitizing_drops_script_links(link: str) -> None:
    assert sanitize_html(link) == '<a rel="noopener noreferrer" target="_blank">x</a>'


def test_sanitizing_keeps_web_links_opening_outside_the_frame() -> None:
    assert sanitize_html('<a href="https://portal.example/settle?a=1&amp;b=2">Pay</a>') == (
        '<a href="https://portal.example/settle?a=1&amp;b=2" rel="noopener noreferrer" target="_blank">Pay</a>'
    )


@pytest.mark.parametrize(
    "style", ["background:url(https://x)", "width: expression(alert(1))", "background: u\\72l(x)", "@import 'x'"]
)
def test_sanitizing_drops_styles_that_could_load_or_run_something(style: str) -> None:
    assert sanitize_html(f'<p style="{style}">x</p>') == "<p>x</p>"


def test_sanitizing_escapes_text_and_closes_open_tags() -> None:
    assert sanitize_html("<p>1 &lt; 2 <b>bold") == "<p>1 &lt; 2 <b>bold</b></p>"


def test_sanitizing_drops_the_head_and_its_title() -> None:
    assert sanitize_html("<html><head><title>Receipt</title></head><body><p>Paid</p></body></html>") == "<p>Paid</p>"


def test_links_into_the_portal_become_relative_and_everything_else_stays_escaped() -> None:
    text = "Settle: http://127.0.0.1:7072/accounts/acc-1001/settle?subscription=sub-a.\n<b>https://other.example/x</b>"

    shown = link_own_urls(text, ("http://127.0.0.1:7072",))

    assert str(shown) == (
        'Settle: <a href="/accounts/acc-1001/settle?subscription=sub-a">'
        "http://127.0.0.1:7072/accounts/acc-1001/settle?subscription=sub-a</a>.\n"
        "&lt;b&gt;https://other.example/x&lt;/b&gt;"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:7072//evil.example/phish",
        "http://127.0.0.1:7072/\\evil.example/phish",
        "http://127.0.0.1:7072/\\/evil.example/phish",
    ],
)
def test_a_url_of_the_portal_whose_path_leaves_the_portal_is_not_made_a_link(url: str) -> None:
    shown = str(link_own_urls(f"Your subscription 'see {url}' is past due.", ("http://127.0.0.1:7072",)))

    assert "<a " not in shown
    assert "href" not in shown
