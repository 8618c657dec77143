// The portal in a real Chromium, through the pages only: a merchant user
// invites a partner; the partner signs up, accepts, signs in, makes a link
// and copies it; a click and a signed sale go through the real redirect and
// webhook; the partner sees the commission pending; the merchant approves
// the held conversion and pays out; the partner sees it paid. Once in
// English (EUR) and once in Bahasa Indonesia (IDR).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMitra, api, signature, launch, ADMIN, screenshots, eventually, SHOTS } from "./harness.mjs";

let mitra;
let chrome;

before(async () => {
  mitra = await startMitra();
  chrome = await launch();
});

after(async () => {
  await chrome?.close();
  await mitra?.stop();
});

const LANGS = {
  en: {
    locale: "en-US", timezone: "Europe/Amsterdam", currency: "EUR", sale: 12500, commission: "€12.50",
    accept: "Accept", signup: "Create account", signIn: "Sign in", createLink: "Create link",
    copy: "Copy", copied: "Copied!", pending: "pending", held: "Held for review", paid: "paid",
    approve: "Approve", payNow: "Pay now", give: "Give an agreement", invite: "Invite",
    signOut: "Sign out", accepted: "Invitation accepted",
    openClaim: "Open the claim", claimOpened: "Your claim is open", claimOpen: "Open",
    dispute: "Dispute this commission", expected: "15", send: "Send", decline: "Decline", wrote: "wrote",
    save: "Save", tooLate: "takes claims of sales up to 30 days old",
  },
  id: {
    locale: "id-ID", timezone: "Asia/Jakarta", currency: "IDR", sale: 1250000, commission: "Rp\u00a01.250",
    accept: "Terima", signup: "Buat akun", signIn: "Masuk", createLink: "Buat tautan",
    copy: "Salin", copied: "Tersalin!", pending: "tertunda", held: "Ditahan untuk ditinjau", paid: "dibayar",
    approve: "Setujui", payNow: "Bayar sekarang", give: "Beri perjanjian", invite: "Undang",
    signOut: "Keluar", accepted: "Undangan diterima",
    openClaim: "Buka klaim", claimOpened: "Klaim Anda terbuka", claimOpen: "Terbuka",
    dispute: "Sanggah komisi ini", expected: "1500", send: "Kirim", decline: "Tolak", wrote: "menulis",
    save: "Simpan", tooLate: "penjualan paling lama 30 hari",
  },
};

/** Console errors of every page (a CSP violation is one), but the 404s the test asks for. */
const consoleErrors = [];

async function context(lang) {
  const ctx = await chrome.browser.newContext({
    locale: LANGS[lang].locale, timezoneId: LANGS[lang].timezone, viewport: { width: 390, height: 844 },
  });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: mitra.base });
  ctx.on("page", (page) => page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().includes("status of 404")) consoleErrors.push(msg.text());
  }));
  return ctx;
}

