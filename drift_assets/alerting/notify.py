"""Chat notifications for failed checks: a Slack-compatible message and a plain webhook POST.

Slack incoming-webhook URLs carry their secret in the path, so errors name only the host; the
URL itself never reaches a log or an exception message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests  # imported where a POST is made: loading the Dagster definitions need not pay it

# Slack limits: header text 150 chars, section text 3000 chars, at most 10 section fields.
_HEADER_MAX = 150
_SECTION_MAX = 3000
_MAX_LISTED_COLUMNS = 10
_SEVERITY_EMOJI = {"ERROR": ":rotating_light:", "WARN": ":warning:"}


class WebhookError(RuntimeError):
    """A webhook POST failed. ``host`` names the target; the URL (and its secret) is not kept."""

    def __init__(self, host: str, reason: str, status_code: int | None = None):
        super().__init__(f"webhook POST to {host} failed: {reason}")
        self.host = host
        self.status_code = status_code


def _host_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<invalid URL>"


def post_webhook(url: str, payload: Any, timeout: float = 5) -> requests.Response:
    """POST ``payload`` as JSON to ``url``; any non-2xx answer or network error raises ``WebhookError``.

    The error names the host only (never the path or query, where webhook secrets live), and the
    underlying ``requests`` exception is not chained because its message contains the full URL.
    """
    host = _host_of(url)
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in ("http", "https"):
        raise WebhookError(host, f"unsupported URL scheme {scheme!r} (expected http or https)")
    import requests

    error: WebhookError | None = None
    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.Timeout:
        error = WebhookError(host, f"no answer within {timeout:g}s")
    except requests.RequestException as exc:
        error = WebhookError(host, f"{type(exc).__name__} (could not connect or send)")
    if error is not None:
        raise error from None
    if not 200 <= response.status_code < 300:
        body = (response.text or "").strip().replace("\n", " ")[:200]
        raise WebhookError(host, f"HTTP {response.status_code}" + (f": {body}" if body else ""), response.status_code)
    return response


def _escape(text: Any) -> str:
    """Slack mrkdwn control characters (user-controlled text must not become links/mentions)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _format_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3g}"
    return f"{value:.4g}"


def _column_list(columns: Iterable[str] | str | None) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return [str(c) for c in columns if c is not None]


def slack_message_for_check_failure(
    monitor: str,
    partition: str,
    check_name: str,
    severity: str,
    value: float,
    threshold: float,
    columns: Iterable[str] | str | None,
    dagster_url: str | None = None,
    what_changed: str | None = None,
) -> dict:
    """A Slack (incoming webhook) message about one failed check: ``{"text": ..., "blocks": [...]}``.

    ``text`` is the full plain fallback (notifications, non-Slack webhooks); ``blocks`` the rich
    layout. ``columns`` are the columns the check failed for (None or empty for window-level checks).
    """
    severity = str(severity).upper()
    emoji = _SEVERITY_EMOJI.get(severity, ":warning:")
    cols = _column_list(columns)
    shown_cols = cols[:_MAX_LISTED_COLUMNS]
    more = len(cols) - len(shown_cols)
    cols_text = ", ".join(shown_cols) + (f" and {more} more" if more else "")
    value_text, threshold_text = _format_number(value), _format_number(threshold)

    text = _escape(
        f"[{severity}] {monitor} / {partition}: check {check_name} failed "
        f"(value {value_text}, threshold {threshold_text})" + (f" on {cols_text}" if cols else "")
    )
    text = f"{emoji} {text}"
    if what_changed:
        text += f". What changed: {_escape(what_changed)}"
    if dagster_url:
        text += f" - {dagster_url}"

    header = f"[{severity}] {monitor}: {check_name} failed"
    if len(header) > _HEADER_MAX:
        header = header[: _HEADER_MAX - 1] + "…"
    fields = [
        {"type": "mrkdwn", "text": f"*Monitor*\n{_escape(monitor)}"},
        {"type": "mrkdwn", "text": f"*Partition*\n{_escape(partition)}"},
        {"type": "mrkdwn", "text": f"*Check*\n`{_escape(check_name)}`"},
        {"type": "mrkdwn", "text": f"*Severity*\n{_escape(severity)}"},
        {"type": "mrkdwn", "text": f"*Value*\n{_escape(value_text)}"},
        {"type": "mrkdwn", "text": f"*Threshold*\n{_escape(threshold_text)}"},
    ]
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if cols:
        col_md = f"*Columns ({len(cols)})*\n" + ", ".join(f"`{_escape(c)}`" for c in shown_cols)
        if more:
            col_md += f" and {more} more"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": col_md[:_SECTION_MAX]}})
    if what_changed:
        # One line per ranked change (``monitoring.explanations.LINE_SEPARATOR`` between them).
        lines = "\n".join(f"• {_escape(line.strip())}" for line in str(what_changed).split(" | ") if line.strip())
        section = f"*What changed*\n{lines}"[:_SECTION_MAX]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": section}})
    if dagster_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in Dagster"},
                        "url": dagster_url,
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"drift_assets {emoji} {_escape(monitor)} / {_escape(partition)}"}],
        }
    )
    return {"text": text, "blocks": blocks}


__all__ = ["WebhookError", "post_webhook", "slack_message_for_check_failure"]
