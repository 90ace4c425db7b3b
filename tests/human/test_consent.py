"""The consent and fit rule of ``get``, pure: every case in-process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from p2pshare.node import consent
from p2pshare.node.consent import Decision, decide, summary_of

SHARE = summary_of("photos", "Alice", [("photos/a.jpg", 3_000_000), ("photos/b.jpg", 1_000)])


@pytest.mark.parametrize(
    ("free", "yes", "interactive", "expected"),
    [
        (10**9, False, True, Decision.ASK),
        (10**9, True, True, Decision.PROCEED),
        (10**9, False, False, Decision.PROCEED),  # a script: proceed as before
        (100, True, True, Decision.NO_SPACE),  # --yes cannot make it fit
        (100, False, False, Decision.NO_SPACE),
        (None, False, True, Decision.ASK),  # unmeasurable: the store checks again at open
        (SHARE.needed_bytes, False, True, Decision.ASK),  # exactly fits
        (SHARE.needed_bytes - 1, True, False, Decision.NO_SPACE),
    ],
)
def test_decide(free: int | None, yes: bool, interactive: bool, expected: Decision) -> None:
    assert decide(SHARE, free, assume_yes=yes, interactive=interactive) is expected


def test_needed_counts_only_what_is_missing() -> None:
    resumed = summary_of("big", None, [("big.iso", 10_000)], needed_bytes=100)
    assert decide(resumed, 150, assume_yes=False, interactive=False) is Decision.PROCEED


@pytest.mark.parametrize(
    ("answer", "yes"),
    [
        ("y\n", True),
        ("YES", True),
        (" yes ", True),
        ("", False),
        ("\n", False),
        ("n", False),
        (None, False),
        ("yep", False),
    ],
)
def test_parse_answer_defaults_to_no(answer: str | None, yes: bool) -> None:
    assert consent.parse_answer(answer) is yes


def test_describe_lists_first_files_and_counts_the_rest() -> None:
    files = [(f"d/f{i}.txt", 2048) for i in range(8)]
    lines = consent.describe(summary_of("d", "Bob", files), 10 * 2**30, shown=3)
    assert lines[0] == "'d' from Bob: 8 files, 16.0 KiB"
    assert lines[1:4] == ["  d/f0.txt  (2.0 KiB)", "  d/f1.txt  (2.0 KiB)", "  d/f2.txt  (2.0 KiB)"]
    assert lines[4] == "  … and 5 more"
    assert lines[5] == "Needs 16.0 KiB; 10.0 GiB free here."


def test_describe_one_file_no_sharer_no_free_figure() -> None:
    assert consent.describe(summary_of("x", None, [("x", 1)]), None) == ["'x': 1 file, 1 B", "  x  (1 B)"]


def test_no_space_message_is_one_line_with_a_next_step() -> None:
    msg = consent.no_space_message(SHARE, 1024, "/mnt/small")
    assert "\n" not in msg and "/mnt/small" in msg and "2.9 MiB" in msg and "1.0 KiB" in msg and "-o" in msg


@pytest.mark.parametrize(
    ("paths", "text", "where"),
    [
        (["photos/a", "photos/b/c"], "into out/photos/", Path("out/photos")),
        (["a.txt"], "to out/a.txt", Path("out/a.txt")),
        (["a.txt", "b.txt"], "into out/", Path("out")),
        (["x/a", "y/b"], "into out/", Path("out")),
        (["x", "x/"], "into out/", Path("out")),
    ],
)
def test_landing_names_the_real_directory(paths: list[str], text: str, where: Path) -> None:
    assert consent.landing(Path("out"), paths) == (text, where)


@pytest.mark.parametrize(
    ("dirs", "text", "where"),
    [
        (["empty"], "into out/empty/", Path("out/empty")),
        (["empty", "empty/sub"], "into out/empty/", Path("out/empty")),
        (["a", "b"], "into out/", Path("out")),
        ([], "into out/", Path("out")),
    ],
)
def test_landing_of_empty_folders_names_the_folder(dirs: list[str], text: str, where: Path) -> None:
    """An empty folder's share said "into out/" where a full one says
    "into out/photos/"."""
    assert consent.landing(Path("out"), [], dirs) == (text, where)


def test_saved_paths_name_renamed_files_by_their_new_names() -> None:
    paths = ["a.txt", "d/b.txt", "d/c.txt"]
    renamed = [("a.txt", "a (1).txt"), ("d/c.txt", "c (2).txt")]
    assert consent.saved_paths(paths, renamed) == ["a (1).txt", "d/b.txt", "d/c (2).txt"]
    assert consent.landing(Path("out"), consent.saved_paths(["a.txt"], renamed[:1])) == (
        "to out/a (1).txt",
        Path("out/a (1).txt"),
    )


def test_unknown_config_keys_get_a_suggestion() -> None:
    from p2pshare.node.config import unknown_key_warnings

    assert unknown_key_warnings(["relays", "bootstrap"], Path("c.toml")) == ()
    [w] = unknown_key_warnings(["bootstarp"], Path("c.toml"))
    assert w == "c.toml: unknown key 'bootstarp' is ignored (did you mean 'bootstrap'?)"


def test_renamed_names() -> None:
    from p2pshare.transfer.paths import renamed

    assert renamed("report.pdf", 1) == "report (1).pdf"
    assert renamed("archive.tar.gz", 2) == "archive.tar (2).gz"
    assert renamed(".bashrc", 1) == ".bashrc (1)"
    assert renamed("README", 3) == "README (3)"


def test_the_description_is_shown_quoted_after_the_name() -> None:
    """``share --description`` was never shown to the receiver. Found by a
    usability review."""
    share = summary_of("trip", "Zoë", [("trip/a.jpg", 10)], description="from the trip\nenjoy\n3\n4\n5\n6")
    lines = consent.describe(share, None)
    assert lines[:8] == [
        "'trip' from Zoë: 1 file, 10 B",
        "  > from the trip",
        "  > enjoy",
        "  > 3",
        "  > 4",
        "  > 5",
        "  > (1 more line)",
        "  trip/a.jpg  (10 B)",
    ]
    wide = consent.describe(summary_of("t", None, [("t", 1)], description="x" * 300), None)
    assert wide[1] == "  > " + "x" * 74 + "…" and len(wide[1]) <= 79


def test_hidden_names_at_the_top_are_named_whatever_their_place_in_the_list() -> None:
    """A hostile-peer review (stop 44): 5 photos first, then ``.bash_profile``,
    ``.ssh/authorized_keys`` and ``.config/autostart/…`` counted as "… and
    43 more"; received into a home directory, the next login ran them."""
    paths = [f"holiday photo {i}.jpg" for i in range(45)]
    paths += [".bash_profile", ".ssh/authorized_keys", ".config/autostart/update.desktop", "photos/.thumbs/a"]
    hidden = consent.hidden_tops(paths, dirs=[".local/share", "photos/.cache"])
    assert hidden == ((".bash_profile", ".config/ (1 file)", ".local/", ".ssh/ (1 file)"), 4)
    files = [(p, 10) for p in paths]
    lines = consent.describe(summary_of("Holiday photos", "Alice", files, hidden=hidden), None)
    assert lines[-1] == (
        "p2pshare: warning: the share puts 4 hidden names at the top of the output directory, where programs read "
        "their settings: .bash_profile, .config/ (1 file), .local/, .ssh/ (1 file)"
    )
    assert "  … and 44 more" in lines  # the list itself is as before


