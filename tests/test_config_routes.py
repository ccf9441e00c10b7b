"""alerts.routes: first match unless `continue`, per-route `repeat_every`."""

from __future__ import annotations

from test_config_fixtures import full_config, problems_of, write

from auditor.config import load_config

_ROUTES = """  routes:
    - {severity: [critical], channels: [soc]}
    - {severity: [warning], channels: [console]}
"""


def _with_routes(routes: str) -> str:
    cfg = full_config()
    assert _ROUTES in cfg
    return cfg.replace(_ROUTES, "  routes:\n" + routes)


def test_routes_stop_at_the_first_match_unless_continue_is_true(tmp_path):
    path = write(tmp_path, _with_routes(
        "    - {rule: [hot_drain], channels: [soc], continue: true}\n"
        "    - {channels: [console]}\n"))
    a, b = load_config(path, env={"SOC_SECRET": "x"}).alerts.routes
    assert (a.continue_, b.continue_) == (True, False)


def test_route_repeat_every_is_a_duration_or_falls_back_to_alerts_repeat_every(tmp_path):
    path = write(tmp_path, _with_routes(
        "    - {severity: [critical], channels: [soc], repeat_every: 10m}\n"
        "    - {channels: [console]}\n"))
    a, b = load_config(path, env={"SOC_SECRET": "x"}).alerts.routes
    assert (a.repeat_every, b.repeat_every) == (600, None)


def test_route_repeat_every_without_a_unit_is_an_error(tmp_path):
    path = write(tmp_path, _with_routes("    - {channels: [soc], repeat_every: 600}\n"))
    (p,) = problems_of(path, "alerts.routes[0].repeat_every")
    assert "no unit" in p.message


def test_route_continue_must_be_a_boolean(tmp_path):
    path = write(tmp_path, _with_routes("    - {channels: [soc], continue: yes please}\n"))
    (p,) = problems_of(path, "alerts.routes[0].continue")
    assert "true or false" in p.message
