"""Tickets on paper: the 1-bit ticket image, QR codes, and the ESC/POS printer."""
