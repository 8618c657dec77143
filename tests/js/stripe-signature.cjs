// Prints the Stripe-Signature header Stripe's own Node library makes for a
// payload (read from stdin), a secret and a time: the test posts it to
// mitra, so mitra's verification is checked against code nobody here wrote.
//
//   node stripe-signature.cjs SECRET UNIX_SECONDS < payload.json
"use strict";
const path = require("path");
const modules = process.env.MITRA_JS_MODULES;
if (!modules) throw new Error("MITRA_JS_MODULES is not set (scripts/test sets it)");
const Stripe = require(path.join(modules, "stripe"));

const [secret, timestamp] = process.argv.slice(2);
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const payload = Buffer.concat(chunks).toString("utf8");
  const stripe = new Stripe("sk_test_not_used_offline");
  const header = stripe.webhooks.generateTestHeaderString({
    payload,
    secret,
    timestamp: Number(timestamp),
  });
  // Stripe's own check of what it made, as a Stripe integration would run it.
  stripe.webhooks.constructEvent(payload, header, secret, 300, undefined, Number(timestamp));
  process.stdout.write(header);
});