def test_hidden_names_beyond_the_shown_are_counted_and_made_safe() -> None:
    paths = [f".f{i:02d}" for i in range(20)] + [".\x1b[31mred"]
    shown, count = consent.hidden_tops(paths, safe=lambda s: s.replace("\x1b", "?"))
    assert count == 21 and len(shown) == consent.SHOWN_HIDDEN
    assert shown[0] == ".?[31mred"  # sorted: ESC before digits
    warning = consent.hidden_warning(summary_of("x", None, [("a", 1)], hidden=(shown, count)))
    assert warning is not None and warning.endswith(" and 13 more")


def test_no_hidden_names_at_the_top_no_warning() -> None:
    hidden = consent.hidden_tops(["photos/.thumbs/a", "photos/b.jpg", "notes.txt"], dirs=["photos/.git"])
    assert hidden == ((), 0)
    assert not any(line.startswith("Warning") for line in consent.describe(SHARE, None))


def test_the_folders_a_share_makes_are_counted_in_the_first_line() -> None:
    summary = summary_of("evil", None, [("a/b/f", 0)], dir_count=5000)
    assert consent.describe(summary, None)[0] == "'evil': 1 file in 5000 folders, 0 B"


def test_a_resume_says_what_is_already_here() -> None:
    """ "Needs 300 MiB" alone did not say that 700 MiB were on disk from an earlier run."""
    whole = consent.summary_of("v", None, [("v/a.mkv", 1000 * 2**20)])
    resumed = dataclasses.replace(whole, needed_bytes=300 * 2**20, here_bytes=700 * 2**20)
    lines = consent.describe(resumed, 2**30, shown=1)
    assert lines[-1] == "Needs 300.0 MiB more (700.0 MiB already here); 1.0 GiB free here."
    assert consent.describe(whole, 2**30)[-1] == "Needs 1000.0 MiB; 1.0 GiB free here."  # nothing here yet


def test_landing_says_where_files_already_were() -> None:
    assert consent.landing(Path("out"), ["d/a", "d/b"], here=True) == ("in out/d/", Path("out/d"))
    assert consent.landing(Path("out"), ["a.txt"], here=True) == ("at out/a.txt", Path("out/a.txt"))