for (const lang of ["en", "id"]) {
  test(`the whole partnership in the portal, in ${lang}`, async () => {
    const L = LANGS[lang];
    const base = mitra.base;
    const tag = `${lang}${Date.now()}`;

    // The admin sets up a program and invites its owner, through the API.
    let [status, program] = await api(base, "POST", "/v1/programs", ADMIN, {
      name: `Toko ${tag}`, currency: L.currency, landing_domains: ["shop.example"],
      default_url: "https://shop.example/", attribution_window_days: 30, hold_days: 30,
      commission: { sale: { percent_bps: 1000 } },
    });
    assert.equal(status, 201);
    let invited;
    [status, invited] = await api(base, "POST", `/v1/programs/${program.id}/users`, program.api_key, { email: `owner-${tag}@shop.example` });
    assert.equal(status, 201);

    // The merchant opens the invitation and chooses a password.
    const shop = await context(lang);
    const m = await shop.newPage();
    await m.goto(invited.invite_url);
    await m.fill("input[name=password]", "merchant password 1");
    await m.fill("input[name=password2]", "merchant password 1");
    await m.click("button[type=submit]");
    await m.waitForURL(/\/portal\/merchant/);

    // The merchant invites a partner by e-mail and reads the link to send.
    await m.goto(`${base}/portal/merchant/partners`);
    await m.fill("input[name=email]", `sari-${tag}@example.id`);
    await m.fill("textarea[name=note]", "Selamat datang!");
    await m.click(`button:text-is("${L.invite}")`);
    const inviteUrl = await m.inputValue("input[data-invite-url]");
    assert.match(inviteUrl, /\/portal\/invitations\/[0-9A-Za-z]{44}$/);

    // The partner opens it, makes an account, accepts.
    const phone = await context(lang);
    const p = await phone.newPage();
    await p.goto(inviteUrl);
    assert.match(await p.textContent("h1"), new RegExp(`Toko ${tag}`));
    await p.fill("input[name=name]", `Sari ${tag}`);
    await p.fill("form[action$=signup] input[name=password]", "partner password 1");
    await p.fill("form[action$=signup] input[name=password2]", "partner password 1");
    await p.click(`button:text-is("${L.signup}")`);
    await p.waitForSelector(`button:text-is("${L.accept}")`);
    await p.click(`button:text-is("${L.accept}")`);
    await p.waitForURL(/\/portal\/partner\/programs/);
    assert.match(await p.textContent("main"), new RegExp(L.accepted));

    // It signs out and in again with its e-mail and password.
    await p.click(`button:text-is("${L.signOut}")`);
    await p.waitForURL(/\/portal\/login/);
    await p.fill("input[name=email]", `sari-${tag}@example.id`);
    await p.fill("input[name=password]", "partner password 1");
    await p.click(`main button:text-is("${L.signIn}")`);
    await p.waitForURL(/\/portal\/partner$/);
    // Signing in told mitra the browser's time zone: dates show in it from now on.
    await p.goto(`${base}/portal/account`);
    assert.equal(await p.inputValue("input[name=time_zone]"), L.timezone);

    // The merchant gives it an agreement at the program's terms.
    await m.goto(`${base}/portal/merchant/partners`);
    await m.click(`button:text-is("${L.give}")`);
    await m.waitForURL(/\/portal\/merchant\/agreements\/agr_/);

    // The partner makes a link with a deep link and a sub id, and copies it.
    await p.goto(`${base}/portal/partner/links`);
    await p.fill("input[name=destination_url]", "https://shop.example/batik");
    await p.fill("input[name=sub1]", "instagram");
    await p.click(`button:text-is("${L.createLink}")`);
    await p.waitForURL(/\/portal\/partner\/links\/lnk_/);
    const linkUrl = await p.inputValue("input[data-link-url]");
    assert.match(linkUrl, new RegExp(`^${base}/l/[0-9A-Za-z]+$`));
    assert.equal(await p.locator(".qr svg").count(), 1, "a QR code");
    await p.click(`button.copy:text-is("${L.copy}")`);
    await p.waitForSelector(`button.copy[data-copied=true]`);
    assert.equal(await p.evaluate(() => navigator.clipboard.readText()), linkUrl);

    // A shopper follows the link (the real redirect) ...
    const click = await fetch(linkUrl, { redirect: "manual", headers: { "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1" } });
    assert.equal(click.status, 302);
    const landing = new URL(click.headers.get("location"));
    assert.equal(landing.pathname, "/batik");
    assert.equal(landing.searchParams.get("sub1"), "instagram");
    const clickId = landing.searchParams.get("mitra_click");
    // ... and buys at once: faster than a person, so the sale is held for review.
    const body = JSON.stringify({ order_id: `order-${tag}`, event: "sale", amount_minor: L.sale, currency: L.currency, click_id: clickId });
    const sale = await fetch(`${base}/v1/programs/${program.id}/conversions`, {
      method: "POST", body, headers: { "content-type": "application/json", "mitra-signature": signature(program.webhook_secret, body) },
    });
    assert.equal(sale.status, 202, await sale.text());

    // The partner sees the commission pending, with why.
    await eventually(async () => {
      await p.goto(`${base}/portal/partner/commissions`);
      return (await p.locator("[data-commission]").count()) === 1;
    }, 20000, "the commission to be booked");
    const row = p.locator("[data-commission]");
    assert.equal(await row.getAttribute("data-status"), "pending");
    assert.equal(await row.locator(".amount").textContent(), L.commission);
    assert.match(await row.textContent(), new RegExp(L.pending));
    assert.match(await row.textContent(), new RegExp(L.held));
    assert.match(await row.textContent(), /v1/);
    if (SHOTS) {
      const suffix = lang === "en" ? "" : "-id";
      await screenshots(phone, `${base}/portal/partner/commissions`, `partner-commissions-held${suffix}`);
      await screenshots(shop, `${base}/portal/merchant/conversions`, `merchant-review${suffix}`);
    }

    // The merchant approves the held conversion ...
    await m.goto(`${base}/portal/merchant`);
    assert.equal(await m.textContent("[data-stat=pending-review]"), "1");
    await m.goto(`${base}/portal/merchant/conversions`);
    assert.equal(await m.locator("[data-review]").count(), 1);
    await m.click(`[data-review] button:text-is("${L.approve}")`);
    await m.waitForSelector("[data-review-empty]");
    // ... and pays out.
    await m.goto(`${base}/portal/merchant/payouts`);
    assert.ok((await m.textContent("main")).includes(L.commission), "the preview shows the amount");
    await m.click(`button:has-text("${L.payNow}")`);
    await m.waitForSelector("[data-payout]");
    const csvHref = await m.getAttribute("[data-payout] a", "href");
    const csv = await m.evaluate(async (href) => (await fetch(href)).text(), csvHref);
    assert.match(csv, new RegExp(`Sari ${tag},${L.currency},${L.sale / 10},`));

    // The partner sees it paid.
    await p.goto(`${base}/portal/partner/commissions`);
    assert.equal(await p.getAttribute("[data-commission]", "data-status"), "paid");
    assert.match(await p.textContent("[data-commission]"), new RegExp(L.paid));
    await p.goto(`${base}/portal/partner/payouts`);
    assert.match(await p.textContent("[data-payout]"), new RegExp(L.commission));

    // The partner downloads the program's signed statement and checks it
    // offline with the key the page shows: created, approved, paid.
    await p.goto(`${base}/portal/partner/statement`);
    const signedHref = await p.getAttribute("#verifiable a[download]", "href");
    const publicKey = await p.textContent("#verifiable code.key");
    let signed;
    await eventually(async () => {
      signed = await p.evaluate(async (href) => (await fetch(href)).text(), signedHref);
      return JSON.parse(signed).entries.length === 5;
    }, 20000, "the paid commission's entries to be chained");
    const statementFile = join(tmpdir(), `mitra-statement-${tag}.json`);
    writeFileSync(statementFile, signed);
    const verified = execFileSync(process.env.MITRA_BIN, ["verify-statement", statementFile, "--public-key", publicKey]).toString();
    unlinkSync(statementFile);
    assert.match(verified, /^ok: statement of ptn_\S+ in prg_\S+: 5 entries/, verified);

    // The merchant takes claims of sales up to 30 days old: the partner's
    // claim of a sale 40 days old is refused, saying why, and nothing opens.
    await m.goto(`${base}/portal/merchant/claims`);
    await m.fill("[data-claim-policy] input[name=window_days]", "30");
    await m.click(`[data-claim-policy] button:text-is("${L.save}")`);
    await m.waitForURL(/notice=saved/);
    assert.equal(await m.inputValue("[data-claim-policy] input[name=window_days]"), "30");
    await p.goto(`${base}/portal/partner/claims`);
    await p.fill("[data-claim-form] input[name=order_id]", `late-${tag}`);
    const longAgo = new Date(Date.now() - 40 * 86400000).toISOString().slice(0, 10);
    await p.fill("[data-claim-form] input[name=date]", longAgo);
    await p.fill("[data-claim-form] input[name=amount]", "125");
    await p.click(`[data-claim-form] button:text-is("${L.openClaim}")`);
    await p.waitForSelector(".error");
    assert.match(await p.textContent(".error"), new RegExp(L.tooLate));
    assert.equal(await p.locator("[data-claim]").count(), 0);
    // The browser logs the refused form's 422; that one was meant.
    const refusedLoad = consoleErrors.findIndex((e) => e.includes("status of 422"));
    assert.notEqual(refusedLoad, -1, "the refusal is a 422");
    consoleErrors.splice(refusedLoad, 1);

    // The partner claims a sale the shop never reported, and sees it open.
    await p.goto(`${base}/portal/partner/claims`);
    await p.fill("[data-claim-form] input[name=order_id]", `missed-${tag}`);
    const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
    await p.fill("[data-claim-form] input[name=date]", yesterday);
    await p.fill("[data-claim-form] input[name=amount]", "125");
    await p.click(`[data-claim-form] button:text-is("${L.openClaim}")`);
    await p.waitForURL(/notice=claim-opened/);
    assert.match(await p.textContent("main"), new RegExp(L.claimOpened));
    const claimRow = p.locator("[data-claim]");
    assert.equal(await claimRow.count(), 1);
    assert.equal(await claimRow.getAttribute("data-status"), "open");
    assert.match(await claimRow.textContent(), new RegExp(`missed-${tag}`));
    assert.match(await claimRow.textContent(), new RegExp(L.claimOpen));
    // The merchant accepts it from its queue; the partner sees it accepted.
    await m.goto(`${base}/portal/merchant/claims`);
    const openClaim = m.locator("[data-open-claim]");
    assert.equal(await openClaim.count(), 1);
    assert.match(await openClaim.textContent(), new RegExp(`missed-${tag}`));
    const acceptForm = openClaim.locator("details").first();
    await acceptForm.locator("summary").click();
    await acceptForm.locator(`button:text-is("${L.accept}")`).click();
    await m.waitForSelector("[data-claims-empty]");
    await p.goto(`${base}/portal/partner/claims`);
    assert.equal(await p.getAttribute("[data-claim]", "data-status"), "accepted");

    // The partner disputes the paid commission's amount from the
    // commissions page; the merchant asks in the claim's thread, the
    // partner reads it there, and the merchant declines.
    await p.goto(`${base}/portal/partner/commissions?status=paid`);
    await p.click(`[data-commission][data-status=paid] a:text-is("${L.dispute}")`);
    if (SHOTS && lang === "en") await screenshots(phone, p.url(), "partner-dispute");
    await p.fill("[data-dispute-form] input[name=expected]", L.expected);
    await p.fill("[data-dispute-form] textarea[name=note]", `two items in order-${tag}`);
    await p.click(`[data-dispute-form] button:text-is("${L.openClaim}")`);
    await p.waitForURL(/\/portal\/partner\/claims\/clm_\w+\?notice=claim-opened/);
    const threadUrl = p.url().split("?")[0];
    assert.equal(await p.locator("[data-step=opened]").count(), 1);
    assert.match(await p.textContent("[data-step=opened]"), new RegExp(`two items in order-${tag}`));
    await m.goto(`${base}/portal/merchant/claims`);
    await m.click("[data-open-claim] a[data-thread]");
    await m.fill("[data-comment-form] textarea[name=note]", `Which items, ${tag}?`);
    await m.click(`[data-comment-form] button:text-is("${L.send}")`);
    await m.waitForURL(/notice=claim-commented/);
    await p.goto(threadUrl);
    const asked = p.locator("[data-step=commented]");
    assert.match(await asked.textContent(), new RegExp(`Which items, ${tag}\\?`));
    assert.match(await asked.textContent(), new RegExp(`Toko ${tag} · ${L.wrote}`));
    if (SHOTS) await screenshots(phone, threadUrl, `partner-claim-thread${lang === "en" ? "" : "-id"}`);
    await m.goto(`${base}/portal/merchant/claims`);
    const declineForm = m.locator("[data-open-claim] details").nth(1);
    await declineForm.locator("summary").click();
    await declineForm.locator(`button:text-is("${L.decline}")`).click();
    await m.waitForSelector("[data-claims-empty]");
    await p.goto(threadUrl);
    assert.equal(await p.getAttribute("[data-claim]", "data-status"), "declined");

    // A partner's session reaches no merchant page, and no other partner's link.
    let res = await p.goto(`${base}/portal/merchant`);
    assert.equal(res.status(), 404);
    res = await m.goto(`${base}/portal/partner`);
    assert.equal(res.status(), 404);
    // No page broke its Content-Security-Policy or threw.
    assert.deepEqual(consoleErrors, []);

    if (SHOTS && lang === "en") {
      await p.goto(`${base}/portal/partner/links`);
      const linkPage = await p.getAttribute("a[href^='/portal/partner/links/lnk_']", "href");
      for (const [name, url] of [
        ["partner-dashboard", "/portal/partner"], ["partner-programs", "/portal/partner/programs"],
        ["partner-links", "/portal/partner/links"], ["partner-link", linkPage],
        ["partner-commissions", "/portal/partner/commissions"], ["partner-claims", "/portal/partner/claims"], ["partner-statement", "/portal/partner/statement"],
        ["partner-payouts", "/portal/partner/payouts"],
      ]) await screenshots(phone, base + url, name);
      for (const [name, url] of [
        ["merchant-overview", "/portal/merchant"], ["merchant-partners", "/portal/merchant/partners"],
        ["merchant-agreements", "/portal/merchant/agreements"], ["merchant-conversions", `/portal/merchant/conversions?order_id=order-${tag}`],
        ["merchant-payouts", "/portal/merchant/payouts"], ["merchant-claims", "/portal/merchant/claims"],
        ["merchant-integration", "/portal/merchant/integration"],
      ]) await screenshots(shop, base + url, name);
      const anon = await chrome.browser.newContext({ locale: "en-US" });
      await screenshots(anon, `${base}/portal/login`, "login");
      await anon.close();
    }
    if (SHOTS && lang === "id") {
      await screenshots(phone, `${base}/portal/partner`, "partner-dashboard-id");
      await screenshots(shop, `${base}/portal/merchant/payouts`, "merchant-payouts-id");
    }
    await shop.close();
    await phone.close();
  });
}

