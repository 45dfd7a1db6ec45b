from __future__ import annotations

from datetime import date

import pytest

from marketdata.reference import DATA_DIR, SCHEMAS, load_reference_tables, read_reference, read_reference_csv
from quantbridge.errors import InputError
from quantbridge.lake import Lake


def test_reference_csvs_when_read_then_labelled_illustrative_and_typed():
    for table in SCHEMAS:
        assert "ILLUSTRATIVE" in (DATA_DIR / f"{table}.csv").read_text().splitlines()[0]
    esg = read_reference_csv("esg")
    assert len(esg) == 20 and esg["esg_score"].between(0, 1).all()
    book = read_reference_csv("bond_book")
    assert book["coupon_frequency"].dtype == "int64" and isinstance(book["maturity_date"].iloc[0], date)


def test_load_reference_tables_when_run_twice_then_same_tables_with_counts(tmp_path):
    lake = Lake(tmp_path)
    counts = load_reference_tables(lake)
    assert counts["esg"] == 20 and counts["curve"] == 10 and counts["factor_prices"] > 10_000
    first = {t: lake.reference(t).read_bytes() for t in counts}
    assert load_reference_tables(lake) == counts
    assert {t: lake.reference(t).read_bytes() for t in counts} == first
    assert read_reference(lake, "fx")["currency"].tolist() == ["EUR", "GBP", "JPY", "CHF", "CAD"]


def test_read_reference_when_not_loaded_then_error_says_how_to_load(tmp_path):
    with pytest.raises(FileNotFoundError, match="qb ingest"):
        read_reference(Lake(tmp_path), "esg")


@pytest.mark.parametrize(
    "table, text, message",
    [
        ("esg", "ticker,sector,esg_score\nA,Tech,1.5\n", "esg_score=1.5"),
        ("esg", "ticker,esg_score\nA,0.5\n", "columns"),
        ("fx", "currency,notional,spot_usd,annual_vol\nEUR,lots,1,0.1\n", "row 1 notional='lots'"),
        (
            "bond_book",
            "id,face,coupon_rate,maturity_date,coupon_frequency,currency\nB,1,0.1,2030-01-01,2.5,USD\n",
            "coupon_frequency='2.5'",
        ),
        ("curve", "as_of,tenor_years,par_rate\n2022-12-28,,0.04\n", "row 1 tenor_years"),
    ],
)
def test_read_reference_csv_when_value_invalid_then_error_names_row_and_column(
    tmp_path, table, text, message
):
    path = tmp_path / f"{table}.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_reference_csv(table, path)
