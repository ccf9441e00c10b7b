from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.ledger import load_liabilities
from auditor.settings import AssetSettings, Deployment, LiabilitiesSettings

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "a" * 40, 6),)),
}


def _ls(path: Path, source: str = "csv") -> LiabilitiesSettings:
    return LiabilitiesSettings(source=source, path=path, max_age=3600)  # type: ignore[arg-type]


def test_csv_ledger_amounts_are_exact_base_units_and_oldest_as_of_wins(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("asset,amount,as_of\nETH,400.000000000000000001,2026-11-24T10:00:00Z\n"
                 "USDC,2000000.5,2026-11-24T09:00:00+00:00\n")
    led = load_liabilities(_ls(p), ASSETS)
    assert led.amounts == {"ETH": 400 * 10**18 + 1, "USDC": 2_000_000_500_000}
    assert led.as_of == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_csv_without_as_of_uses_file_mtime(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("asset,amount\nETH,1\n")
    led = load_liabilities(_ls(p), ASSETS)
    assert abs(led.as_of.timestamp() - p.stat().st_mtime) < 1


@pytest.mark.parametrize("body, fragment", [
    ("asset,amount\nXRP,1\n", "not configured"),
    ("asset,amount\nETH,1\nETH,2\n", "listed twice"),
    ("asset,amount\nETH,abc\n", "decimal"),
    ("asset,amount\nETH,-1\n", "negative"),
    ("token,qty\nETH,1\n", "header"),
    ("asset,amount,as_of\nETH,1,2026-11-24T10:00:00\n", "timezone"),
    ("asset,amount\nUSDC,0.0000001\n", "decimal places"),
])
def test_malformed_csv_ledger_is_an_input_error_naming_the_fix(tmp_path: Path, body: str, fragment: str) -> None:
    p = tmp_path / "l.csv"
    p.write_text(body)
    with pytest.raises(InputError) as e:
        load_liabilities(_ls(p), ASSETS)
    assert fragment in str(e.value)


def test_json_ledger_both_forms_and_floats_refused(tmp_path: Path) -> None:
    p = tmp_path / "l.json"
    p.write_text('{"as_of": "2026-11-24T10:00:00Z", "balances": {"ETH": "1.5", "USDC": 7}}')
    assert load_liabilities(_ls(p, "json"), ASSETS).amounts == {"ETH": 15 * 10**17, "USDC": 7_000_000}
    p.write_text('[{"asset": "ETH", "amount": "2", "as_of": "2026-11-24T10:00:00Z"}]')
    assert load_liabilities(_ls(p, "json"), ASSETS).amounts == {"ETH": 2 * 10**18}
    p.write_text('{"balances": {"ETH": 1.5}}')
    with pytest.raises(InputError, match="not quoted"):
        load_liabilities(_ls(p, "json"), ASSETS)


def test_missing_ledger_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_liabilities(_ls(tmp_path / "nope.csv"), ASSETS)
