"""Watch-only guard, `${NAME}` substitution, `*_file` secrets and redaction in messages."""

from __future__ import annotations

import pytest
from test_config_fixtures import full_config, problems_of, write

from auditor.config import check_config, load_config
from auditor.errors import ConfigError

XPRV = ("xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxW"
        "Utg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi")
WIF = "5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ"
WIF_COMPRESSED = "KwdMAjGmerYanjeui5SHS7JkmpZvVipYvB2LJGU1ZxJwYvP98617"
HEX64 = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def _all_messages(path, env=None) -> str:
    _, problems = check_config(path, env={"SOC_SECRET": "x"} if env is None else env)
    return "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("key,kind", [(XPRV, "extended private key"), (WIF, "WIF"),
                                      (WIF_COMPRESSED, "WIF"), (HEX64, "64-hex"),
                                      ("0x" + HEX64, "64-hex")])
def test_private_keys_are_refused_without_echoing_them(tmp_path, key, kind):
    cfg = full_config().replace("name: Example Exchange", f'name: "{key}"')
    (p,) = problems_of(write(tmp_path, cfg), "exchange.name")
    assert kind in p.message and "watch-only" in p.message
    assert key[:4] + "…" in p.message and key[4:12] not in p.message
    assert "xpub" in p.message and "address" in p.message


def test_private_key_inside_a_list_deep_down_is_found(tmp_path):
    cfg = full_config().replace("keys: [", f'keys: ["wpkh({XPRV}/0/*)", ')
    (p,) = problems_of(write(tmp_path, cfg), "approvals.keys[0]")
    assert "extended private key" in p.message and XPRV[4:20] not in p.message


def test_64_hex_is_allowed_under_secret_and_txid(tmp_path):
    cfg = full_config().replace('secret: "${SOC_SECRET}"', f'secret: "{HEX64}"')
    s = load_config(write(tmp_path, cfg), env={})
    assert s.alerts.channels[1].secret.reveal() == HEX64
    cfg = full_config().replace("rules:\n", f"rules:\n  txid: {HEX64}\n")
    _, problems = check_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert [p.path for p in problems if p.severity == "error"] == ["rules.txid"]
    assert "unknown key" in problems[0].message  # refused as unknown, not as a private key


def test_missing_environment_variable_names_it_and_the_key(tmp_path):
    (p,) = problems_of(write(tmp_path, full_config()), "alerts.channels[1].secret", env={})
    assert "SOC_SECRET" in p.message and "not set" in p.message


def test_environment_substitution_works_inside_text(tmp_path):
    cfg = full_config().replace("http://127.0.0.1:8546", '"http://${RPC_HOST}:8546"')
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x", "RPC_HOST": "10.0.0.2"})
    assert s.chains["ethereum"].rpc[1].label == "http://10.0.0.2:8546"


def test_secret_file_is_read_relative_to_the_config(tmp_path):
    (tmp_path / "soc.secret").write_text("from-file\n")
    cfg = full_config().replace('secret: "${SOC_SECRET}"', "secret_file: soc.secret")
    s = load_config(write(tmp_path, cfg), env={})
    assert s.alerts.channels[1].secret.reveal() == "from-file"


def test_missing_secret_file_is_an_error(tmp_path):
    cfg = full_config().replace('secret: "${SOC_SECRET}"', "secret_file: nope.secret")
    (p,) = problems_of(write(tmp_path, cfg), "alerts.channels[1].secret_file")
    assert "nope.secret" in p.message and "cannot read" in p.message


def test_key_and_its_file_twin_together_is_an_error(tmp_path):
    (tmp_path / "soc.secret").write_text("from-file\n")
    cfg = full_config().replace('secret: "${SOC_SECRET}"',
                                'secret: "${SOC_SECRET}", secret_file: soc.secret')
    (p,) = problems_of(write(tmp_path, cfg), "alerts.channels[1].secret_file")
    assert "keep only one" in p.message


def test_rpc_url_file_is_read(tmp_path):
    (tmp_path / "rpc.url").write_text("https://eth.example/v3/KEY\n")
    cfg = full_config().replace("- {url: http://127.0.0.1:8546, timeout: 5s}",
                                "- {url_file: rpc.url}")
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert s.chains["ethereum"].rpc[1].url.reveal() == "https://eth.example/v3/KEY"
    assert s.chains["ethereum"].rpc[1].label == "https://eth.example:443"


def test_messages_never_contain_secret_values(tmp_path):
    secret = "WEBHOOK-SECRET-VALUE-9f8e7d"
    api_key = "APIKEY0123456789abcdef"
    cfg = (full_config()
           .replace("http://127.0.0.1:8546", f"ftp://eth.example/v3/{api_key}")
           .replace('url: "https://soc.example/hook", secret: "${SOC_SECRET}"',
                    f'url: "https://soc.example/{api_key}", secret: "{secret}", timeout: 10'))
    path = write(tmp_path, cfg)
    text = _all_messages(path)
    assert "ftp://eth.example" in text  # the problem is reported, by scheme://host only
    assert "alerts.channels[1].timeout" in text
    assert secret not in text and api_key not in text
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert secret not in str(e.value) and api_key not in str(e.value)


def test_settings_repr_never_shows_secrets(tmp_path):
    s = load_config(write(tmp_path, full_config()), env={"SOC_SECRET": "hush-123"})
    assert "hush-123" not in repr(s)
