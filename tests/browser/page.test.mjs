// The live page at /__admin/, end to end: the real binary, uploads made with
// the official Python SDK, and Debian's chromium driven headless by
// playwright-core (which never downloads a browser of its own). Also a web
// app on another loopback origin calling the API (--cors-origin).
//
//   tests/browser/run.sh                      # installs what is missing, then runs this
//   AYMARA_MOCK_BIN=target/debug/aymara-mock SDK_PYTHON=tests/sdk/.venv/bin/python node page.test.mjs
//   UPDATE_SCREENSHOTS=1 ...                  # also rewrites docs/admin-page-*.png
//   ONLY="web app" ...                        # only the tests whose name contains that
//
// Each test starts its own server on port 0 with its own storage dir and
// waits for its listening line; nothing sleeps to wait for anything.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const bin =
  process.env.AYMARA_MOCK_BIN ||
  [join(root, "target/release/aymara-mock"), join(root, "target/debug/aymara-mock")].find(existsSync);
const python = process.env.SDK_PYTHON || join(root, "tests/sdk/.venv/bin/python");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshots = process.env.UPDATE_SCREENSHOTS === "1";
const APPEAR_MS = 1000; // an upload must show on the page this soon

if (!bin || !existsSync(bin)) throw new Error("no aymara-mock binary: build it or set AYMARA_MOCK_BIN");
if (!existsSync(python)) throw new Error(`no SDK venv at ${python}: run tests/sdk/run.sh --setup-only`);

// Each cleanup may return a promise; they run, newest first, once the tests are done.
const cleanups = [];
const log = { text: "" };
async function cleanUp() {
  while (cleanups.length) await cleanups.pop()();
}

/** Starts the binary on port 0; resolves with its URL once it prints its listening line. */
function startServer(args = []) {
  const dir = mkdtempSync(join(tmpdir(), "aymara-mock-browser-"));
  const fixture = join(dir, "rules.json");
  writeFileSync(
    fixture,
    JSON.stringify({
      rules: [
        {
          id: "tag-text-uploads",
          description: "Text uploads succeed, tagged with a header.",
          phase: "upload",
          match: { filename: "*.txt" },
          respond: { status: 200, headers: { "x-tagged": "text" } },
        },
        {
          id: "stored-but-500",
          description: "The first report is stored, then answered 500: the SDK retries.",
          phase: "complete",
          match: { filename: "report*.pdf" },
          when: { times: 1 },
          keep_upload: true,
          respond: { status: 500 },
        },
        {
          id: "reject-videos",
          description: "MP4 uploads are refused.",
          phase: "upload",
          match: { filename: "*.mp4", content_type: "video/*" },
          respond: { status: 413 },
        },
      ],
    })
  );
  const child = spawn(
    bin,
    ["serve", "--port", "0", "--storage-dir", join(dir, "storage"), "--fixtures", fixture, ...args],
    { stdio: ["ignore", "pipe", "pipe"] }
  );
  // The server's log is shown only when a test fails.
  child.stderr.on("data", (chunk) => (log.text += chunk));
  const exited = new Promise((ok) => child.on("exit", ok));
  cleanups.push(async () => {
    // It saves the files API's state in its storage dir as it stops: the
    // dir is removed once it has exited.
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  return new Promise((resolveUrl, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/aymara-mock listening on (\S+)/);
      if (m) resolveUrl({ url: m[1], child, dir });
    });
    child.on("exit", (code) => reject(new Error(`aymara-mock exited (${code}) before listening`)));
  });
}