test("the integration page's webhook examples sign sales the server accepts", async () => {
  const base = mitra.base;
  const [status, program] = await api(base, "POST", "/v1/programs", ADMIN, {
    name: "Examples Shop", currency: "EUR", landing_domains: ["shop.example"],
    default_url: "https://shop.example/", commission: { sale: { percent_bps: 1000 } },
  });
  assert.equal(status, 201);
  const [, invited] = await api(base, "POST", `/v1/programs/${program.id}/users`, ADMIN, { email: "dev@shop.example" });
  const ctx = await chrome.browser.newContext({ locale: "en-US" });
  const page = await ctx.newPage();
  await page.goto(invited.invite_url);
  await page.fill("input[name=password]", "developer password");
  await page.fill("input[name=password2]", "developer password");
  await page.click("button[type=submit]");
  await page.waitForURL(/\/portal\/merchant/);
  // Roll the secret in the page: the examples sign with the new one.
  await page.goto(`${base}/portal/merchant/integration`);
  await page.click("button:text-is('Roll the webhook secret')");
  const secret = await page.inputValue("input[data-secret]");
  assert.match(secret, /^whsec_/);
  const example = async (id) => page.textContent(`[data-example=${id}]`);
  const env = { ...process.env, MITRA_WEBHOOK_SECRET: secret };
  const runs = [
    ["curl", () => execFileSync("bash", ["-c", "set -e\n" + code.curl], { env }).toString()],
    ["python", () => execFileSync("python3", ["-c", code.python], { env }).toString()],
    ["node", () => execFileSync("node", ["-e", code.node], { env }).toString()],
  ];
  const code = {
    curl: await example("curl"), python: await example("python"), node: await example("node"), php: await example("php"),
  };
  let hasPhp = true;
  try { execFileSync("php", ["-r", "exit(function_exists('curl_init') ? 0 : 1);"]); } catch { hasPhp = false; }
  if (hasPhp) runs.push(["php", () => execFileSync("php", ["-r", code.php.replace(/^<\?php\n/, "")], { env }).toString()]);
  const orders = { curl: "order-1001", python: "order-1002", node: "order-1003", php: "order-1004" };
  for (const [name, run] of runs) {
    const out = run();
    if (name === "curl") assert.match(out, /"conversion_id":"cnv_/, `${name}: ${out}`);
    else assert.match(out, /^202 \{"conversion_id":"cnv_/, `${name}: ${out}`);
    const [s, conv] = await api(base, "GET", `/v1/programs/${program.id}/conversions/${orders[name]}`, ADMIN);
    assert.equal(s, 200, name);
    assert.equal(conv.amount_minor, 12500, name);
  }
  assert.ok(runs.length >= 3);
  await ctx.close();
});

test("without JavaScript a partner still signs in, makes a link and reads it", async () => {
  const base = mitra.base;
  let [status, program] = await api(base, "POST", "/v1/programs", ADMIN, {
    name: "No Script Shop", currency: "EUR", landing_domains: ["shop.example"],
    default_url: "https://shop.example/", commission: { sale: { percent_bps: 1000 } },
  });
  assert.equal(status, 201);
  let partner;
  [status, partner] = await api(base, "POST", "/v1/partners", ADMIN, { name: "Dewi", email: "dewi@example.id" });
  assert.equal(status, 201);
  const [, enrollment] = await api(base, "POST", `/v1/programs/${program.id}/enrollments`, ADMIN, { partner_id: partner.id });
  [status] = await api(base, "POST", `/v1/enrollments/${enrollment.id}/accept`, partner.api_key);
  assert.equal(status, 200);
  [status] = await api(base, "POST", `/v1/programs/${program.id}/agreements`, ADMIN, { partners: [{ partner_id: partner.id, share_bps: 10000 }] });
  assert.equal(status, 201);
  const [, invited] = await api(base, "POST", `/v1/partners/${partner.id}/users`, partner.api_key, { email: "dewi@example.id" });

  const ctx = await chrome.browser.newContext({ javaScriptEnabled: false, locale: "id-ID" });
  const page = await ctx.newPage();
  await page.goto(invited.invite_url);
  await page.fill("input[name=password]", "no script password");
  await page.fill("input[name=password2]", "no script password");
  await page.click("button[type=submit]");
  await page.waitForURL(/\/portal\/partner$/);
  await page.goto(`${base}/portal/partner/links`);
  await page.fill("input[name=sub1]", "tiktok");
  await page.click("button:text-is('Buat tautan')");
  await page.waitForURL(/\/portal\/partner\/links\/lnk_/);
  const url = await page.inputValue("input[data-link-url]");
  const click = await fetch(url, { redirect: "manual" });
  assert.equal(click.status, 302);
  assert.equal(new URL(click.headers.get("location")).searchParams.get("sub1"), "tiktok");
  await page.goto(`${base}/portal/partner/commissions?status=paid`);
  assert.match(await page.textContent("main"), /Tidak ada komisi di sini/);
  await ctx.close();
});
