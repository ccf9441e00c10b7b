"""Notification channels behind one `Notifier` protocol (see `base`)."""

from .base import Message, Notifier, make_notifier, rfc3339
from .email import EmailNotifier
from .log import LogNotifier
from .pagerduty import PagerDutyNotifier
from .slack import SlackNotifier
from .teams import TeamsNotifier
from .telegram import TelegramNotifier
from .webhook import WebhookNotifier, verify_signature

__all__ = ["Message", "Notifier", "make_notifier", "rfc3339", "LogNotifier",
           "WebhookNotifier", "verify_signature", "SlackNotifier", "EmailNotifier",
           "PagerDutyNotifier", "TelegramNotifier", "TeamsNotifier"]
