"""Sets up what the contract run needs, through the API, and writes the
Schemathesis configuration that points generated requests at it.

Run by scripts/check-contract with the base URL, the admin token and the
directory to write schemathesis.toml into; prints what it set up as JSON
(hooks.py reads it: the webhook secret signs generated webhooks).
Standard library only.
"""

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from rules import RULES


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(base, method, path, token=None, body=None, headers=None, expect=(200, 201, 202)):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with OPENER.open(request, timeout=30) as response:
            status, raw, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        status, raw, answer_headers = e.code, e.read(), e.headers
    if status not in expect:
        sys.exit(f"setup: {method} {path} answered {status}: {raw[:500]!r}")
    parsed = json.loads(raw) if raw and answer_headers.get("Content-Type", "").endswith("json") else None
    return status, parsed, answer_headers


def signed(secret, body):
    raw = json.dumps(body).encode()
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    return raw, {"Mitra-Signature": f"t={t},v1={digest}"}


def program(base, admin, name):
    _, created, _ = call(base, "POST", "/v1/programs", admin, {
        "name": name,
        "currency": "EUR",
        "landing_domains": ["shop.example"],
        "default_url": "https://shop.example/",
        "hold_days": 30,
        "commission": {"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}},
        "public": True,
        "description": "A program the contract run works on.",
    })
    return created


def main():
    base, admin = sys.argv[1], sys.argv[2]
    shop = program(base, admin, "Contract Shop")
    _, partner, _ = call(base, "POST", "/v1/partners", admin,
                         {"name": "Ayu Lestari", "email": "ayu@example.com"})
    prg, ptn = shop["id"], partner["id"]
    # A partner in no program yet, whom generated invitations mostly name.
    _, invitee, _ = call(base, "POST", "/v1/partners", admin,
                         {"name": "Budi Santoso", "email": "budi@example.com"})
    # The partner joins as partners do: invited by the program, accepting.
    _, invitation, _ = call(base, "POST", f"/v1/programs/{prg}/enrollments", shop["api_key"],
                            {"partner_id": ptn, "note": "Welcome"})
    call(base, "POST", f"/v1/enrollments/{invitation['id']}/accept", partner["api_key"])
    # The enrollment operations (accept, decline, approve, reject,
    # deactivate, ban) act on an invitation to another program, so that
    # banning the partner there leaves its membership of the shop alone;
    # the invitation links answer a third program's invitation.
    moves = program(base, admin, "Contract Moves")
    _, moved, _ = call(base, "POST", f"/v1/programs/{moves['id']}/enrollments", admin,
                       {"partner_id": ptn})
    links = program(base, admin, "Contract Invitations")
    _, by_link, _ = call(base, "POST", f"/v1/programs/{links['id']}/enrollments", admin,
                         {"partner_id": ptn})
    token = by_link["accept_url"].rsplit("/", 1)[1]
    _, agreement, _ = call(base, "POST", f"/v1/programs/{prg}/agreements", shop["api_key"], {
        "partners": [{"partner_id": ptn, "share_bps": 10000}],
        "coupon_codes": ["AYU10"],
    })
    _, link, _ = call(base, "POST", "/v1/links", partner["api_key"],
                      {"agreement_id": agreement["id"], "sub_ids": {"sub1": "newsletter"}})
    _, _, headers = call(base, "GET", "/l/" + link["code"], expect=(302,))
    query = urllib.parse.parse_qs(urllib.parse.urlparse(headers["Location"]).query)
    click_id = query["mitra_click"][0]
    order_id = "order-1001"
    raw, sig = signed(shop["webhook_secret"], {
        "order_id": order_id, "event": "sale", "amount_minor": 12500,
        "currency": "EUR", "click_id": click_id,
    })
    call(base, "POST", f"/v1/programs/{prg}/conversions", body=raw, headers=sig)
    commission = None
    for _ in range(100):
        _, conversion, _ = call(base, "GET", f"/v1/programs/{prg}/conversions/{order_id}", admin)
        if conversion.get("commissions"):
            commission = conversion["commissions"][0]["id"]
            break
        time.sleep(0.2)
    if commission is None:
        sys.exit(f"setup: the sale was not booked: {conversion}")
    _, payout, _ = call(base, "POST", f"/v1/programs/{prg}/payouts", admin)
    # The platforms' secrets, so that hooks.py can sign their webhooks too.
    platform_secrets = {}
    for platform in ("shopify", "woocommerce", "stripe"):
        secret = "whsec_contract_" + platform
        call(base, "PUT", f"/v1/programs/{prg}/integrations/{platform}/secret", admin,
             {"secret": secret})
        platform_secrets[platform] = secret
    ids = {
        "admin_token": admin,
        "program": prg, "program_key": shop["api_key"],
        "webhook_secret": shop["webhook_secret"],
        "partner": ptn, "partner_key": partner["api_key"], "invitee": invitee["id"],
        "enrollment": moved["id"], "invitation_token": token,
        "agreement": agreement["id"], "link": link["id"], "link_code": link["code"],
        "order": order_id, "commission": commission, "payout": payout["id"],
        "platform_secrets": platform_secrets,
        "now": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name, stateful in (("schemathesis.toml", False), ("stateful.toml", True)):
        with open(os.path.join(sys.argv[3], name), "w") as out:
            out.write(config(ids, stateful))
    json.dump(ids, sys.stdout, indent=2)
    print()


def toml_table(values):
    return "{ " + ", ".join(f"{json.dumps(k)} = {v}" for k, v in values.items()) + " }"


def config(ids, stateful):
    """The configuration of one run: schemathesis.toml for the examples,
    coverage and fuzzing phases, stateful.toml for the stateful phase.

    Outside the stateful phase, path parameters that name objects are the
    ids set up above, so that generated requests reach an object instead of
    a 404 (left to generation, they would mostly be the document's example
    ids). In the stateful phase they are what the document's links carry
    from one answer to the next request (Schemathesis would put a fixed
    value over them). A few body fields draw, most of the time, values that
    meet the rules rules.py lists, so that creates succeed."""
    often = 0.85
    dictionaries = {}
    # Credentials are set by hooks.py, which also signs webhooks.
    lines = ["# Written by scripts/contract/setup.py for one contract run."]
    # A schema-violating request may also be refused for its size: every
    # body over 64 KiB answers 413 (a documented problem), and a
    # fuzzed body with hundreds of array items can exceed it before any
    # field is read. Schemathesis' default list for the check lacks 413.
    refusals = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                "428", "429", "5xx"]
    lines += ["", "[checks.negative_data_rejection]",
              f"expected-statuses = {json.dumps(refusals)}"]

    def draw(values, probability=often):
        name = f"d{len(dictionaries)}"
        dictionaries[name] = values
        return f"{{ dictionary = {json.dumps(name)}, probability = {probability} }}"

    # Path parameters by resource: a path names one kind of object.
    value = json.dumps
    by_path = [
        ("^/v1/programs/\\{id\\}", {"path.id": value(ids["program"]),
                                    "path.order_id": value(ids["order"]),
                                    "path.version": value(1)}),
        ("^/v1/partners/\\{id\\}", {"path.id": value(ids["partner"])}),
        ("^/v1/agreements/\\{id\\}", {"path.id": value(ids["agreement"]),
                                      "path.version": value(1)}),
        ("^/v1/enrollments/\\{id\\}", {"path.id": value(ids["enrollment"])}),
        ("^/v1/commissions/\\{id\\}", {"path.id": value(ids["commission"])}),
        ("^/v1/payouts/\\{id\\}", {"path.id": value(ids["payout"])}),
        ("^/v1/links/\\{id\\}", {"path.id": value(ids["link"])}),
        ("^/v1/invitations/", {"path.token": value(ids["invitation_token"])}),
        ("^/l/", {"path.code": value(ids["link_code"])}),
    ]
    # Bodies whose rules relate two values (rules.py) mostly get values that
    # satisfy them, so that creates succeed and later steps have objects.
    shop_urls = ["https://shop.example/", "https://shop.example/batik?color=blue#reviews"]
    by_operation = [
        ("createProgram", {"body.landing_domains[*]": draw(["shop.example"]),
                           "body.default_url": draw(shop_urls)}),
        ("createLink", {"body.agreement_id": draw([ids["agreement"]]),
                        "body.destination_url": draw(shop_urls)}),
        ("createAgreement", {"body.partners[*].partner_id": draw([ids["partner"]]),
                             "body.partners[*].share_bps": draw([10000], 0.5)}),
        ("updateAgreement", {"body.partners[*].partner_id": draw([ids["partner"]]),
                             "body.partners[*].share_bps": draw([10000], 0.5)}),
        ("invitePartner", {"body.partner_id": draw([ids["invitee"], ids["partner"]])}),
        ("receiveConversion", {"body.currency": draw(["EUR"]),
                               "body.occurred_at": draw([ids["now"]], 0.5)}),
    ]
    if stateful:
        # Links carry the ids; none carries an order's reference or an
        # invitation's token.
        by_path = [
            ("^/v1/programs/\\{id\\}/conversions/", {"path.order_id": value(ids["order"])}),
            ("^/v1/invitations/", {"path.token": value(ids["invitation_token"])}),
        ]
        # The document's links, and only those, chain the steps.
        lines += ["", "[phases.stateful.inference]", "algorithms = []"]
        # The one check left out, for one resource: DELETE /v1/links/{id}
        # disables a link, which from then on answers 404 where it mattered
        # (GET /l/{code}, on every instance within 2 s) but stays readable,
        # with `disabled: true`, since its clicks, commissions and reports
        # keep naming it (README: links). Schemathesis' use_after_free wants
        # a deleted resource gone; this one is deliberately kept.
        lines += ["", "[[operations]]", 'include-operation-id = ["getLink", "disableLink"]',
                  "checks.use_after_free.enabled = false"]
    for regex, parameters in by_path:
        lines += ["", "[[operations]]", f"include-path-regex = {json.dumps(regex)}",
                  f"parameters = {toml_table(parameters)}"]
    for operation, parameters in by_operation:
        lines += ["", "[[operations]]", f"include-operation-id = {json.dumps(operation)}",
                  f"parameters = {toml_table(parameters)}"]
    # Where a rule JSON Schema cannot state may refuse a schema-valid
    # request (rules.py), its status is accepted there, and hooks.py checks
    # that the refusal names that rule.
    accepted = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
    for operation, statuses in RULES.items():
        expected = accepted + [str(status) for status in statuses]
        lines += ["", "[[operations]]", f"include-operation-id = {json.dumps(operation)}",
                  f"checks.positive_data_acceptance.expected-statuses = {json.dumps(expected)}"]
    for name, values in dictionaries.items():
        lines += ["", f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
