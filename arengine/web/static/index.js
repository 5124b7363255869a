// Rooms list (a page at a time) and room creation (with the admin token).
"use strict";
const list = document.getElementById("rooms");
const more = document.getElementById("more");
const adminField = document.getElementById("admin-token");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// The admin token arrives as #admin=... from the link `arengine serve` prints: keep it for
// this tab and take it out of the address bar.
(function takeAdmin() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("admin")) {
    sessionStorage.setItem("admin-token", hash.get("admin"));
    history.replaceState(null, "", location.pathname);
  }
  adminField.value = sessionStorage.getItem("admin-token") || "";
})();

let shown = 50;  // rooms on screen; "More rooms" shows the next page too
async function refresh() {
  try {
    const items = [];
    let after = null;
    do {
      const q = new URLSearchParams({limit: "50"});
      if (after) q.set("after", after);
      const r = await fetch(`/api/rooms?${q}`);
      const page = await r.json();
      items.push(...page.rooms);
      after = page.next;
    } while (after && items.length < shown);
    list.replaceChildren();
    if (!items.length) list.append(el("li", {class: "muted"}, "No rooms yet."));
    for (const room of items) {
      list.append(el("li", {},
        el("a", {href: `/watch/${encodeURIComponent(room.room_id)}`}, room.title || room.room_id), " ",
        el("span", {class: "muted"}, `${room.room_id} · ${room.status} · ${room.watching} watching · `),
        el("a", {href: `/host/${encodeURIComponent(room.room_id)}`}, "host console")));
    }
    more.hidden = !after;
  } catch (e) { list.replaceChildren(el("li", {class: "error"}, `cannot list rooms: ${e}`)); }
}
more.addEventListener("click", () => { shown += 50; refresh(); });

document.getElementById("create").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = document.getElementById("created");
  const body = {title: document.getElementById("title").value};
  const id = document.getElementById("room-id").value.trim();
  if (id) body.room_id = id;
  const headers = {"Content-Type": "application/json"};
  const admin = adminField.value.trim();
  if (admin) { headers.Authorization = `Bearer ${admin}`; sessionStorage.setItem("admin-token", admin); }
  const r = await fetch("/api/rooms", {method: "POST", headers, body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) { out.className = "error"; out.textContent = data.detail || r.statusText; return; }
  out.className = "";
  const host = `/host/${encodeURIComponent(data.room_id)}#token=${encodeURIComponent(data.host_token)}`;
  out.replaceChildren("Room created. Keep this host link secret: ", el("a", {href: host}, `/host/${data.room_id}#token=…`));
  refresh();
});

refresh();
setInterval(refresh, 3000);
