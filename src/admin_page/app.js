// The live page of aymara-mock's journal. Plain JavaScript, no dependencies.
//
// It polls `GET /__admin/requests?after=SEQ`, so each poll carries only the
// requests journaled since the last one; `x-journal-oldest-seq` says which
// older ones the server has dropped (evicted, cleared, reset). The list is
// virtual: only the rows in view exist in the DOM, so 10,000 entries scroll
// as fast as 10. Every value is written with textContent, never as HTML.
"use strict";

const ROW_HEIGHT = 26;
const POLL_MS = 250;
const RULES_EVERY = 4; // polls between two reads of the rules
const TOKEN_KEY = "aymara-mock-admin-token";

const state = {
  entries: [], // oldest first
  bySeq: new Map(),
  matching: [], // entries passing the filters, oldest first
  lastSeq: 0,
  selected: null,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  needToken: false,
  polls: 0,
  rows: [], // the pool of row elements
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// ---------------------------------------------------------------- admin API

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers);
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (response.status === 401) {
    askForToken(state.token ? "The server refused this token." : "");
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response;
}

function askForToken(message) {
  state.needToken = true;
  $("token-form").hidden = false;
  $("main").hidden = true;
  $("token-error").textContent = message;
  $("token").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  state.needToken = false;
  $("token-form").hidden = true;
  $("main").hidden = false;
  schedule(0);
});

// ------------------------------------------------------------------ polling

let timer = null;
function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(poll, ms);
}

async function poll() {
  try {
    const response = await api("/__admin/requests?after=" + state.lastSeq);
    const oldest = Number(response.headers.get("x-journal-oldest-seq") || 0);
    const body = await response.json();
    receive(body.requests || [], oldest);
    if (state.polls++ % RULES_EVERY === 0) await loadRules();
    $("live").classList.remove("stale");
  } catch (err) {
    $("live").classList.add("stale");
    if (state.needToken) return; // resumes when a token is given
  }
  schedule(POLL_MS);
}

function receive(records, oldest) {
  let dropped = false;
  if (state.entries.length && state.entries[0].seq < oldest) {
    const keep = state.entries.findIndex((r) => r.seq >= oldest);
    const gone = keep < 0 ? state.entries : state.entries.slice(0, keep);
    for (const r of gone) state.bySeq.delete(r.seq);
    state.entries = keep < 0 ? [] : state.entries.slice(keep);
    dropped = true;
  }
  for (const r of records) {
    if (r.seq <= state.lastSeq) continue;
    state.entries.push(r);
    state.bySeq.set(r.seq, r);
    state.lastSeq = r.seq;
    if (!dropped && passes(r)) state.matching.push(r);
  }
  if (dropped) refilter();
  else if (records.length) render();
  if (state.selected != null && !state.bySeq.has(state.selected)) select(null);
}

async function loadRules() {
  const body = await (await api("/__admin/rules")).json();
  const rules = body.rules || [];
  const tbody = $("rules");
  tbody.replaceChildren(
    ...rules.map((r) =>
      el(
        "tr",
        { "data-rule": r.id },
        el("td", { text: r.id, title: r.description || "" }),
        el("td", { text: r.source }),
        el("td", { text: r.phase || "request" }),
        el("td", { class: "num", text: String(r.matched) }),
        el("td", { class: "num", text: String(r.fired) })
      )
    )
  );
  $("no-rules").hidden = rules.length > 0;
}

// ------------------------------------------------------------------ filters

function filters() {
  return {
    status: $("f-status").value,
    rule: $("f-rule").value.trim(),
    path: $("f-path").value.trim(),
  };
}

let current = filters();
function passes(r) {
  const f = current;
  if (f.status === "none" && r.status != null) return false;
  if (f.status && f.status !== "none" && String(r.status || "")[0] !== f.status) return false;
  if (f.rule === "-" && r.rule) return false;
  if (f.rule && f.rule !== "-" && !(r.rule || "").includes(f.rule)) return false;
  if (f.path && !r.path.includes(f.path)) return false;
  return true;
}

