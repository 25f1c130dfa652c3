"""usm.conflicts.merge: per-field merge of a phone's keyword change with the upstream's."""

from __future__ import annotations

from usm.conflicts import CLIENT_WINS, merge

S, F = "$seen", "$flagged"


def test_untouched_fields_take_the_phone_value_and_no_op_patches_are_dropped() -> None:
    patch, shown = merge(frozenset(), frozenset(), {S: True, F: False})
    assert patch == {S: True} and shown == {S}


def test_server_wins_a_field_both_changed_but_the_other_field_merges() -> None:
    patch, shown = merge(frozenset(), frozenset({F}), {S: True, F: False})
    assert patch == {S: True}
    assert shown == {S}  # the phone shows unflagged: the next Sync must tell it otherwise


def test_client_wins_when_asked() -> None:
    patch, shown = merge(frozenset(), frozenset({F}), {F: False}, conflict=CLIENT_WINS)
    assert patch == {F: False} and shown == frozenset()


def test_categories_replace_the_whole_set_of_non_system_keywords() -> None:
    patch, shown = merge(frozenset({"a", "b", S}), frozenset({"a", "b", "c", S}), {},
                         frozenset({"b", "d"}))
    # "a" removed, "d" added; "c" arrived upstream meanwhile, so the server keeps it.
    assert patch == {"a": False, "d": True}
    assert shown == {"b", "d", S}
