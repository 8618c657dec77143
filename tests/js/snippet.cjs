// Drives Debian's chromium (through playwright-core, headless) over the
// landing-page snippet as shoppers would, and prints what it saw as JSON.
// The Rust test (tests/api/snippet.rs) runs the shop and mitra, gives the
// plan in argv[2], and checks the orders the shop received.
//
// Plan: {chromium, shop_host, scenarios: [{name, link, consent}]}; consent
// is "none" (no consent needed), "grant" or "refuse" (the page waits).
"use strict";
const path = require("path");
const modules = process.env.MITRA_JS_MODULES;
if (!modules) throw new Error("MITRA_JS_MODULES is not set (scripts/test sets it)");
const { chromium } = require(path.join(modules, "playwright-core"));

const plan = JSON.parse(process.argv[2]);

async function scenario(browser, s) {
  // A fresh context is a fresh profile: no cookies from other scenarios.
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = { name: s.name };
  await page.goto(s.link, { waitUntil: "load" });
  seen.landing_url = page.url();
  await page.waitForFunction(() => window.mitra && window.mitra.version);
  seen.cookie_on_landing = await page.evaluate(() => document.cookie);
  seen.click_id_on_landing = await page.evaluate(() => window.mitra.clickId());
  if (s.consent === "grant") await page.evaluate(() => window.mitra.consent(true));
  if (s.consent === "refuse") await page.evaluate(() => window.mitra.consent(false));
  // Two pages of browsing, each link followed as a shopper clicks it.
  for (let i = 0; i < 2; i++) {
    await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("a.next")]);
  }
  seen.browsed_to = new URL(page.url()).pathname;
  seen.click_id_while_browsing = await page.evaluate(() => window.mitra.clickId());
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("a.checkout")]);
  await page.fill("input[name=email]", "siti.rahma@example.com");
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("button[type=submit]")]);
  seen.after_order = await page.textContent("body");
  seen.cookies = (await context.cookies())
    .filter((c) => c.name.startsWith("mitra_"))
    .map((c) => ({ name: c.name, value: c.value, expires: Math.round(c.expires), path: c.path, sameSite: c.sameSite }));
  await context.close();
  return seen;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: plan.chromium,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // The shop's host name leads to the test's shop on loopback.
      `--host-resolver-rules=MAP ${plan.shop_host} 127.0.0.1`,
    ],
  });
  try {
    const results = [];
    for (const s of plan.scenarios) results.push(await scenario(browser, s));
    process.stdout.write(JSON.stringify(results));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
