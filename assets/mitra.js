/* mitra.js: keeps the partner click a shopper landed with until checkout.
 *
 * <script src="https://MITRA/mitra.js?v=VERSION" data-days="30" async></script>
 *
 * Reads `mitra_click` (and, with data-coupon-param, a coupon) from the
 * landing URL, keeps it in first-party cookies (`mitra_click`,
 * `mitra_coupon`) for data-days days, and hands it to the checkout: a hidden
 * `mitra_click` field in checkout forms, Shopify cart attributes
 * (`_mitra_click`, `_mitra_coupon`), and `window.mitra.clickId()`.
 * With data-consent="wait" nothing is stored until `mitra.consent(true)`.
 * No dependencies; nothing is sent anywhere but to the shop itself. */
(function (w, d) {
  "use strict";
  if (w.mitra && w.mitra.version) return;
  var script = d.currentScript;
  function attr(name, fallback) {
    var v = script && script.getAttribute("data-" + name);
    return v === null || v === undefined || v === "" ? fallback : v;
  }
  var days = Math.min(400, Math.max(1, parseInt(attr("days", "30"), 10) || 30));
  var couponParam = attr("coupon-param", "");
  var waitForConsent = attr("consent", "") === "wait";
  var cookieDomain = attr("cookie-domain", "");
  var fieldName = attr("field", "mitra_click");
  var formSelector = attr("forms",
    "form[data-mitra], form.checkout, form[action*='/cart'], form[action*='checkout']");
  var shopify = attr("shopify", "auto");
  var VALID = /^[0-9A-Za-z_-]{1,64}$/;
  var CLICK = "mitra_click", COUPON = "mitra_coupon", CONSENT = "mitra_consent";

  function readCookie(name) {
    var parts = d.cookie ? d.cookie.split(/;\s*/) : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq > 0 && parts[i].slice(0, eq) === name) {
        try { return decodeURIComponent(parts[i].slice(eq + 1)); } catch (e) { return null; }
      }
    }
    return null;
  }
  function writeCookie(name, value, maxAge) {
    d.cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + maxAge +
      "; Path=/; SameSite=Lax" + (cookieDomain ? "; Domain=" + cookieDomain : "") +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  function fromUrl(name) {
    if (!name) return null;
    var v = new URLSearchParams(location.search).get(name);
    return v && VALID.test(v) ? v : null;
  }

  // What this landing brought, held in memory until it may be stored.
  var landed = { click: fromUrl(CLICK), coupon: fromUrl(couponParam) };
  var granted = !waitForConsent || readCookie(CONSENT) === "1" || w.mitraConsent === true;

  function store() {
    if (!granted) return;
    var maxAge = days * 86400;
    if (landed.click) writeCookie(CLICK, landed.click, maxAge);
    if (landed.coupon) writeCookie(COUPON, landed.coupon, maxAge);
  }
  function clickId() { return granted ? readCookie(CLICK) || landed.click : landed.click; }
  function coupon() { return granted ? readCookie(COUPON) || landed.coupon : landed.coupon; }

  function setField(form, name, value) {
    var input = form.querySelector("input[name='" + name + "']");
    if (!input) {
      input = d.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value;
  }
  // Puts the click (and coupon) into a checkout form as hidden fields.
  function fill(form) {
    var click = clickId(), code = coupon();
    if (click) setField(form, fieldName, click);
    if (code) setField(form, COUPON, code);
  }
  function fillAll() {
    var forms = d.querySelectorAll(formSelector);
    for (var i = 0; i < forms.length; i++) fill(forms[i]);
  }

  // Shopify: cart attributes become the order's note attributes.
  function syncCart() {
    if (!granted || !(shopify === "on" || (shopify === "auto" && w.Shopify))) return;
    var click = clickId(), code = coupon();
    if (!click && !code) return;
    var key = "mitra_cart_synced", wanted = (click || "") + "|" + (code || "");
    try { if (w.sessionStorage.getItem(key) === wanted) return; } catch (e) { /* private mode */ }
    var attributes = {};
    if (click) attributes._mitra_click = click;
    if (code) attributes._mitra_coupon = code;
    w.fetch("/cart/update.js", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ attributes: attributes })
    }).then(function (res) {
      if (res.ok) { try { w.sessionStorage.setItem(key, wanted); } catch (e) { /* ignore */ } }
    }, function () { /* retried on the next page */ });
  }

  // The shop's consent banner calls this: true stores what the landing
  // brought; false forgets everything mitra stored.
  function consent(yes) {
    if (yes) {
      granted = true;
      writeCookie(CONSENT, "1", 400 * 86400);
      store();
      fillAll();
      syncCart();
    } else {
      granted = false;
      landed = { click: null, coupon: null };
      writeCookie(CLICK, "", 0);
      writeCookie(COUPON, "", 0);
      writeCookie(CONSENT, "", 0);
    }
  }

  w.mitra = {
    version: "1",
    clickId: clickId,
    coupon: coupon,
    consent: consent,
    fill: fill
  };
  store();
  syncCart();
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", fillAll);
  else fillAll();
  // Forms that appear later (single-page checkouts) are filled as they submit.
  d.addEventListener("submit", function (e) {
    var form = e.target;
    if (form && form.matches && form.matches(formSelector)) fill(form);
  }, true);
})(window, document);
