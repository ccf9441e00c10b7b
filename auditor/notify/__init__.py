"""Notification channels behind one `Notifier` protocol (see `base`)."""

from .base import Message, Notifier, make_notifier, rfc3339
from .log import LogNotifier
from .webhook import WebhookNotifier, verify_signature

__all__ = ["Message", "Notifier", "make_notifier", "rfc3339", "LogNotifier",
           "WebhookNotifier", "verify_signature"]
