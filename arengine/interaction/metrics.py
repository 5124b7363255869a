"""Room metrics: interaction rate, per-minute activity, votes over time, peak viewers.

Definitions (also in the API description):

* **viewers** = unique viewers who ever joined the room (a viewer who leaves and comes
  back with their token counts once). The host is not a viewer.
* **interactions** = comments + likes + shares + follows by viewers. A like request with
  ``count`` n is n likes. Host likes (gesture bursts), votes and sticker clicks are not
  interactions; they are reported separately.
* **interaction rate** = interactions / viewers (0 when nobody joined).
* **per minute**: minute k covers [created + 60k, created + 60(k+1)); its rate is the
  minute's interactions / the viewers who had joined by the end of that minute, so the
  per-minute rates of a room add up to more than its overall rate only when the
  audience grew.
* **peak concurrent viewers** = the most viewers present at once (joined and not left;
  a viewer unseen for the hub's ``idle_s`` is recorded as leaving).
* **votes over time**: for each poll, the tally of every option at the end of each
  ``bucket_s`` window since the poll opened (a moved ballot leaves one option and joins
  another, so tallies always sum to the number of voters).
"""

from __future__ import annotations

import math
from typing import Any

from arengine.interaction.errors import InvalidInputError
from arengine.interaction.polls import Poll
from arengine.interaction.room import Room

MIN_BUCKET_S = 1.0
MAX_BUCKETS = 2000


def interaction_rate(interactions: int, viewers: int) -> float:
    return interactions / viewers if viewers else 0.0


def votes_over_time(poll: Poll, bucket_s: float, now: float) -> list[dict[str, Any]]:
    """Tallies per option at the end of each window since the poll opened."""
    end = poll.closed_at if poll.closed_at is not None else min(now, poll.closes_at)
    n_buckets = max(1, math.ceil((end - poll.opened_at) / bucket_s))
    if n_buckets > MAX_BUCKETS:
        raise InvalidInputError(
            f"bucket_s={bucket_s:g} gives {n_buckets} windows; use a larger bucket")
    tallies = [0] * len(poll.options)
    series = []
    i = 0
    timeline = poll.timeline
    for b in range(n_buckets):
        edge = poll.opened_at + (b + 1) * bucket_s
        cast = 0
        while i < len(timeline) and (timeline[i][0] < edge or b == n_buckets - 1):
            _, option, previous = timeline[i]
            tallies[option] += 1
            if previous is not None:
                tallies[previous] -= 1
            cast += 1
            i += 1
        series.append({"t": round(min(edge, end) - poll.opened_at, 3),
                       "votes": list(tallies), "ballots_cast": cast})
    return series


def room_metrics(room: Room, bucket_s: float = 60.0) -> dict[str, Any]:
    """Everything the metrics endpoint reports for one room."""
    if not math.isfinite(bucket_s) or bucket_s < MIN_BUCKET_S:
        raise InvalidInputError(f"bucket_s must be at least {MIN_BUCKET_S:g}")
    now = room.hub.clock()
    counts = room.counts
    host_likes = room.host_likes
    likes_by_viewers = room.likes - host_likes
    minutes = []
    if room.minutes:
        last = max(room.minutes)
        prev_unique = 0
        prev_present = 0
        for k in range(last + 1):
            m = room.minutes.get(k)
            unique = m.unique_viewers if m else prev_unique
            peak = m.peak_viewers if m else prev_present
            interactions = m.interactions if m else 0
            minutes.append({
                "minute": k,
                "interactions": interactions,
                "viewers": unique,
                "interaction_rate": interaction_rate(interactions, unique),
                "peak_concurrent_viewers": peak,
                "counts": dict(m.counts) if m else {},
            })
            prev_unique = unique
            prev_present = m.present if m else prev_present
    return {
        "room_id": room.id,
        "at": now,
        "viewers": room.unique_viewers,
        "present_viewers": room.present,
        "peak_concurrent_viewers": room.peak_viewers,
        "comments": counts.get("comment", 0),
        "likes": likes_by_viewers,
        "host_likes": host_likes,
        "shares": counts.get("share", 0),
        "follows": counts.get("follow", 0),
        "votes": counts.get("vote", 0),
        "sticker_clicks": dict(room.sticker_clicks),
        "interactions": room.interactions,
        "interaction_rate": room.interaction_rate,
        "per_minute": minutes,
        "polls": [
            {**room.polls[pid].to_json(),
             "votes_over_time": votes_over_time(room.polls[pid], bucket_s, now),
             "bucket_s": bucket_s}
            for pid in room.poll_order
        ],
    }
