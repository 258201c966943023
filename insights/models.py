"""Insights: what the service computes to point at the data that matters (label-error
candidates, uniqueness, uncertainty, leaks between splits). Models arrive with the
signals that need them; see docs/insights.md."""
