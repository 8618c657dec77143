// What every browser test needs: a fresh database, `mitra serve` on it (all
// roles, as an operator runs it), the admin API, and Debian's Chromium.
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import net from "node:net";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

export const ADMIN = "admin-" + crypto.randomBytes(16).toString("hex");
const LINK_KEY = "1:" + crypto.randomBytes(24).toString("hex");

function psql(db, sql) {
  const url = new URL(process.env.DATABASE_URL);
  url.pathname = "/" + db;
  execFileSync("psql", [url.toString(), "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], { stdio: "pipe" });
}

/** A port nobody listens on now. mitra is given it (not port 0) because
 * the links it issues carry MITRA_PUBLIC_URL, which must name the port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts mitra on a fresh database; `stop()` ends it and drops the database. */
export async function startMitra(extraEnv = {}) {
  const listen = `127.0.0.1:${await freePort()}`;
  const name = "mitra_browser_" + crypto.randomBytes(6).toString("hex");
  psql("postgres", `create database ${name}`);
  const dbUrl = new URL(process.env.DATABASE_URL);
  dbUrl.pathname = "/" + name;
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || "/tmp",
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL: process.env.REDIS_URL,
    MITRA_REDIS_PREFIX: `browser:${name}:`,
    MITRA_LISTEN: listen,
    MITRA_PUBLIC_URL: `http://${listen}`,
    MITRA_ADMIN_TOKEN: ADMIN,
    MITRA_LINK_KEYS: LINK_KEY,
    MITRA_LOG_FORMAT: "json",
    MITRA_WORKER_POLL_MS: "50",
    MITRA_HTTP_WORKERS: "2",
    RUST_LOG: "warn,mitra::cli=info",
    ...extraEnv,
  };
  const child = spawn(process.env.MITRA_BIN, ["serve"], { env, stdio: ["ignore", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("mitra did not announce its port")), 60000);
    lines.on("line", (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.port) { clearTimeout(timer); resolve(msg.port); }
      } catch { /* not JSON */ }
    });
    child.on("exit", (code) => reject(new Error(`mitra exited with ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.on("exit", resolve));
      psql("postgres", `drop database if exists ${name} with (force)`);
    },
  };
}

/** Calls the JSON API as `token`; answers [status, body]. */
export async function api(base, method, p, token, body) {
  const request = () => fetch(base + p, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let res;
  try {
    res = await request();
  } catch {
    // A kept-alive connection the server closed while this process was
    // busy (running an example): the request never reached it; send it again.
    res = await request();
  }
  const text = await res.text();
  return [res.status, text ? JSON.parse(text) : null];
}

/** Signs a webhook body as a shop does. */
export function signature(secret, body) {
  const t = Math.floor(Date.now() / 1000);
  const v1 = crypto.createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
  return `t=${t},v1=${v1}`;
}

/** Debian's Chromium, headless, as root needs it, quiet on the network.
 * Playwright gives every launch a fresh profile (user data dir) of its own. */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  return { browser, close: () => browser.close() };
}

/** Where screenshots go, when asked for (scripts/screenshots). */
export const SHOTS = process.env.MITRA_SCREENSHOTS_DIR || "";

/** Phone and desktop screenshots of the page at `url`, named `name`. */
export async function screenshots(context, url, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const [kind, viewport] of [["phone", { width: 390, height: 844 }], ["desktop", { width: 1280, height: 800 }]]) {
    const page = await context.newPage();
    await page.setViewportSize(viewport);
    await page.goto(url);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${kind}.png`), fullPage: kind === "desktop" });
    await page.close();
  }
}

/** Waits until `check` answers true, polling; fails after `ms`. */
export async function eventually(check, ms = 20000, what = "condition") {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
