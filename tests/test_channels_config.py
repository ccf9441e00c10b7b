"""alerts.channels[] of type slack, email, pagerduty, telegram and teams: the
keys each type takes, the checks, secrets from ${VAR} and *_file, and that
no secret reaches a problem message, config_material or a notifier's repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_config_fixtures import full_config, write

from auditor.config import check_config, load_config
from auditor.config_material import config_material
from auditor.notify import make_notifier
from auditor.notify.email import EmailNotifier
from auditor.notify.http import collect_secrets
from auditor.notify.pagerduty import PagerDutyNotifier
from auditor.notify.slack import SlackNotifier
from auditor.notify.teams import TeamsNotifier
from auditor.notify.telegram import TelegramNotifier
from auditor.settings import ChannelSettings, Secret

SOC = '    - {name: soc, type: webhook, url: "https://soc.example/hook", secret: "${SOC_SECRET}"}\n'
SLACK_PATH = "/services/T0001/B0002/slackpathsecret42"
PD_KEY = "R0123456789abcdef0123456789abcde"
BOT = "123456789:AAbotTOKENsecret_0123456789-xyz"
SMTP_PASSWORD = "smtp-pa55-word!"
ENV = {"SOC_SECRET": "x", "SLACK_URL": f"https://hooks.slack.com{SLACK_PATH}",
       "PD_KEY": PD_KEY, "BOT": BOT, "SMTP_PASSWORD": SMTP_PASSWORD}


def config_with(channel: str) -> str:
    """The full config with the `soc` channel replaced by `channel` (YAML, one list item)."""
    text = full_config()
    assert SOC in text
    return text.replace(SOC, channel)


def problems(tmp_path: Path, channel: str, severity: str = "error") -> list[tuple[str, str]]:
    _, found = check_config(write(tmp_path, config_with(channel)), env=ENV)
    return [(p.path, p.message) for p in found if p.severity == severity]


def load(tmp_path: Path, channel: str) -> ChannelSettings:
    settings = load_config(write(tmp_path, config_with(channel)), env=ENV)
    return next(c for c in settings.alerts.channels if c.name == "soc")


# -- slack and teams -------------------------------------------------------------

def test_slack_channel_reads_its_url_from_the_environment_as_a_secret(tmp_path: Path) -> None:
    ch = load(tmp_path, '    - {name: soc, type: slack, url: "${SLACK_URL}", rate: 1/s}\n')
    assert ch.type == "slack" and ch.url == Secret(ENV["SLACK_URL"])
    assert SLACK_PATH not in repr(ch)
    assert isinstance(make_notifier(ch), SlackNotifier)


def test_slack_url_over_plain_http_is_refused_without_echoing_the_path(tmp_path: Path) -> None:
    found = problems(tmp_path, f'    - {{name: soc, type: slack, url: "http://hooks.slack.com'
                               f'{SLACK_PATH}"}}\n')
    assert [p for p, _ in found] == ["alerts.channels[1].url"]
    assert "https://" in found[0][1] and SLACK_PATH not in found[0][1]


def test_http_to_localhost_is_allowed_for_local_receivers(tmp_path: Path) -> None:
    ch = load(tmp_path, '    - {name: soc, type: teams, url: "http://127.0.0.1:8080/hook"}\n')
    assert ch.type == "teams" and isinstance(make_notifier(ch), TeamsNotifier)


def test_slack_channel_refuses_keys_of_other_types(tmp_path: Path) -> None:
    found = problems(tmp_path, '    - {name: soc, type: slack, url: "${SLACK_URL}", '
                               'routing_key: "x"}\n')
    assert found[0][0] == "alerts.channels[1].routing_key"
    assert "unknown key `routing_key`" in found[0][1]


def test_slack_channel_without_url_says_it_is_required(tmp_path: Path) -> None:
    found = problems(tmp_path, "    - {name: soc, type: teams}\n")
    assert ("alerts.channels[1]", 'channel "soc": `url` is required here; add `url: …`') in found


def test_unknown_channel_type_lists_the_supported_ones(tmp_path: Path) -> None:
    found = problems(tmp_path, "    - {name: soc, type: sms, number: 1}\n")
    assert [p for p, _ in found] == ["alerts.channels[1].type"]
    assert "slack" in found[0][1] and "pagerduty" in found[0][1]


# -- pagerduty ---------------------------------------------------------------------

def test_pagerduty_routing_key_from_a_file_and_default_url(tmp_path: Path) -> None:
    (tmp_path / "pd.key").write_text(PD_KEY + "\n")
    ch = load(tmp_path, "    - {name: soc, type: pagerduty, routing_key_file: pd.key}\n")
    assert ch.routing_key == Secret(PD_KEY) and ch.url is None
    notifier = make_notifier(ch)
    assert isinstance(notifier, PagerDutyNotifier) and PD_KEY not in repr(notifier)


def test_pagerduty_url_is_overridable(tmp_path: Path) -> None:
    ch = load(tmp_path, '    - {name: soc, type: pagerduty, routing_key: "${PD_KEY}", '
                        'url: "https://events.eu.pagerduty.com/v2/enqueue"}\n')
    assert ch.url == Secret("https://events.eu.pagerduty.com/v2/enqueue")


def test_pagerduty_without_routing_key_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, "    - {name: soc, type: pagerduty}\n")
    assert any("`routing_key` is required" in m for _, m in found)


def test_odd_looking_routing_key_is_a_warning_that_does_not_show_it(tmp_path: Path) -> None:
    channel = '    - {name: soc, type: pagerduty, routing_key: "short-key-123"}\n'
    assert problems(tmp_path, channel) == []
    (warning,) = [w for w in problems(tmp_path, channel, "warning")
                  if w[0] == "alerts.channels[1].routing_key"]
    assert "Integrations" in warning[1] and "short-key-123" not in warning[1]


# -- telegram ------------------------------------------------------------------------

def test_telegram_channel_takes_bot_token_and_chat_id(tmp_path: Path) -> None:
    ch = load(tmp_path, '    - {name: soc, type: telegram, bot_token: "${BOT}", '
                        "chat_id: -1001234567890}\n")
    assert ch.bot_token == Secret(BOT) and ch.chat_id == "-1001234567890"
    notifier = make_notifier(ch)
    assert isinstance(notifier, TelegramNotifier) and BOT not in repr(notifier)


def test_malformed_bot_token_and_chat_id_are_errors_without_the_token(tmp_path: Path) -> None:
    found = dict(problems(tmp_path, '    - {name: soc, type: telegram, bot_token: "not-a-token-'
                                    'value", chat_id: "my group"}\n'))
    assert "@BotFather" in found["alerts.channels[1].bot_token"]
    assert "not-a-token-value" not in found["alerts.channels[1].bot_token"]
    assert "-1001234567890" in found["alerts.channels[1].chat_id"]


# -- email ---------------------------------------------------------------------------

EMAIL = ('    - name: soc\n      type: email\n      smtp: "smtp.example.com:587"\n'
         "      starttls: true\n      username: auditor\n      password_file: smtp.pw\n"
         '      from: "Custody Auditor <auditor@example.com>"\n'
         '      to: ["sec@example.com", "cfo@example.com"]\n      timeout: 20s\n')


def test_email_channel_with_starttls_and_password_file(tmp_path: Path) -> None:
    (tmp_path / "smtp.pw").write_text(SMTP_PASSWORD + "\n")
    ch = load(tmp_path, EMAIL)
    assert (ch.smtp_host, ch.smtp_port, ch.starttls, ch.ssl) == ("smtp.example.com", 587,
                                                                  True, False)
    assert ch.username == "auditor" and ch.password == Secret(SMTP_PASSWORD)
    assert ch.sender == "Custody Auditor <auditor@example.com>"
    assert ch.to == ("sec@example.com", "cfo@example.com") and ch.timeout == 20
    notifier = make_notifier(ch)
    assert isinstance(notifier, EmailNotifier) and SMTP_PASSWORD not in repr(notifier)


def test_plain_smtp_to_a_remote_host_is_refused_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "smtp.pw").write_text(SMTP_PASSWORD)
    found = problems(tmp_path, EMAIL.replace("      starttls: true\n", ""))
    (message,) = [m for p, m in found if p == "alerts.channels[1]"]
    assert "unencrypted" in message and "starttls: true" in message and "insecure: true" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_smtp_to_this_host_is_allowed(tmp_path: Path, host: str) -> None:
    ch = load(tmp_path, '    - {name: soc, type: email, smtp: "HOST:25", from: a@example.com, '
                        "to: b@example.com}\n".replace("HOST", host))
    assert ch.smtp_host == host.strip("[]") and not ch.starttls and not ch.ssl
    assert ch.to == ("b@example.com",) and ch.username is None


def test_plain_smtp_to_a_remote_host_with_insecure_true_is_allowed(tmp_path: Path) -> None:
    ch = load(tmp_path, '    - {name: soc, type: email, smtp: "relay.internal:25", '
                        "insecure: true, from: a@example.com, to: [b@example.com]}\n")
    assert ch.insecure and not ch.starttls


@pytest.mark.parametrize(("extra", "path", "words"), [
    ("ssl: true, starttls: true", "alerts.channels[1].ssl", "choose one"),
    ("ssl: true, insecure: true", "alerts.channels[1].insecure", "only allows plain"),
    ("ssl: yes please", "alerts.channels[1].ssl", "true or false"),
    ("ssl: true, username: auditor", "alerts.channels[1]", "no password"),
    ('ssl: true, password: "${SMTP_PASSWORD}"', "alerts.channels[1]", "without `username`"),
    ("ssl: true, ca_file: missing-ca.pem", "alerts.channels[1].ca_file", "does not exist"),
])
def test_email_security_and_login_problems(tmp_path: Path, extra: str, path: str,
                                           words: str) -> None:
    found = problems(tmp_path, '    - {name: soc, type: email, smtp: "smtp.example.com:465", '
                               f"from: a@example.com, to: [b@example.com], {extra}}}\n")
    assert [p for p, _ in found] == [path]
    assert words in found[0][1] and SMTP_PASSWORD not in found[0][1]


@pytest.mark.parametrize(("key", "value", "path"), [
    ("smtp", '"smtp.example.com"', "alerts.channels[1].smtp"),
    ("smtp", '"smtp.example.com:99999"', "alerts.channels[1].smtp"),
    ("from", '"not an address"', "alerts.channels[1].from"),
    ("to", '["sec@example.com", "nobody"]', "alerts.channels[1].to[1]"),
    ("to", "[]", "alerts.channels[1].to"),
])
def test_email_smtp_and_addresses_are_checked(tmp_path: Path, key: str, value: str,
                                              path: str) -> None:
    fields = {"smtp": '"smtp.example.com:465"', "from": "a@example.com", "to": "[b@example.com]"}
    fields[key] = value
    listed = ", ".join(f"{k}: {v}" for k, v in fields.items())
    found = problems(tmp_path, f"    - {{name: soc, type: email, ssl: true, {listed}}}\n")
    assert [p for p, _ in found] == [path]


def test_email_without_from_and_to_names_both(tmp_path: Path) -> None:
    found = [m for _, m in problems(tmp_path, '    - {name: soc, type: email, smtp: '
                                              '"127.0.0.1:25"}\n')]
    assert any("`from` is required" in m for m in found)
    assert any("`to` is required" in m for m in found)


# -- secrets ----------------------------------------------------------------------------

def _every_channel(tmp_path: Path) -> str:
    (tmp_path / "smtp.pw").write_text(SMTP_PASSWORD)
    return (EMAIL.replace("name: soc", "name: mail")
            + '    - {name: soc, type: slack, url: "${SLACK_URL}"}\n'
            + '    - {name: pager, type: pagerduty, routing_key: "${PD_KEY}"}\n'
            + '    - {name: tg, type: telegram, bot_token: "${BOT}", chat_id: "@secteam"}\n')


def test_config_material_names_channel_types_but_no_secret(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, config_with(_every_channel(tmp_path))), env=ENV)
    material = json.dumps(config_material(settings))
    assert json.loads(material)["channels"]["pager"] == {"type": "pagerduty"}
    for secret in (SLACK_PATH, PD_KEY, BOT, SMTP_PASSWORD):
        assert secret not in material


def test_collect_secrets_covers_every_new_secret_for_scrubbing(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, config_with(_every_channel(tmp_path))), env=ENV)
    secrets = collect_secrets(settings.alerts.channels)
    for secret in (SLACK_PATH, PD_KEY, BOT, SMTP_PASSWORD):
        assert secret in secrets


def test_problems_of_a_broken_config_never_show_the_secrets(tmp_path: Path) -> None:
    broken = _every_channel(tmp_path).replace("chat_id: \"@secteam\"", "chat_id: [1]") \
        .replace("starttls: true", "starttls: true\n      ssl: true")
    _, found = check_config(write(tmp_path, config_with(broken)), env=ENV)
    assert len([p for p in found if p.severity == "error"]) == 2
    text = "\n".join(p.message for p in found)
    for secret in (SLACK_PATH, PD_KEY, BOT, SMTP_PASSWORD):
        assert secret not in text


def test_every_channel_key_is_documented_in_the_configuration_reference() -> None:
    from auditor.config_channels import CHANNEL_TYPES, COMMON_KEYS, channel_keys

    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    keys = set(COMMON_KEYS)
    for kind in CHANNEL_TYPES:
        spec = channel_keys(kind)
        assert spec is not None
        keys |= set(spec.all) | {f"{s}_file" for s in spec.secrets}
    missing = sorted(k for k in keys if f"| `alerts.channels[].{k}` |" not in doc)
    assert missing == []
    assert "## Wiring Slack, email and PagerDuty" in doc
    assert "auditor test-alert --channel" in doc


def test_the_documented_channel_examples_are_valid_config(tmp_path: Path) -> None:
    import re

    import yaml

    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = doc.split("## Wiring Slack, email and PagerDuty")[1].split("\n## ")[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    channels = [c for b in blocks for c in yaml.safe_load(b)["alerts"]["channels"]]
    assert {c["type"] for c in channels} == {"slack", "email", "pagerduty", "telegram", "teams"}
    (tmp_path / "smtp.pw").write_text(SMTP_PASSWORD)
    for c in channels:
        if "password_file" in c:
            c["password_file"] = "smtp.pw"
    listed = "".join(f"    - {json.dumps(c)}\n" for c in channels)
    env = dict(ENV, SLACK_WEBHOOK_URL=ENV["SLACK_URL"], PD_ROUTING_KEY=PD_KEY,
               TELEGRAM_BOT_TOKEN=BOT, TEAMS_WEBHOOK_URL="https://example.webhook.office.com/x")
    text = config_with(listed).replace("channels: [soc]}", "channels: [pager, slack, mail]}")
    settings = load_config(write(tmp_path, text), env=env)
    assert [c.name for c in settings.alerts.channels] == ["console", "slack", "mail", "pager",
                                                          "tg", "teams"]
