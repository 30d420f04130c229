"""`EmailAddress` (shared/domain/model.py): only addresses the mailer can use get in, wherever they enter."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.domain.model import EmailAddress

ADDRESS: TypeAdapter[str] = TypeAdapter(EmailAddress)

# Each of these was accepted before and made every later email to the account fail.
UNUSABLE = {
    "NUL": "billing\x00@contoso.example",
    "control character": "billing\x07@contoso.example",
    "line feed": "billing\n@contoso.example",
    "comma": "billing,finance@contoso.example",
    "semicolon": "billing;finance@contoso.example",
    "two dots": "billing..finance@contoso.example",
    "leading dot": ".billing@contoso.example",
    "trailing dot before the @": "billing.@contoso.example",
    "numeric top-level domain": "a@1.2",
    "encoded word, Q": "=?utf-8?q?billing?=@contoso.example",
    "encoded word, B": "=?UTF-8?B?YmlsbGluZw==?=@contoso.example",
    "display name": "Billing <billing@contoso.example>",
    "quoted local part": '"billing"@contoso.example',
    "address literal": "billing@[192.0.2.1]",
    "no top-level domain": "billing@localhost",
    "special-use domain": "billing@contoso.test",
    "non-ASCII local part": "factuur-ü@contoso.example",
    "space": "billing @contoso.example",
    "too long": "a" * 250 + "@contoso.example",
}


@pytest.mark.parametrize("kind", list(UNUSABLE))
def test_an_address_the_mailer_cannot_use_is_refused_with_a_reason_that_does_not_repeat_it(kind: str) -> None:
    address = UNUSABLE[kind]

    with pytest.raises(ValidationError) as refused:
        ADDRESS.validate_python(address)

    (issue,) = refused.value.errors(include_input=False, include_url=False)
    assert address not in issue["msg"]
    assert "contoso" not in issue["msg"]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("billing@contoso.example", "billing@contoso.example"),
        ("Billing.Team+eu@Contoso.EXAMPLE", "Billing.Team+eu@contoso.example"),
        ("ap@bücher.example", "ap@xn--bcher-kva.example"),
        ("o'brien@fabrikam.example", "o'brien@fabrikam.example"),
    ],
)
def test_a_usable_address_is_kept_in_the_ascii_form_the_mailer_sends_to(given: str, kept: str) -> None:
    assert ADDRESS.validate_python(given) == kept