function refilter() {
  current = filters();
  state.matching = state.entries.filter(passes);
  render();
}

for (const id of ["f-status", "f-rule", "f-path"]) $(id).addEventListener("input", refilter);

// --------------------------------------------------------------- the list

const list = $("list");
list.addEventListener("scroll", () => requestAnimationFrame(render));
window.addEventListener("resize", () => requestAnimationFrame(render));
list.addEventListener("click", (event) => {
  const row = event.target.closest(".row[data-seq]");
  if (row) select(Number(row.dataset.seq));
});
list.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const order = newestFirst();
  const at = order.findIndex((r) => r.seq === state.selected);
  const next = order[Math.max(0, Math.min(order.length - 1, at + (event.key === "ArrowDown" ? 1 : -1)))];
  if (next) select(next.seq);
  event.preventDefault();
});

function newestFirst() {
  return state.matching.slice().reverse();
}

function size(n) {
  if (n == null) return "";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

function fillRow(row, r) {
  row.dataset.seq = r.seq;
  row.classList.toggle("selected", r.seq === state.selected);
  const cells = row.children;
  cells[0].textContent = (r.time || "").slice(11, 23);
  cells[1].textContent = r.method;
  cells[2].textContent = r.path;
  cells[2].title = r.path;
  const status = r.status == null ? (r.fault || (r.cut ? "cut" : "—")) : String(r.status);
  cells[3].textContent = status;
  cells[3].className = "c-status s" + (r.status == null ? "x" : String(r.status)[0]);
  const near = r.near_misses || [];
  cells[4].textContent = r.rule || (near.length ? "none · " + near.length + " near" : "—");
  cells[4].classList.toggle("missed", !r.rule && near.length > 0);
  const u = r.upload;
  cells[5].textContent = u
    ? u.filename + " · " + size(u.size) + (u.duplicate_of ? " · duplicate" : "")
    : r.cors && r.cors.preflight_method != null
      ? "CORS preflight · " + corsVerdict(r.cors)
      : "";
  cells[6].textContent = r.attempt > 1 ? "retry " + (r.attempt - 1) : r.retry_count != null ? "1st" : "";
}

// What a browser was told about a page's cross-origin call.
function corsVerdict(c) {
  if (!c.allowed) return "origin refused";
  return c.refused && c.refused.length ? "refused " + c.refused.join(", ") : "granted";
}

function newRow() {
  const row = el("div", { class: "row" });
  for (const c of ["c-time", "c-method", "c-path", "c-status", "c-rule", "c-file", "c-attempt"]) {
    row.append(el("span", { class: c }));
  }
  return row;
}

function render() {
  const n = state.matching.length;
  $("spacer").style.height = n * ROW_HEIGHT + "px";
  $("empty").hidden = n > 0;
  $("counts").textContent = state.entries.length + " requests";
  $("shown").textContent = n === state.entries.length ? "" : n + " shown";
  const first = Math.max(0, Math.floor(list.scrollTop / ROW_HEIGHT) - 5);
  const count = Math.min(n - first, Math.ceil(list.clientHeight / ROW_HEIGHT) + 10);
  while (state.rows.length < count) {
    const row = newRow();
    state.rows.push(row);
    list.append(row);
  }
  state.rows.forEach((row, i) => {
    if (i >= count) {
      row.hidden = true;
      return;
    }
    const index = first + i; // 0 is the newest
    const r = state.matching[n - 1 - index];
    row.hidden = false;
    row.style.top = index * ROW_HEIGHT + "px";
    fillRow(row, r);
  });
}

// ------------------------------------------------------------------ detail

function select(seq) {
  state.selected = seq;
  render();
  const box = $("detail");
  const r = seq == null ? null : state.bySeq.get(seq);
  if (!r) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.hidden = false;
  box.replaceChildren(...detail(r));
}

function kv(rows) {
  return el(
    "table",
    { class: "kv" },
    el("tbody", {}, ...rows.filter((row) => row && row[1] != null && row[1] !== "").map(([k, v]) =>
      el("tr", {}, el("th", { text: k }), el("td", {}, v instanceof Node ? v : String(v)))
    ))
  );
}

function detail(r) {
  const out = [
    el("h2", {}, r.method + " " + r.path, el("button", { type: "button", class: "close", title: "Close", id: "close-detail" }, "×")),
    kv([
      ["status", r.status == null ? "no answer" : r.status],
      ["rule", r.rule || "none"],
      ["fault", r.fault],
      ["cut", r.cut ? "the client's body ended early" : null],
      ["request id", r.id],
      ["time", r.time],
      ["duration", r.duration_ms + " ms"],
      ["body", size(r.body_bytes)],
      ["call", r.attempt > 1 ? "attempt " + r.attempt + " of call " + r.call : r.retry_count != null ? "attempt 1" : null],
      ["retry count", r.retry_count],
    ]),
  ];
  const u = r.upload;
  if (u) {
    out.push(el("h3", { text: "Upload" }));
    const link = el("a", { href: u.file_url, download: u.filename, class: "download" }, "download");
    out.push(
      kv([
        ["filename", u.filename],
        ["content type", u.content_type],
        ["size", u.size + " bytes"],
        ["sha256", el("code", { class: "sha256", text: u.sha256 })],
        ["duplicate of", u.duplicate_of],
        ["file_uuid", u.file_uuid],
        ["file", link],
      ])
    );
  }
  const c = r.cors;
  if (c) {
    out.push(el("h3", { text: c.preflight_method != null ? "CORS preflight" : "Cross-origin (CORS)" }));
    out.push(
      el(
        "div",
        { class: "cors" },
        kv([
          ["origin", c.origin],
          ["verdict", c.allowed ? "allowed by --cors-origin" : "not allowed by --cors-origin: the page cannot read the answer"],
          ["asked method", c.preflight_method],
          ["asked headers", (c.preflight_headers || []).join(", ")],
          ["not granted", (c.refused || []).join(", ")],
        ])
      )
    );
  }
  const near = r.near_misses || [];
  if (near.length) {
    out.push(el("h3", { text: r.rule ? "Rules tried first that nearly matched" : "Near misses: why no rule fired" }));
    for (const m of near) {
      out.push(
        el(
          "div",
          { class: "near-miss", "data-rule": m.rule },
          el("div", { class: "near-rule" }, el("strong", { text: m.rule }), " · " + m.failed.length + " condition" + (m.failed.length > 1 ? "s" : "") + " failed"),
          el(
            "table",
            { class: "failed" },
            el("thead", {}, el("tr", {}, el("th", { text: "condition" }), el("th", { text: "expected" }), el("th", { text: "actual" }))),
            el("tbody", {}, ...m.failed.map((f) =>
              el("tr", { title: f.message }, el("td", { text: f.condition }), el("td", { text: JSON.stringify(f.expected) }), el("td", { text: JSON.stringify(f.actual) }))
            ))
          )
        )
      );
    }
  }
  out.push(el("h3", { text: "Headers (credentials redacted)" }));
  out.push(kv(Object.entries(r.headers || {})));
  const q = Object.entries(r.query || {});
  if (q.length) {
    out.push(el("h3", { text: "Query" }));
    out.push(kv(q));
  }
  return out;
}

$("detail").addEventListener("click", (event) => {
  if (event.target.id === "close-detail") select(null);
});

// ------------------------------------------------------------------ buttons

async function action(button, path, method) {
  button.disabled = true;
  try {
    await api(path, { method });
    if (path.endsWith("/reset")) receive([], state.lastSeq + 1);
    schedule(0);
  } catch (err) {
    /* shown by the live marker; a 401 asks for the token */
  } finally {
    button.disabled = false;
  }
}

$("reset").addEventListener("click", (e) => action(e.currentTarget, "/__admin/reset", "POST"));
$("clear-uploads").addEventListener("click", (e) => action(e.currentTarget, "/__admin/uploads", "DELETE"));

render();
schedule(0);
