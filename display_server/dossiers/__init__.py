"""Dossiers (hồ sơ) on the web (issue 13): the HTTP API for the province's one-stop system
(api.py), the public page /hs/{code}?k= and the kiosk's look-up (page.py), the console's
"Tiếp nhận hồ sơ" (console.py) and the receipt on paper (receipt.py, and the A5 page).

The web server writes nothing about dossiers itself: every change is a command to the dossier
service (dossiers/, the one writer), which answers and publishes event/dossier.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from display_server.dossiers import api, console, page, procedures, receipt

    procedures.setup(app)
    receipt.setup(app)
    api.setup(app)
    console.setup(app)
    page.setup(app)
