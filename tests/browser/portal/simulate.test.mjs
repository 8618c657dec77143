// "What would I earn" in a real Chromium: a partner signs in, opens the
// page from its programs, prices an order with a category line, and reads
// what it would earn and why, in English (EUR) and in Bahasa Indonesia
// (IDR, amounts typed the Indonesian way). Nothing is booked.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMitra, api, launch, ADMIN, screenshots, SHOTS } from "./harness.mjs";

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
    locale: "en-US", timezone: "Europe/Amsterdam", currency: "EUR", amount: "125.00", books: "25",
    earn: "€15.00", line: "category “books”: 20% of €25.00 = €5.00", rest: "other products: 10% of €100.00 = €10.00",
    link: "What would I earn?", nav: "What would I earn", submit: "Show what I would earn",
    versions: "program terms v1 · your agreement v1",
  },
  id: {
    locale: "id-ID", timezone: "Asia/Jakarta", currency: "IDR", amount: "1.250.000", books: "250.000",
    earn: "Rp\u00a0150.000", line: "kategori “books”: 20% dari Rp\u00a0250.000 = Rp\u00a050.000",
    rest: "produk lainnya: 10% dari Rp\u00a01.000.000 = Rp\u00a0100.000",
    link: "Berapa penghasilan saya?", nav: "Berapa penghasilan saya", submit: "Tampilkan penghasilan saya",
    versions: "ketentuan program v1 · perjanjian Anda v1",
  },
};

for (const lang of ["en", "id"]) {
  test(`a partner reads what an order would earn it, in ${lang}`, async () => {
    const L = LANGS[lang];
    const base = mitra.base;
    const tag = `${lang}${Date.now()}`;
    // A program paying 10% on sales and 20% on books; a partner with an agreement.
    let [status, program] = await api(base, "POST", "/v1/programs", ADMIN, {
      name: `Toko ${tag}`, currency: L.currency, landing_domains: ["shop.example"],
      default_url: "https://shop.example/",
      commission: { sale: { percent_bps: 1000, categories: { books: { percent_bps: 2000 } } } },
    });
    assert.equal(status, 201);
    let partner;
    [status, partner] = await api(base, "POST", "/v1/partners", ADMIN, { name: `Sari ${tag}`, email: `sari-${tag}@example.id` });
    assert.equal(status, 201);
    const [, enrollment] = await api(base, "POST", `/v1/programs/${program.id}/enrollments`, ADMIN, { partner_id: partner.id });
    [status] = await api(base, "POST", `/v1/enrollments/${enrollment.id}/accept`, partner.api_key);
    assert.equal(status, 200);
    [status] = await api(base, "POST", `/v1/programs/${program.id}/agreements`, ADMIN, { partners: [{ partner_id: partner.id, share_bps: 10000 }] });
    assert.equal(status, 201);
    const [, invited] = await api(base, "POST", `/v1/partners/${partner.id}/users`, partner.api_key, { email: `sari-${tag}@example.id` });

    const ctx = await chrome.browser.newContext({
      locale: L.locale, timezoneId: L.timezone, viewport: { width: 390, height: 844 },
    });
    const errors = [];
    ctx.on("page", (page) => page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); }));
    const p = await ctx.newPage();
    // The partner chooses its password (which signs it in), signs out and in again.
    await p.goto(invited.invite_url);
    await p.fill("input[name=password]", "partner password 1");
    await p.fill("input[name=password2]", "partner password 1");
    await p.click("button[type=submit]");
    await p.waitForURL(/\/portal\/partner$/);
    await p.click("form.signout button");
    await p.waitForURL(/\/portal\/login/);
    await p.fill("input[name=email]", `sari-${tag}@example.id`);
    await p.fill("input[name=password]", "partner password 1");
    await p.click("main button[type=submit]");
    await p.waitForURL(/\/portal\/partner$/);

    // The navigation and each active program lead to the page.
    assert.equal(await p.textContent("nav.tabs a[href='/portal/partner/simulate']"), L.nav);
    await p.goto(`${base}/portal/partner/programs`);
    await p.click(`a[data-simulate-link]:text-is("${L.link}")`);
    await p.waitForURL(new RegExp(`/portal/partner/simulate\\?program=${program.id}$`));
    assert.equal(await p.locator("[data-answer]").count(), 0);

    // An order of which part is books.
    await p.fill("input[name=amount]", L.amount);
    await p.fill("input[name=cat1]", "books");
    await p.fill("input[name=amt1]", L.books);
    await p.click(`button:text-is("${L.submit}")`);
    await p.waitForSelector("[data-answer]");
    assert.equal(await p.textContent("[data-earn]"), L.earn);
    const why = await p.locator("[data-kind=conversion] .why li").allTextContents();
    assert.ok(why.includes(L.line), JSON.stringify(why));
    assert.ok(why.includes(L.rest), JSON.stringify(why));
    assert.match(await p.textContent("[data-quote]"), new RegExp(L.versions));
    // The form keeps what was typed, and the answer is a link to keep.
    assert.equal(await p.inputValue("input[name=amount]"), L.amount);
    assert.match(p.url(), /amount=/);
    if (SHOTS) await screenshots(ctx, p.url(), lang === "en" ? "partner-simulate" : "partner-simulate-id");

    // Nothing was booked.
    const [, commissions] = await api(base, "GET", `/v1/partners/${partner.id}/commissions`, ADMIN);
    assert.deepEqual(commissions.data, []);
    // No page broke its Content-Security-Policy or threw.
    assert.deepEqual(errors, []);
    await ctx.close();
  });
}

test("what would I earn works without JavaScript", async () => {
  const base = mitra.base;
  let [status, program] = await api(base, "POST", "/v1/programs", ADMIN, {
    name: "No Script Earn", currency: "EUR", landing_domains: ["shop.example"],
    default_url: "https://shop.example/", commission: { sale: { percent_bps: 1000 } },
  });
  assert.equal(status, 201);
  let partner;
  [status, partner] = await api(base, "POST", "/v1/partners", ADMIN, { name: "Wulan", email: "wulan@example.id" });
  const [, enrollment] = await api(base, "POST", `/v1/programs/${program.id}/enrollments`, ADMIN, { partner_id: partner.id });
  await api(base, "POST", `/v1/enrollments/${enrollment.id}/accept`, partner.api_key);
  await api(base, "POST", `/v1/programs/${program.id}/agreements`, ADMIN, { partners: [{ partner_id: partner.id, share_bps: 10000 }] });
  const [, invited] = await api(base, "POST", `/v1/partners/${partner.id}/users`, partner.api_key, { email: "wulan@example.id" });
  const ctx = await chrome.browser.newContext({ javaScriptEnabled: false, locale: "en-US" });
  const page = await ctx.newPage();
  await page.goto(invited.invite_url);
  await page.fill("input[name=password]", "no script password");
  await page.fill("input[name=password2]", "no script password");
  await page.click("button[type=submit]");
  await page.waitForURL(/\/portal\/partner$/);
  await page.goto(`${base}/portal/partner/simulate`);
  await page.fill("input[name=amount]", "80");
  await page.click("button:text-is('Show what I would earn')");
  await page.waitForSelector("[data-answer]");
  assert.equal(await page.textContent("[data-earn]"), "€8.00");
  await ctx.close();
});
