"""The few pages a client sees at their unsubscribe link, in the clinic's name.

Each page says where the client stands, as ``standing`` of
``campaigns.delivery.suppression`` tells it: still subscribed (a confirm
button), unsubscribed by their own choice (and a button to subscribe again),
or kept off the list at the clinic's end (an owner's ``rebook unsubscribe``,
a bounce, a complaint, a forget): then no button can change it, and the page
says how to ask the clinic. It never says which of those it was.
"""

from __future__ import annotations

import functools
import html

from starlette.responses import HTMLResponse

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>{title} · {clinic}</title>
<style>
body {{ font: 17px/1.5 system-ui, sans-serif; margin: 0; padding: 2rem 1rem; }}
main {{ max-width: 32rem; margin: 0 auto; }}
button {{ font: inherit; padding: .7rem 1.4rem; border-radius: .4rem; border: 0;
         background: #1f5f5b; color: #fff; cursor: pointer; }}
button:focus-visible {{ outline: 3px solid #f0a500; outline-offset: 2px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
<p><small>{clinic}</small></p>
</main>
</body>
</html>
"""


class Pages:
    """The pages of one clinic: ``clinic`` names it, ``phone`` (optional) is how to call."""

    def __init__(self, clinic: str, phone: str | None = None) -> None:
        self.clinic = html.escape(clinic)
        self.phone = html.escape(phone) if phone else None

    def _page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        content = PAGE.format(title=html.escape(title), clinic=self.clinic, body=body)
        return HTMLResponse(content, status_code=status, headers={"Cache-Control": "no-store"})

    def confirm(self) -> HTMLResponse:
        return self._page("Unsubscribe", _form(
            f"<p>Stop receiving emails about appointments to book and articles from "
            f"{self.clinic}? Reminders of appointments you have booked still come.</p>",
            "unsubscribe", "Unsubscribe",
        ))  # fmt: skip

    def done(self) -> HTMLResponse:
        """Unsubscribed by their own choice: they may change their mind here."""
        return self._page("You are unsubscribed", self._done)

    @functools.cached_property
    def _done(self) -> str:  # every one-click POST answers it: made once
        return _form(
            f"<p>{self.clinic} will not send you these emails again.</p>"
            "<p>Changed your mind?</p>",
            "resubscribe", "Subscribe again",
        )  # fmt: skip

    def kept_off(self, title: str = "You are unsubscribed") -> HTMLResponse:
        """Kept off the list at the clinic's end: no button here can undo it."""
        return self._page(title, self._kept_off)

    @functools.cached_property
    def _kept_off(self) -> str:
        call = f", or call {self.phone}" if self.phone else ""
        return (
            f"<p>{self.clinic} has stopped these emails to you, so this page cannot start "
            f"them again. To have them again, please ask {self.clinic}: reply to one of "
            f"its emails{call}.</p>"
        )

    def back(self) -> HTMLResponse:
        return self._page("You are subscribed again", f"<p>Thank you. {self.clinic} may "
                          "send you emails about your care again.</p>")  # fmt: skip

    def still_off(self) -> HTMLResponse:
        """A request to subscribe again that this page may not grant: nothing was changed."""
        return self.kept_off("You are still unsubscribed")

    def bad_link(self) -> HTMLResponse:
        return self._page("This link does not work", "<p>It may have been copied "
                          "incompletely. Nothing was changed. Please reply to the email or "
                          "call us instead.</p>", status=400)  # fmt: skip


def _form(text: str, action: str, label: str) -> str:
    return (
        f'{text}<form method="post"><input type="hidden" name="action" value="{action}">'
        f'<button type="submit">{label}</button></form>'
    )
