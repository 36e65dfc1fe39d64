"""QR codes of tracking pages: as SVG for the screens, as modules for the printed ticket."""

from __future__ import annotations

import qrcode
import qrcode.constants

# The quiet zone the QR standard asks for, in modules.
QUIET = 4


def modules(data: str) -> list[list[bool]]:
    """The QR code's dark (True) and light modules, without the quiet zone."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    qr.add_data(data)
    qr.make(fit=True)
    return [list(row) for row in qr.get_matrix()]


def svg(data: str) -> str:
    """A self-contained SVG: one path of unit squares, scaled by the page."""
    m = modules(data)
    size = len(m) + 2 * QUIET
    path = "".join(f"M{x + QUIET} {y + QUIET}h1v1h-1z" for y, row in enumerate(m) for x, dark in enumerate(row) if dark)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
            f'<rect width="{size}" height="{size}" fill="#fff"/><path d="{path}" fill="#000"/></svg>')
