"""Schemathesis hooks of the contract run (scripts/check-contract).

- Signed webhooks are signed. The shop's conversion webhook and the
  Shopify, WooCommerce and Stripe webhooks take no bearer token: they are
  signed over their exact bytes with a secret of the program. Auth providers
  sign each generated request over the bytes Schemathesis will send, with
  the secret of the program in the path (set up by setup.py, taken from the
  answers to createProgram and rollWebhookSecret, or from the bodies of
  successful setIntegrationSecret calls). So generated webhooks reach their
  parsing and validation, and Schemathesis' own authentication checks still
  send them unsigned or wrongly signed (answered 401).
- `refusals_name_only_cross_field_rules` is a check of its own: where the
  configuration lets a schema-valid request be refused (rules.py), the
  refusal must name one of the rules listed there, and nothing else.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

import schemathesis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules import RULES  # noqa: E402

with open(os.environ["MITRA_CONTRACT_SETUP"]) as setup:
    SETUP = json.load(setup)

# Secrets by (program id, scheme): "mitra", "shopify", "woocommerce", "stripe".
SECRETS = {(SETUP["program"], "mitra"): SETUP["webhook_secret"]}
for platform, secret in SETUP.get("platform_secrets", {}).items():
    SECRETS[(SETUP["program"], platform)] = secret


def operation_id(case):
    return case.operation.definition.raw.get("operationId")


def wire_bytes(case):
    """The body as the transport sends it (requests' `json=`), unsigned
    when it is not JSON."""
    body = case.body
    if isinstance(body, bytes):
        return body
    if body is None:
        return b"null"
    if type(body).__name__ == "NotSet":
        return b""
    try:
        return json.dumps(body, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        return None


def hmac_sha256(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


def mitra_signature(secret, raw):
    t = int(time.time())
    digest = hmac_sha256(secret, f"{t}.".encode() + raw).hex()
    return {"Mitra-Signature": f"t={t},v1={digest}"}


def shopify_signature(secret, raw):
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(hmac_sha256(secret, raw)).decode()}


def woocommerce_signature(secret, raw):
    return {"X-WC-Webhook-Signature": base64.b64encode(hmac_sha256(secret, raw)).decode()}


def stripe_signature(secret, raw):
    t = int(time.time())
    digest = hmac_sha256(secret, f"{t}.".encode() + raw).hex()
    return {"Stripe-Signature": f"t={t},v1={digest}"}


# Bearer tokens by security scheme.
BEARERS = {
    "admin_token": SETUP["admin_token"],
    "program_key": SETUP["program_key"],
    "partner_key": SETUP["partner_key"],
}
# Signed schemes: the secret they take (by name) and how they sign.
SIGNERS = {
    "webhook_signature": ("mitra", mitra_signature),
    "shopify_hmac": ("shopify", shopify_signature),
    "woocommerce_signature": ("woocommerce", woocommerce_signature),
    "stripe_signature": ("stripe", stripe_signature),
}


@schemathesis.auth(refresh_interval=None)
class Credentials:
    """The first security requirement of the operation that the run can
    meet: the admin token where the admin may call (the program's or the
    partner's key where only they may), or a webhook signature. Schemathesis
    takes it away or spoils it in its own authentication checks.

    (An auth provider of a hooks file, not `[auth.openapi.*]` in
    schemathesis.toml: Schemathesis ignores the one when the other is set,
    and only a provider can sign a body.)"""

    def get(self, case, context):
        program = (case.path_parameters or {}).get("id")
        for requirement in case.operation.definition.raw.get("security", []):
            for scheme in requirement:
                if scheme in BEARERS:
                    return ("bearer", BEARERS[scheme])
                if scheme in SIGNERS:
                    secret_name, sign = SIGNERS[scheme]
                    secret = SECRETS.get((program, secret_name))
                    if secret is not None:
                        return (sign, secret)
        return None

    def set(self, case, data, context):
        kind, value = data
        case.headers = dict(case.headers or {})
        if kind == "bearer":
            case.headers["Authorization"] = f"Bearer {value}"
            return
        raw = wire_bytes(case)
        if raw is not None:
            case.headers.update(kind(value, raw))


@schemathesis.hook
def after_call(context, case, response):
    """Keeps the secrets generated requests set or are given."""
    if not 200 <= response.status_code < 300:
        return
    op = operation_id(case)
    program = (case.path_parameters or {}).get("id")
    try:
        answer = response.json()
    except ValueError:
        return
    if op == "createProgram":
        SECRETS[(answer["id"], "mitra")] = answer["webhook_secret"]
    elif op == "rollWebhookSecret":
        SECRETS[(program, "mitra")] = answer["webhook_secret"]
    elif op == "setIntegrationSecret" and isinstance(case.body, dict):
        platform = (case.path_parameters or {}).get("platform")
        SECRETS[(program, platform)] = case.body["secret"]


def matches(text, listed):
    """`partners[*].partner_id` names `partners[0].partner_id`; `*` any text."""
    pattern = re.escape(listed).replace(re.escape("[*]"), r"\[\d+\]").replace(re.escape("*"), ".*")
    return re.fullmatch(pattern, text, re.DOTALL) is not None


@schemathesis.check
def refusals_name_only_cross_field_rules(ctx, response, case):
    """A schema-valid request refused where rules.py allows it must be
    refused for a listed rule only."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    allowed = RULES.get(operation_id(case), {}).get(response.status_code)
    if allowed is None:
        return None
    try:
        problem = response.json()
    except ValueError:
        raise AssertionError(f"a {response.status_code} that is not problem JSON")
    if response.status_code == 422:
        named = {error.get("field", "") for error in problem.get("errors", [])}
        unlisted = sorted(f for f in named if not any(matches(f, a) for a in allowed))
        if unlisted or not named:
            raise AssertionError(
                "a schema-valid request was refused for a field no cross-field rule names: "
                f"{unlisted or 'none given'} ({problem.get('errors')})"
            )
    elif not any(matches(problem.get("detail") or "", a) for a in allowed):
        raise AssertionError(
            f"a schema-valid request was refused with {response.status_code}: "
            f"{problem.get('detail')!r}, which is not one of the listed rules"
        )
    return None

