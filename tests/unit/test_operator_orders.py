"""Parsing operator orders (``qb order submit``): command-line fields, CSV and JSON Lines files. Every bad
row is reported with its line, field and value; nothing is dropped silently."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.cli.ops import new_order_id, print_status_table
from app.cli.order_rows import (
    MAX_FILE_ORDERS,
    OrderRow,
    OrdersRefused,
    parse_csv,
    parse_jsonl,
    parse_order,
    parse_order_file,
)
from quantbridge.errors import InputError

FLAGS = {
    "ticker": "--ticker",
    "side": "--side",
    "quantity": "--quantity",
    "limit_price": "--limit-price",
    "id": "--id",
}


def test_parse_order_when_fields_valid_then_row_with_side_and_ticker_upper_case():
    row, problems = parse_order(
        {"ticker": " aapl ", "side": "sell", "quantity": "25", "limit_price": "101.5", "id": "desk-7"},
        None,
        FLAGS,
    )

    assert problems == []
    assert row == OrderRow(None, "AAPL", "SELL", 25.0, 101.5, "desk-7")


def test_parse_order_when_every_field_bad_then_every_problem_named_with_its_flag_and_value():
    row, problems = parse_order(
        {"ticker": None, "side": "HOLD", "quantity": "-3", "limit_price": "inf", "id": "has space"},
        None,
        FLAGS,
    )

    assert row is None
    assert problems == [
        "--ticker is missing: expected a ticker such as AAPL",
        "--side='HOLD' is invalid: expected BUY or SELL",
        "--quantity='-3' is invalid: expected a positive finite number",
        "--limit-price='inf' is invalid: expected a positive finite number",
        "--id='has space' is invalid: expected 1 to 128 printable ASCII characters without spaces",
    ]


def test_parse_csv_when_rows_bad_then_each_listed_by_file_line_and_good_rows_kept_apart():
    body = (
        "ticker,side,quantity,limit_price,id\n"
        "AAPL,BUY,100,,\n"
        "MSFT,SELL,abc,,\n"
        "\n"
        ",,,,\n"
        "JPM,BUY\n"
        "XOM,BUY,10,nan,x\n"
    )

    rows, problems = parse_csv(body)

    assert [(r.line, r.ticker) for r in rows] == [(2, "AAPL")]
    assert problems == [
        "line 3: quantity='abc' is invalid: expected a positive finite number",
        "line 5: ticker is missing: expected a ticker such as AAPL",
        "line 5: side is missing: expected BUY or SELL",
        "line 5: quantity is missing: expected a positive finite number",
        "line 6: 2 values for 5 columns (ticker,side,quantity,limit_price,id)",
        "line 7: limit_price='nan' is invalid: expected a positive finite number",
    ]


@pytest.mark.parametrize(
    "header, problem",
    [
        (
            "ticker,side,qty",
            "line 1: unknown column(s) 'qty': expected columns of ticker, side, quantity, limit_price, id",
        ),
        ("ticker,side,quantity,side", "line 1: column(s) 'side' given more than once"),
        ("ticker,quantity", "line 1: required column(s) side missing from the header"),
    ],
)
def test_parse_csv_when_header_wrong_then_refused_naming_the_columns(header, problem):
    rows, problems = parse_csv(header + "\nAAPL,BUY,1\n")

    assert rows == [] and problem in problems


def test_parse_csv_when_empty_then_problem_asks_for_a_header():
    assert parse_csv("") == (
        [],
        ["the file is empty: expected a header line such as ticker,side,quantity,limit_price,id"],
    )


def test_parse_jsonl_when_lines_bad_then_each_listed_by_line():
    body = (
        '{"ticker": "AAPL", "side": "BUY", "quantity": 10, "limit_price": 150.5, "id": "j-1"}\n'
        "\n"
        '["AAPL", "BUY", 10]\n'
        '{"ticker": "MSFT", "side": "BUY", "quantity": true}\n'
        '{"ticker": "MSFT", "side": "BUY", "quantity": 5, "account": "x"}\n'
        "{not json\n"
        '{"ticker": 7, "side": "BUY", "quantity": "5"}\n'
    )

    rows, problems = parse_jsonl(body)

    assert rows == [OrderRow(1, "AAPL", "BUY", 10.0, 150.5, "j-1")]
    assert problems == [
        "line 3: expected a JSON object, got list",
        "line 4: quantity=True is invalid: expected a positive finite number",
        "line 5: unknown field(s) 'account': expected ticker, side, quantity, limit_price, id",
        "line 6: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 7: ticker=7 is invalid: expected text",
    ]


def test_parse_order_file_when_suffix_unknown_or_file_missing_then_input_error(tmp_path):
    (tmp_path / "orders.txt").write_text("ticker,side,quantity\n")

    with pytest.raises(InputError, match="a .csv or .jsonl"):
        parse_order_file(tmp_path / "orders.txt")
    with pytest.raises(InputError, match="an existing .csv or .jsonl file"):
        parse_order_file(tmp_path / "missing.csv")


def test_parse_order_file_when_not_utf8_then_input_error_naming_the_byte(tmp_path):
    (tmp_path / "orders.csv").write_bytes(b"ticker,side,quantity\nAAPL,BUY,1\xff\n")

    with pytest.raises(InputError, match="UTF-8 text"):
        parse_order_file(tmp_path / "orders.csv")


def test_parse_order_file_when_only_header_then_no_orders_is_a_problem(tmp_path):
    (tmp_path / "orders.csv").write_text("\ufeffticker,side,quantity\n")  # a spreadsheet's BOM is tolerated

    assert parse_order_file(tmp_path / "orders.csv") == ([], ["no orders in the file"])


def test_parse_order_file_when_more_orders_than_one_call_takes_then_refused(tmp_path):
    path = tmp_path / "orders.jsonl"
    path.write_text('{"ticker": "AAPL", "side": "BUY", "quantity": 1}\n' * (MAX_FILE_ORDERS + 1))

    rows, problems = parse_order_file(path)

    assert len(rows) == MAX_FILE_ORDERS + 1 and problems == [
        f"{MAX_FILE_ORDERS + 1} orders: at most {MAX_FILE_ORDERS:,} per file (they go in one atomic call); "
        "split the file"
    ]


def test_orders_refused_when_raised_then_message_lists_every_problem():
    error = OrdersRefused("orders.csv", ["line 2: a", "line 4: b"])

    assert str(error) == "orders.csv refused, nothing submitted (2 problem(s)):\n  line 2: a\n  line 4: b"
    assert isinstance(error, InputError)


def test_new_order_id_when_generated_then_op_prefix_utc_time_and_random_suffix():
    now = datetime(2026, 1, 5, 14, 30, 12, tzinfo=UTC)

    first, second = new_order_id(now), new_order_id(now)

    assert first.startswith("op:20260105T143012Z:") and len(first.rsplit(":", 1)[1]) == 8 and first != second


def test_print_status_table_when_rows_then_one_line_each_with_state_filled_history_and_detail(capsys):
    rows = [
        {
            "order_id": "a",
            "state": "FILLED",
            "filled": 100.0,
            "history": ["NEW", "FILLED"],
            "children": [{"venue": "lit"}, {"venue": "dark"}],
        },
        {
            "order_id": "b",
            "state": "REJECTED",
            "filled": 0.0,
            "history": ["REJECTED"],
            "reasons": ["KILL_SWITCH_ACTIVE"],
        },
        {"order_id": "c", "state": "UNREADABLE", "raw": "{oops"},
    ]

    print_status_table(rows)
    print_status_table([])

    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [
        "a",
        "FILLED",
        "100",
        "NEW",
        ">",
        "FILLED",
        "[2",
        "child",
        "order(s):",
        "lit,",
        "dark]",
    ]
    assert "[reasons: KILL_SWITCH_ACTIVE]" in lines[2] and lines[3].split()[:3] == ["c", "UNREADABLE", "-"]
    assert lines[4] == "no orders in orders:state yet"
