"use strict";
const list = document.getElementById("rooms");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function refresh() {
  try {
    const r = await fetch("/api/media/rooms");
    const {rooms} = await r.json();
    list.replaceChildren();
    if (!rooms.length) list.append(el("li", {class: "muted"}, "No rooms yet."));
    for (const room of rooms) {
      list.append(el("li", {},
        el("a", {href: room.watch}, room.title || room.id), " ",
        el("span", {class: "muted"}, `${room.id} · ${room.status} · ${room.viewers} watching · `),
        el("a", {href: room.host}, "host console")));
    }
  } catch (e) { list.replaceChildren(el("li", {class: "error"}, `cannot list rooms: ${e}`)); }
}

document.getElementById("create").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = document.getElementById("created");
  const body = {title: document.getElementById("title").value};
  const id = document.getElementById("room-id").value.trim();
  if (id) body.room_id = id;
  const r = await fetch("/api/rooms", {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) { out.className = "error"; out.textContent = data.detail || r.statusText; return; }
  out.className = "";
  const host = `/host/${data.room_id}?token=${encodeURIComponent(data.host_token)}`;
  out.replaceChildren("Room created. Keep this host link secret: ", el("a", {href: host}, host));
  refresh();
});

refresh();
setInterval(refresh, 3000);
