from __future__ import annotations

import pytest

from nnprobe.attacks.budget import format_eps, parse_eps, parse_eps_list, parse_gate, same_eps
from nnprobe.errors import UsageError


@pytest.mark.parametrize("text, value", [("2/255", 2 / 255), ("0.5/255", 0.5 / 255), ("0.01", 0.01), ("0", 0.0),
                                         (" 4 / 255 ", 4 / 255), ("1e-2", 0.01), (".5", 0.5), ("1", 1.0)])
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value, abs=0)


@pytest.mark.parametrize("text", ["", "abc", "2/0", "-1/255", "2/255/3", "1.5", "nan", "2//255", "0x1"])
def test_bad_eps_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_eps(text)


def test_l2_budgets_may_exceed_one():
    assert parse_eps("3.0", max_value=None) == 3.0


def test_parse_list_keeps_order_and_drops_duplicates():
    assert parse_eps_list("0,1/255,2/255,0.00784313725490196") == (0.0, 1 / 255, 2 / 255)
    with pytest.raises(UsageError, match="empty"):
        parse_eps_list("1/255,,2/255")


def test_parse_gate():
    assert parse_gate("2/255=0.30") == (2 / 255, 0.30)
    for bad in ["2/255", "2/255=x", "2/255=1.5", "x=0.3"]:
        with pytest.raises(UsageError):
            parse_gate(bad)


def test_format_eps():
    assert format_eps(2 / 255) == "2/255"
    assert format_eps(0) == "0"
    assert format_eps(0.01) == "0.01"
    assert same_eps(2 / 255, 0.00784313725490196)
    assert not same_eps(2 / 255, 3 / 255)
