"""Verifies mitra's outgoing webhooks with the Standard Webhooks reference
library (the `standardwebhooks` package from PyPI), as a receiver would.

    python verify_webhooks.py SECRET < deliveries.jsonl

Each input line is {"headers": {...}, "body": "<raw body>"} as the test's
receiver got it; each output line is `ok <id> <type>` or `fail <error>`.
"""

import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError

webhook = Webhook(sys.argv[1])
for line in sys.stdin:
    delivery = json.loads(line)
    try:
        payload = webhook.verify(delivery["body"], delivery["headers"])
        print("ok", payload["id"], payload["type"])
    except WebhookVerificationError as e:
        print("fail", e)
