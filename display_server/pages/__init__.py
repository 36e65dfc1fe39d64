"""One module per staff or citizen page (kiosk, ticket tracking, console, rating, supervisor): routes, view, API."""
