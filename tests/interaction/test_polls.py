"""Poll rules on the Poll model: one ballot per viewer, moved ballots, tie-break by time."""

from __future__ import annotations

from arengine.interaction.polls import Poll, PollOption


def make_poll(n: int = 3) -> Poll:
    return Poll("p1", "Which?", [PollOption(f"o{i}") for i in range(n)], opened_at=0.0,
                closes_at=60.0, opened_seq=1)


def test_second_vote_moves_the_ballot_and_never_counts_twice() -> None:
    poll = make_poll()
    assert poll.vote("a", 0, seq=2, ts=1) is None
    assert poll.vote("a", 2, seq=3, ts=2) == 0
    assert poll.vote("a", 2, seq=4, ts=3) == 2  # same choice again: nothing changes
    assert [o.votes for o in poll.options] == [0, 0, 1]
    assert poll.ballots == {"a": 2}


def test_no_votes_means_no_winner() -> None:
    poll = make_poll()
    assert poll.close(ts=60, reason="deadline") is None
    assert poll.closed and poll.close_reason == "deadline"


def test_tie_goes_to_the_option_that_reached_the_count_first() -> None:
    poll = make_poll()
    poll.vote("a", 1, seq=2, ts=1)  # option 1 reaches 1 first
    poll.vote("b", 0, seq=3, ts=2)
    poll.vote("c", 0, seq=4, ts=3)  # option 0 reaches 2 first
    poll.vote("d", 1, seq=5, ts=4)
    assert poll.leader() == 0
    # Option 0 drops to 1, then climbs back to 2 after option 1 got there: 1 now leads.
    poll.vote("c", 2, seq=6, ts=5)
    poll.vote("c", 0, seq=7, ts=6)
    assert [o.votes for o in poll.options] == [2, 2, 0]
    assert poll.leader() == 1
    assert poll.close(ts=7, reason="host") == 1


def test_tie_break_is_not_by_option_order() -> None:
    poll = make_poll()
    poll.vote("a", 2, seq=2, ts=1)
    poll.vote("b", 0, seq=3, ts=2)
    assert poll.leader() == 2


def test_a_drop_keeps_the_time_the_lower_count_was_first_held() -> None:
    poll = make_poll()
    poll.vote("a", 0, seq=2, ts=1)  # o0 = 1 since seq 2
    poll.vote("b", 0, seq=3, ts=2)  # o0 = 2
    poll.vote("c", 1, seq=4, ts=3)  # o1 = 1 since seq 4
    poll.vote("b", 2, seq=5, ts=4)  # o0 back to 1 (held since seq 2), o2 = 1 since seq 5
    assert [o.votes for o in poll.options] == [1, 1, 1]
    assert poll.leader() == 0


def test_view_matches_tallies() -> None:
    poll = make_poll(2)
    poll.vote("a", 1, seq=2, ts=1)
    view = poll.view()
    assert view.total_votes == 1
    assert [o.votes for o in view.options] == [0, 1]
    assert view.winner is None and not view.closed
