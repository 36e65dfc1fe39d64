"""The province dashboard: every office live, the JSON API and the cross-office 766 reports."""