/** An upload through the official SDK (aymara_ai), as a user's test makes it. */
function sdkUpload(url, filename, content, contentType, retries = 0) {
  const script = `
import sys
from aymara_ai import AymaraAI
client = AymaraAI(api_key="test-key", base_url=sys.argv[1], max_retries=int(sys.argv[5]))
try:
    r = client.files.upload(file=(sys.argv[2], sys.argv[3].encode(), sys.argv[4]))
    print(r.file_uuid)
except Exception as e:
    print(type(e).__name__)
`;
  return execFileSync(python, ["-c", script, url, filename, content, contentType, String(retries)], { encoding: "utf8" }).trim();
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

async function browser() {
  const profile = mkdtempSync(join(tmpdir(), "aymara-mock-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 760 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  return context;
}

const visibleRows = (page) => page.locator(".row[data-seq]:not([hidden])");

async function shot(page, name) {
  if (screenshots) await page.screenshot({ path: join(root, "docs", name) });
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("an SDK upload appears live, opens its detail, near misses show, reset empties the list", async () => {
  const { url } = await startServer();
  const context = await browser();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url + "/__admin/");
  await page.locator("#empty").waitFor({ state: "visible" });

  // Live, without reload: the upload shows within a second of the SDK's answer.
  const content = "hello from the official SDK\n";
  const fileUuid = sdkUpload(url, "notes.txt", content, "text/plain");
  assert.match(fileUuid, /^[0-9a-f-]{36}$/);
  const t0 = Date.now();
  const row = visibleRows(page).filter({ hasText: "notes.txt" });
  await row.waitFor({ timeout: APPEAR_MS });
  console.log(`  upload shown ${Date.now() - t0} ms after the SDK's answer`);
  await assert.doesNotReject(row.getByText("tag-text-uploads").waitFor({ timeout: 100 }));

  // Its detail: the sha256 and the rule that fired, and a download link.
  await row.click();
  const detail = page.locator("#detail");
  await detail.locator(".sha256", { hasText: sha256(content) }).waitFor({ timeout: 1000 });
  assert.ok((await detail.textContent()).includes("tag-text-uploads"));
  const href = await detail.locator("a.download").getAttribute("href");
  assert.ok(href.includes(fileUuid), href);
  assert.ok(!(await detail.textContent()).includes("test-key"), "the API key is redacted");

  // Stored but answered 500, then retried by the SDK: one call, two attempts, a duplicate.
  assert.match(sdkUpload(url, "report.pdf", "%PDF-1.7 quarterly", "application/pdf", 2), /^[0-9a-f-]{36}$/);
  const retry = visibleRows(page).filter({ hasText: "retry 1" });
  await retry.waitFor({ timeout: APPEAR_MS });
  assert.match(await retry.locator(".c-file").textContent(), /report\.pdf .* duplicate/);

  // An upload no rule decided: its near misses, condition by condition.
  assert.match(sdkUpload(url, "clip.mov", "not really a video", "video/quicktime"), /^[0-9a-f-]{36}$/);
  const unmatched = visibleRows(page).filter({ hasText: "clip.mov" });
  await unmatched.waitFor({ timeout: APPEAR_MS });
  assert.match(await unmatched.locator(".c-rule").textContent(), /none · 3 near/);
  await shot(page, "admin-page-journal.png");
  await unmatched.click();
  const miss = detail.locator('.near-miss[data-rule="reject-videos"]');
  await miss.waitFor({ timeout: 1000 });
  const text = await miss.textContent();
  for (const want of ["match.filename", '"*.mp4"', '"clip.mov"']) assert.ok(text.includes(want), `${want} in ${text}`);
  assert.ok(!text.includes("match.content_type"), "video/quicktime matches video/*");
  await shot(page, "admin-page-near-miss.png");

  // The rules with their counters.
  const rule = page.locator('#rules tr[data-rule="tag-text-uploads"]');
  await rule.locator("td:nth-child(4)", { hasText: "1" }).waitFor({ timeout: 2000 });

  // Reset empties the list.
  await page.locator("#reset").click();
  await page.waitForFunction(() => document.querySelectorAll(".row[data-seq]:not([hidden])").length === 0, null, {
    timeout: 2000,
  });
  await page.locator("#empty").waitFor({ state: "visible", timeout: 1000 });
  await context.close();
});

test("with --admin-token the page asks for the token, refuses a wrong one, then lists", async () => {
  const { url } = await startServer(["--admin-token", "s3cret"]);
  sdkUpload(url, "before.txt", "x", "text/plain");
  const context = await browser();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url + "/__admin/");
  const form = page.locator("#token-form");
  await form.waitFor({ state: "visible", timeout: 2000 });
  assert.ok(await page.locator("#main").isHidden());
  await shot(page, "admin-page-token.png");
  await page.fill("#token", "wrong");
  await page.click("#token-form button");
  await page.locator("#token-error", { hasText: "refused" }).waitFor({ timeout: 2000 });
  await page.fill("#token", "s3cret");
  await page.click("#token-form button");
  await visibleRows(page).filter({ hasText: "before.txt" }).waitFor({ timeout: APPEAR_MS });
  assert.ok(await form.isHidden());
  await context.close();
});

test("10,000 journal entries: few rows in the DOM, filters and scrolling stay fast", async () => {
  const { url } = await startServer();
  const total = 10_000;
  let sent = 0;
  const worker = async () => {
    while (sent < total) {
      sent++;
      const path = sent % 10 === 0 ? "/v2/nowhere" : "/health";
      await (await fetch(url + path)).arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const context = await browser();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url + "/__admin/");
  await page.locator("#counts", { hasText: `${total} requests` }).waitFor({ timeout: 10_000 });
  const inDom = await page.locator(".row[data-seq]").count();
  assert.ok(inDom < 100, `${inDom} rows in the DOM`);
  const t0 = Date.now();
  await page.fill("#f-path", "nowhere");
  await page.locator("#shown", { hasText: `${total / 10} shown` }).waitFor({ timeout: 1000 });
  await page.fill("#f-path", "");
  await page.locator("#list").evaluate((list) => (list.scrollTop = list.scrollHeight));
  await page.locator(".row[data-seq]:not([hidden])").first().waitFor({ timeout: 1000 });
  const ms = Date.now() - t0;
  console.log(`  filtered and scrolled 10,000 entries in ${ms} ms`);
  assert.ok(ms < 1500, `${ms} ms`);
  await context.close();
});

// ---------------------------------------------------------------- CORS

/** A tiny web app on its own loopback port: one empty page, another origin than the emulator's. */
async function appServer() {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>web app</title><p>a web app on another origin</p>");
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

/** The admin API, called from node (no Origin: not a browser). */
async function admin(url, path, options = {}) {
  const response = await fetch(url + path, options);
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
}

test("a web app on another origin uploads, PUTs to a presigned URL, reads a 429; others and the admin API are refused", async () => {
  const allowed = await appServer();
  const refused = await appServer();
  const { url } = await startServer(["--cors-origin", allowed]);
  const context = await browser();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(allowed + "/");

  // (a) A File in FormData with x-api-key: the JSON answer and the rule's header are readable.
  const a = await page.evaluate(async (api) => {
    const form = new FormData();
    form.append("file", new File(["hello from a web page\n"], "page-notes.txt", { type: "text/plain" }));
    const r = await fetch(api + "/v2/files/-/uploads", { method: "POST", headers: { "x-api-key": "k" }, body: form });
    return { status: r.status, body: await r.json(), requestId: r.headers.get("x-request-id"), tagged: r.headers.get("x-tagged") };
  }, url);
  assert.equal(a.status, 200, JSON.stringify(a));
  assert.match(a.body.file_uuid, /^[0-9a-f-]{36}$/);
  assert.match(a.requestId, /^req_/);
  assert.equal(a.tagged, "text", "a rule's own header is exposed");

  // (b) POST /v2/files, PUT to the presigned URL with its content type, the ETag, then /status.
  const b = await page.evaluate(async (api) => {
    const headers = { "x-api-key": "k", "content-type": "application/json" };
    const created = await fetch(api + "/v2/files", {
      method: "POST",
      headers,
      body: JSON.stringify({ files: [{ local_file_path: "report.csv" }] }),
    }).then((r) => r.json());
    const file = created.files[0];
    const put = await fetch(file.file_url, {
      method: "PUT",
      headers: { "content-type": file.content_type },
      body: new Blob(["a,b\n1,2\n"], { type: file.content_type }),
    });
    const etag = put.headers.get("etag");
    let status = null;
    for (let i = 0; i < 100 && status !== "completed"; i++) {
      const s = await fetch(`${api}/v2/files/${file.file_uuid}/status`, { headers: { "x-api-key": "k" } });
      status = (await s.json()).processing_status;
      if (status !== "completed") await new Promise((ok) => setTimeout(ok, 50));
    }
    return { put: put.status, etag, contentType: file.content_type, status };
  }, url);
  assert.equal(b.put, 200, JSON.stringify(b));
  assert.match(b.etag || "", /^"[0-9a-f]{32}"$/, JSON.stringify(b));
  assert.equal(b.contentType, "text/csv");
  assert.equal(b.status, "completed");

  // (c) A 429 rule: its status and retry-after, read from JavaScript.
  await admin(url, "/__admin/rules", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "page-429", match: { route: "list" }, when: { times: 1 }, respond: { status: 429, headers: { "retry-after": "3" } } }),
  });
  const c = await page.evaluate(async (api) => {
    const r = await fetch(api + "/v2/files", { headers: { "x-api-key": "k" } });
    return { status: r.status, retryAfter: r.headers.get("retry-after"), code: (await r.json()).error.code };
  }, url);
  assert.deepEqual(c, { status: 429, retryAfter: "3", code: "quota.limit_exceeded" });

  // The README's example ("From a web app"), as written but for the server's address.
  const readme = readFileSync(join(root, "README.md"), "utf8").split("\n## From a web app\n")[1].split("\n## ")[0];
  const example = readme.match(/```js\n([\s\S]*?)```/)[1];
  assert.ok(example.trim().split("\n").length <= 10, "the README's example is ten lines at most");
  const logged = [];
  page.on("console", (message) => logged.push(message.text()));
  await page.evaluate(`(async () => {\n${example.replaceAll("http://localhost:8000", url)}\n})()`);
  assert.match(logged.join("\n"), /^[0-9a-f-]{36} 200 "[0-9a-f]{32}"$/m, logged.join("\n"));

  // (e) The admin API, from the allowed page: the browser refuses, and the reset never happens.
  const e = await page.evaluate(async (api) => {
    const outcome = (p) => p.then((r) => "answer " + r.status, (err) => err.name);
    return {
      list: await outcome(fetch(api + "/__admin/requests")),
      reset: await outcome(fetch(api + "/__admin/reset", { method: "POST", headers: { "content-type": "application/json" } })),
    };
  }, url);
  assert.deepEqual(e, { list: "TypeError", reset: "TypeError" });

  // (d) A page on an origin not allowed: the preflight fails, the page sees a TypeError, nothing is stored.
  const before = (await admin(url, "/__admin/uploads")).uploads.length;
  await page.goto(refused + "/");
  const d = await page.evaluate(async (api) => {
    const form = new FormData();
    form.append("file", new File(["must not arrive"], "refused.txt", { type: "text/plain" }));
    try {
      const r = await fetch(api + "/v2/files/-/uploads", { method: "POST", headers: { "x-api-key": "k" }, body: form });
      return "answer " + r.status;
    } catch (err) {
      return err.name;
    }
  }, url);
  assert.equal(d, "TypeError");
  assert.equal((await admin(url, "/__admin/uploads")).uploads.length, before, "nothing stored for the refused page");
  const journal = (await admin(url, "/__admin/requests")).requests;
  const fromRefused = journal.filter((r) => r.cors && r.cors.origin === refused);
  assert.deepEqual(
    fromRefused.map((r) => [r.method, r.status, r.cors.allowed]),
    [["OPTIONS", 403, false]],
    "only the refused preflight reached the server"
  );
  assert.ok(journal.some((r) => r.method === "OPTIONS" && r.status === 204 && r.cors.origin === allowed));

  // The live page shows the preflights and what they were told.
  await page.goto(url + "/__admin/");
  const refusedRow = visibleRows(page).filter({ hasText: "CORS preflight · origin refused" });
  await refusedRow.waitFor({ timeout: 2000 });
  await visibleRows(page).filter({ hasText: "CORS preflight · granted" }).first().waitFor({ timeout: 1000 });
  await refusedRow.click();
  const detail = page.locator("#detail .cors");
  await detail.waitFor({ timeout: 1000 });
  const text = await detail.textContent();
  assert.ok(text.includes(refused) && text.includes("not allowed"), text);
  await context.close();
});

// ONLY=text runs the tests whose name contains it (all by default).
const only = process.env.ONLY || "";
const selected = tests.filter(({ name }) => name.includes(only));

let failed = 0;
for (const { name, fn } of selected) {
  const t0 = Date.now();
  log.text = "";
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}\n${err.stack || err}\n--- server log ---\n${log.text.slice(-20000)}`);
  }
}
console.log(failed ? `${failed} of ${selected.length} failed` : `all ${selected.length} passed`);
await cleanUp();
process.exit(failed ? 1 : 0);
