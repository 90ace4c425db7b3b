"""share_short.reusable, pure: which kept short code a restarted share offers."""

from __future__ import annotations

from p2pshare.node.share_short import MIN_LEFT, reusable
from p2pshare.node.shares_db import ShareRecord
from p2pshare.sharecode.short import new_short_code

CODE = str(new_short_code())


def _record(short: str | None, expires: float | None) -> ShareRecord:
    return ShareRecord(bytes(32), "HUMAN", None, None, short, expires)


def test_a_code_with_life_left_is_offered_again_for_the_rest_of_it() -> None:
    kept = reusable(_record(CODE, 1000.0 + 600), now=1000.0)
    assert kept is not None and str(kept[0]) == CODE and kept[1] == 600


def test_no_code_an_ending_one_or_a_bad_one_is_not() -> None:
    assert reusable(None, now=0) is None
    assert reusable(_record(None, None), now=0) is None
    assert reusable(_record(CODE, 1000.0 + MIN_LEFT - 1), now=1000.0) is None
    assert reusable(_record(CODE, 900.0), now=1000.0) is None
    assert reusable(_record("12-not-a-code", 5000.0), now=1000.0) is None
