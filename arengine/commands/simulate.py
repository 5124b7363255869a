"""``arengine simulate``: synthetic viewers for demos and load.

Viewers join, comment in Chinese, English, Thai, Vietnamese and Indonesian, like, share,
follow, click stickers and vote, at a steady rate, against a running server (``--url``)
or a room database in this process (``--db``). The run is bounded by ``--duration`` and
``--max-actions``; a summary of what was accepted and refused is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from arengine.errors import UserError

COMMENTS = {
    "zh": ["这个颜色太好看了！", "想要这个色号 💄", "显白吗？", "主播涂得好美", "多少钱？",
           "已下单！"],
    "en": ["Love this shade!", "Is it long-lasting?", "Swatch the nude one please",
           "Bought it 🔥", "So pretty 😍", "Does it dry out the lips?"],
    "th": ["สวยมากค่ะ", "สีนี้ติดทนไหมคะ", "อยากได้สีแดง", "ราคาเท่าไหร่คะ", "สั่งแล้วค่ะ 💕"],
    "vi": ["Màu này đẹp quá!", "Son có lâu trôi không ạ?", "Cho xin giá với ạ",
           "Đã đặt hàng 🛒", "Thử màu hồng đi chị"],
    "id": ["Cantik banget, kak!", "Tahan lama nggak?", "Mau yang warna nude",
           "Sudah checkout 🛍️", "Harganya berapa kak?"],
}
NAMES = {
    "zh": ["小明", "丽丽", "王芳", "陈晨", "张伟"],
    "en": ["Emma", "Liam", "Olivia", "Noah", "Ava"],
    "th": ["สมชาย", "มาลี", "ปิยะ", "Nok", "Ploy"],
    "vi": ["Lan", "Minh Anh", "Nguyễn Thảo", "Huy", "Trang"],
    "id": ["Putri", "Budi", "Siti", "Dewi", "Agus"],
}
STICKERS = ["vote-ruby", "vote-nude", "heart", "cart"]
POLL_SHADES = ["velvet-ruby", "velvet-nude", "silk-peony", "dew-berry"]

# Share of each action after everyone has joined (they sum to 1).
MIX = {"like": 0.42, "comment": 0.2, "vote": 0.26, "share": 0.04, "follow": 0.03,
       "sticker_click": 0.05}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate", help="drive a room with synthetic viewers (demos, load)",
        description=__doc__.splitlines()[0] if __doc__ else None)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running server, e.g. http://127.0.0.1:8000")
    target.add_argument("--db", type=Path, help="room database to drive in this process")
    p.add_argument("--room", help="an existing room id (default: create a new room)")
    p.add_argument("--host-token", help="host token of --room, to open a poll")
    p.add_argument("--title", default="Simulated live", help="title of a new room")
    p.add_argument("--viewers", type=int, default=50, help="synthetic viewers (1-10000)")
    p.add_argument("--rate", type=float, default=20.0, help="actions per second (0.1-5000)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (max 3600)")
    p.add_argument("--max-actions", type=int, default=10_000, help="stop after this many")
    p.add_argument("--languages", default="zh,en,th,vi,id",
                   help="comma-separated comment languages (zh, en, th, vi, id)")
    p.add_argument("--no-poll", action="store_true", help="do not open a shade poll")
    p.add_argument("--seed", type=int, default=None, help="random seed, for repeatable runs")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight at most")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)


@dataclass
class Viewer:
    id: str
    token: str
    lang: str
    present: bool = True
    following: bool = False


@dataclass
class Summary:
    room_id: str = ""
    host_token: str | None = None
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # "kind:status"
    seconds: float = 0.0

    @property
    def actions(self) -> int:
        return sum(self.accepted.values()) + sum(self.refused.values())

    def to_json(self) -> dict[str, Any]:
        return {"room_id": self.room_id, "host_token": self.host_token,
                "accepted": dict(self.accepted), "refused": dict(self.refused),
                "actions": self.actions, "seconds": round(self.seconds, 3),
                "actions_per_s": round(self.actions / self.seconds, 1) if self.seconds else 0}


class Backend(Protocol):
    """Where actions go: a server over HTTP, or a hub in this process."""

    async def create_room(self, title: str) -> tuple[str, str]: ...
    async def open_poll(self, room: str, host: str, duration_s: float) -> str: ...
    async def act(self, room: str, viewer: Viewer | None, kind: str,
                  body: dict[str, Any]) -> int: ...
    async def close(self) -> None: ...


class HttpBackend:
    def __init__(self, url: str, concurrency: int) -> None:
        import httpx

        self.url = url.rstrip("/")
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits)

    async def _post(self, path: str, body: dict[str, Any] | None,
                    token: str | None) -> tuple[int, dict[str, Any]]:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = await self.client.post(path, json=body, headers=headers)
        except httpx.HTTPError as e:
            raise UserError(f"cannot reach the server at {self.url}: {e}") from None
        try:
            data = r.json()
        except json.JSONDecodeError:
            data = {}
        return r.status_code, data

    async def create_room(self, title: str) -> tuple[str, str]:
        # A server that is not open to all needs its admin token to make a room; it is
        # read from the environment so it never shows in the process list.
        admin = os.environ.get("ARENGINE_ADMIN_TOKEN") or None
        status, data = await self._post("/api/rooms", {"title": title}, admin)
        if status in (401, 403):
            raise UserError(f"could not create a room: {data.get('detail', status)}; set "
                            "ARENGINE_ADMIN_TOKEN to the server's admin token, or pass "
                            "--room with an existing room")
        if status != 201:
            raise UserError(f"could not create a room: {status} {data.get('detail', '')}")
        return data["room_id"], data["host_token"]

    async def open_poll(self, room: str, host: str, duration_s: float) -> str:
        status, data = await self._post(f"/api/rooms/{room}/polls", poll_body(duration_s), host)
        if status != 201:
            raise UserError(f"could not open a poll: {status} {data.get('detail', '')}")
        return str(data["id"])

    async def act(self, room: str, viewer: Viewer | None, kind: str,
                  body: dict[str, Any]) -> int:
        base = f"/api/rooms/{room}"
        token = viewer.token if viewer else None
        if kind == "join":  # with the token of a viewer who left, this rejoins them
            status, data = await self._post(base + "/join", body, token or None)
            if status == 201 and viewer is not None:
                viewer.id, viewer.token = data["viewer_id"], data["viewer_token"]
            return status
        path = {"comment": "/comments", "like": "/likes", "share": "/shares",
                "follow": "/follows", "leave": "/leave"}.get(kind)
        if kind == "vote":
            path = f"/polls/{body.pop('poll_id')}/votes"
        elif kind == "sticker_click":
            path = f"/stickers/{body.pop('sticker_id')}/clicks"
        assert path is not None
        status, _ = await self._post(base + path, body or None, token)
        return status

    async def close(self) -> None:
        await self.client.aclose()


class LocalBackend:
    def __init__(self, db: Path) -> None:
        from arengine.interaction.hub import RoomHub

        try:
            self.hub = RoomHub.open(db)
        except Exception as e:  # sqlite3 errors name the problem well enough
            raise UserError(f"cannot open room database {db}: {e}") from None

    async def create_room(self, title: str) -> tuple[str, str]:
        room, token = await self.hub.create_room(title)
        return room.id, token

    async def open_poll(self, room: str, host: str, duration_s: float) -> str:
        r = self.hub.get(room)
        if not r.verify_host(host):
            raise UserError(f"--host-token is not the host token of room {room!r}")
        body = poll_body(duration_s)
        poll = await r.open_poll(body["question"],
                                 [(o["label"], o["shade_id"]) for o in body["options"]],
                                 duration_s, apply_shade=True)
        return poll.id

    async def act(self, room: str, viewer: Viewer | None, kind: str,
                  body: dict[str, Any]) -> int:
        from arengine.interaction.errors import InteractionError

        r = self.hub.get(room)
        try:
            if kind == "join":
                assert viewer is not None
                token = viewer.token or None
                viewer.id, viewer.token = await r.join(body["name"], token)
                return 201
            assert viewer is not None
            vid = viewer.id
            if kind == "comment":
                await r.comment(vid, body["text"])
            elif kind == "like":
                await r.like(vid, body["count"])
            elif kind == "vote":
                await r.vote(vid, body["poll_id"], body["option"])
            elif kind == "share":
                await r.share(vid, body["channel"])
            elif kind == "follow":
                await r.follow(vid)
            elif kind == "sticker_click":
                await r.sticker_click(vid, body["sticker_id"])
            elif kind == "leave":
                await r.leave(vid)
                return 200
        except InteractionError as e:
            return e.status
        return 201

    async def close(self) -> None:
        await self.hub.close()


def poll_body(duration_s: float) -> dict[str, Any]:
    return {"question": "Which shade should I try next? 下一个试哪个色？",
            "duration_s": duration_s, "apply_shade": True,
            "options": [{"label": s.replace("-", " ").title(), "shade_id": s}
                        for s in POLL_SHADES]}


def check_args(args: argparse.Namespace) -> list[str]:
    if not 1 <= args.viewers <= 10_000:
        raise UserError(f"--viewers must be 1 to 10000, not {args.viewers}")
    if not 0.1 <= args.rate <= 5000:
        raise UserError(f"--rate must be 0.1 to 5000 actions/s, not {args.rate:g}")
    if not 0 < args.duration <= 3600:
        raise UserError(f"--duration must be above 0 and at most 3600 s, not {args.duration:g}")
    if args.max_actions < 1:
        raise UserError(f"--max-actions must be at least 1, not {args.max_actions}")
    if not 1 <= args.concurrency <= 1024:
        raise UserError(f"--concurrency must be 1 to 1024, not {args.concurrency}")
    langs = [x.strip() for x in args.languages.split(",") if x.strip()]
    unknown = [x for x in langs if x not in COMMENTS]
    if not langs or unknown:
        raise UserError(f"--languages: unknown {', '.join(unknown) or '(empty)'}; "
                        f"choose from {', '.join(COMMENTS)}")
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise UserError(f"--url must start with http:// or https://, not {args.url!r}")
    if args.host_token and not args.room:
        raise UserError("--host-token needs --room")
    if args.db is not None and args.db.is_dir():
        raise UserError(f"--db {args.db} is a directory; give a database file")
    return langs


class Simulation:
    """Picks the next action and paces them at the requested rate."""

    def __init__(self, backend: Backend, args: argparse.Namespace, langs: list[str]) -> None:
        self.backend = backend
        self.args = args
        self.langs = langs
        self.rng = random.Random(args.seed)
        self.viewers: list[Viewer] = []
        self.poll_id: str | None = None
        self.summary = Summary()

    def next_action(self) -> tuple[Viewer, str, dict[str, Any]]:
        rng = self.rng
        if len(self.viewers) < self.args.viewers:
            lang = self.langs[len(self.viewers) % len(self.langs)]
            v = Viewer("", "", lang)
            self.viewers.append(v)
            return v, "join", {"name": rng.choice(NAMES[lang])}
        v = rng.choice(self.viewers)
        if not v.id:  # its join is still in flight
            return v, "like", {"count": 1}
        if not v.present:
            v.present = True
            return v, "join", {"name": rng.choice(NAMES[v.lang])}
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == "vote" and self.poll_id is None:
            kind = "like"
        if kind == "follow" and v.following:
            kind = "comment"
        if rng.random() < 0.01:
            v.present = False
            return v, "leave", {}
        if kind == "comment":
            return v, kind, {"text": rng.choice(COMMENTS[v.lang])}
        if kind == "like":
            return v, kind, {"count": rng.choice((1, 1, 1, 2, 3, 5))}
        if kind == "vote":
            weights = (5, 3, 2, 1)  # some shades are more popular
            return v, kind, {"poll_id": self.poll_id,
                             "option": rng.choices(range(4), weights=weights)[0]}
        if kind == "share":
            return v, kind, {"channel": rng.choice(("line", "wechat", "whatsapp", "copy"))}
        if kind == "follow":
            v.following = True
            return v, kind, {}
        return v, "sticker_click", {"sticker_id": rng.choice(STICKERS)}

    async def run(self) -> Summary:
        args = self.args
        s = self.summary
        if args.room:
            s.room_id, s.host_token = args.room, args.host_token
        else:
            s.room_id, s.host_token = await self.backend.create_room(args.title)
        if s.host_token and not args.no_poll:
            self.poll_id = await self.backend.open_poll(
                s.room_id, s.host_token, max(15.0, min(1800.0, args.duration)))
        slots = asyncio.Semaphore(args.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        end = start + args.duration
        i = 0
        while i < args.max_actions:
            due = start + i / args.rate
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            viewer, kind, body = self.next_action()
            task = asyncio.create_task(self._one(slots, viewer, kind, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.gather(*tasks)
        s.seconds = time.monotonic() - start
        return s

    async def _one(self, slots: asyncio.Semaphore, viewer: Viewer, kind: str,
                   body: dict[str, Any]) -> None:
        try:
            status = await self.backend.act(self.summary.room_id, viewer, kind, body)
        finally:
            slots.release()
        if status < 300:
            self.summary.accepted[kind] += 1
        else:
            self.summary.refused[f"{kind}:{status}"] += 1
            if kind == "join":
                viewer.present = False


def run(args: argparse.Namespace) -> int:
    langs = check_args(args)

    async def main() -> Summary:
        backend: Backend = (HttpBackend(args.url, args.concurrency) if args.url
                            else LocalBackend(args.db))
        try:
            if args.db is not None and args.room:
                from arengine.interaction.errors import NotFoundError

                try:
                    backend.hub.get(args.room)  # type: ignore[attr-defined]
                except NotFoundError as e:
                    raise UserError(str(e)) from None
            return await Simulation(backend, args, langs).run()
        finally:
            await backend.close()

    summary = asyncio.run(main())
    if args.json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        accepted = ", ".join(f"{k} {n}" for k, n in sorted(summary.accepted.items()))
        refused = ", ".join(f"{k} {n}" for k, n in sorted(summary.refused.items())) or "none"
        print(f"room {summary.room_id}: {summary.actions} actions in {summary.seconds:.1f} s "
              f"({summary.actions / max(summary.seconds, 1e-9):.1f}/s)")
        print(f"  accepted: {accepted}")
        print(f"  refused:  {refused}")
        if summary.host_token and not args.room:
            print(f"  host token: {summary.host_token}")
    if summary.actions and not summary.accepted:
        print("arengine simulate: every action was refused; see the counts above",
              file=sys.stderr)
        return 1
    return 0
