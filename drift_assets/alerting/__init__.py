"""Alerting without Dagster: the Prometheus exporter (reads the results store on every scrape) and
Slack-compatible webhook messages."""
