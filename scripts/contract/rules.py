"""Refusals of schema-valid requests that are right.

Some rules cannot be stated in JSON Schema: they relate two values of one
request, or a value to what is stored or to the clock. A request can then
match the document and still be refused, correctly. Each such rule is
listed here, by operation and status, with what the refusal names: the
fields of a 422's `errors`, or the `detail` of a 400. The contract run lets
exactly these refusals through Schemathesis' positive-data check
(schemathesis.toml adds the status for these operations only) and fails
every other refusal of a schema-valid request (hooks.py,
`refusals_name_only_cross_field_rules`).

In a pattern, `[*]` stands for any index (`partners[*].partner_id`) and
`*` for any text.
"""

# In commission rules: a tier ladder's steps must be in increasing order
# of `from` (values of one list), a rule must not name a category twice
# (names compared without case, as keys of one object), nor one milestone
# (`by` and `at`) in two bonuses.
COMMISSION = [
    "commission.sale.tiers.steps[*].from",
    "commission.sale.categories.*",
    "commission.sale.bonuses[*]",
]

RULES = {
    # The default URL's host must be one of the landing domains sent with it.
    "createProgram": {422: ["default_url"] + COMMISSION},
    # A change of terms: the commission rules as above.
    "changeProgramTerms": {422: COMMISSION},
    # The destination's host must be one of the program's landing domains.
    "createLink": {422: ["destination_url"]},
    # Each partner must be an active member of the program (stored state),
    # each named once, the shares summing to 10000; the validity must not
    # end before it starts.
    "createAgreement": {
        422: ["partners", "partners[*].partner_id", "valid_until"] + COMMISSION,
    },
    "updateAgreement": {
        422: ["partners", "partners[*].partner_id", "valid_until"] + COMMISSION,
    },
    # The partner invited by id must exist (stored state). The path names
    # the program, which is there, so the refusal is about the body: 422.
    "invitePartner": {422: ["partner_id"]},
    # `from` must be before `to`.
    "getStatement": {400: ["from must be before to"]},
    # `from` must not be after `to`, and the period at most 1100 days.
    "getReport": {400: ["from must not be after to, and the period at most 1100 days"]},
    # `after_seq` must not be after `to_seq`, and `to_seq` not beyond the
    # chain's head (stored state); the range at most 50000 entries.
    "getSignedStatement": {422: ["after_seq", "to_seq"]},
    "getChainProof": {422: ["after_seq", "to_seq"]},
    # The currency must be the program's; a conversion happened at most 400
    # days ago and not in the future (the clock). An order's lines must sum
    # to its `amount_minor` and name each `sku` once.
    "receiveConversion": {422: ["currency", "occurred_at", "items", "items[*].sku"]},
    # The same for an order simulated (within 400 days of now, either way).
    "simulateOrder": {422: ["currency", "occurred_at", "items", "items[*].sku"]},
    # The admin must name the partner a claim is from (a partner's key names
    # itself: who calls), one that is or was in the program (stored state);
    # an untracked sale happened at most 400 days ago
    # (the clock) and names its agreement when the partner has several
    # (stored state).
    "openClaims": {422: ["partner_id", "occurred_at", "agreement_id"]},
    # The admin must name an endpoint's owner, and a postback's partner
    # (a key names itself: who calls). A URL must not point to an internal
    # address unless the operator allows it (MITRA_WEBHOOK_ALLOW_PRIVATE),
    # and a postback's template may use only its macros (depends on `kind`).
    "createWebhookEndpoint": {422: ["program_id", "partner_id", "url"]},
    # The platforms' webhooks carry the platform's own objects (Shopify's
    # order, WooCommerce's order, Stripe's event), which their documentation
    # describes and the document leaves open (any JSON): mitra maps what it
    # needs and refuses a body it cannot map (400), or values it cannot
    # store (422). The run signs them anyway, for the other checks (no
    # server error, documented statuses and answers).
    "receiveShopifyWebhook": {400: ["*"], 422: ["*"]},
    "receiveWooCommerceWebhook": {400: ["*"], 422: ["*"]},
    "receiveStripeWebhook": {400: ["*"], 422: ["*"]},
}
