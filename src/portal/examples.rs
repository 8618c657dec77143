//! Copy-paste examples that sign a conversion webhook, for the
//! integration page. Each reads the secret from `MITRA_WEBHOOK_SECRET`, so
//! it can be pasted as is; `tests/browser/portal` runs them against a server.

use crate::domain::Currency;

/// One example: its language and its code.
pub struct Example {
    pub id: &'static str,
    pub language: &'static str,
    pub code: String,
}

/// Every example, posting a sale of 125 major units to `endpoint`.
pub fn all(endpoint: &str, currency: Currency) -> Vec<Example> {
    let amount = 125 * 10i64.pow(currency.exponent());
    let cur = currency.code();
    vec![
        Example {
            id: "curl",
            language: "curl",
            code: format!(
                r#"BODY='{{"order_id":"order-1001","event":"sale","amount_minor":{amount},"currency":"{cur}","click_id":"CLICK_ID"}}'
T=$(date +%s)
SIG=$(printf '%s.%s' "$T" "$BODY" | openssl dgst -sha256 -hmac "$MITRA_WEBHOOK_SECRET" -r | cut -d' ' -f1)
curl -sS -X POST '{endpoint}' \
  -H 'content-type: application/json' \
  -H "Mitra-Signature: t=$T,v1=$SIG" \
  -d "$BODY""#
            ),
        },
        Example {
            id: "python",
            language: "Python",
            code: format!(
                r#"import hashlib, hmac, json, os, time, urllib.request

secret = os.environ["MITRA_WEBHOOK_SECRET"]
body = json.dumps({{"order_id": "order-1002", "event": "sale", "amount_minor": {amount},
                   "currency": "{cur}", "click_id": "CLICK_ID"}}).encode()
t = str(int(time.time()))
sig = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
req = urllib.request.Request("{endpoint}", data=body, method="POST", headers={{
    "content-type": "application/json", "mitra-signature": f"t={{t}},v1={{sig}}"}})
with urllib.request.urlopen(req) as res:
    print(res.status, res.read().decode())"#
            ),
        },
        Example {
            id: "node",
            language: "Node.js",
            code: format!(
                r#"const crypto = require("node:crypto");

const secret = process.env.MITRA_WEBHOOK_SECRET;
const body = JSON.stringify({{order_id: "order-1003", event: "sale", amount_minor: {amount},
  currency: "{cur}", click_id: "CLICK_ID"}});
const t = Math.floor(Date.now() / 1000);
const sig = crypto.createHmac("sha256", secret).update(`${{t}}.${{body}}`).digest("hex");
fetch("{endpoint}", {{
  method: "POST",
  headers: {{"content-type": "application/json", "mitra-signature": `t=${{t}},v1=${{sig}}`}},
  body,
}}).then(async (res) => console.log(res.status, await res.text()));"#
            ),
        },
        Example {
            id: "php",
            language: "PHP",
            code: format!(
                r#"<?php
$secret = getenv('MITRA_WEBHOOK_SECRET');
$body = json_encode(['order_id' => 'order-1004', 'event' => 'sale', 'amount_minor' => {amount},
    'currency' => '{cur}', 'click_id' => 'CLICK_ID']);
$t = time();
$sig = hash_hmac('sha256', $t . '.' . $body, $secret);
$ch = curl_init('{endpoint}');
curl_setopt_array($ch, [
    CURLOPT_POST => true,
    CURLOPT_POSTFIELDS => $body,
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_HTTPHEADER => ['content-type: application/json', "mitra-signature: t=$t,v1=$sig"],
]);
$res = curl_exec($ch);
echo curl_getinfo($ch, CURLINFO_HTTP_CODE), ' ', $res, "\n";"#
            ),
        },
    ]
}
