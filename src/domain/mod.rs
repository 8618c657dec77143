//! Domain types: parsed at the edge, so an invalid value cannot exist past it.

mod applied_rule;
mod basis_points;
mod claims;
pub mod click_id;
pub mod client_ip;
mod commission_rules;
mod commission_states;
mod contact;
mod conversion_states;
mod coupon;
mod currency;
mod enrollment;
mod ids;
pub mod link_code;
mod money;
mod order_items;
mod platform;
mod postback_template;
mod secrets;
mod shares;
pub mod signing;
mod sub_ids;
mod target_url;
mod text;
mod text_enum;
mod web_url;
mod webhook_events;

pub use applied_rule::{
    AppliedBonus, AppliedLine, AppliedRenewal, AppliedRerate, AppliedRule, AppliedTier, RuleSource,
};
pub use basis_points::{BasisPoints, BasisPointsError};
pub use claims::{ClaimAction, ClaimKind, ClaimReason, ClaimStatus, OverdueAction};
pub use commission_rules::{
    Bonus, CommissionRules, EarningEvent, EventRule, MAX_FLAT_MINOR, MAX_THRESHOLD, Recurring,
    Rule, RulesError, TierBasis, TierStep, Tiers,
};
pub use commission_states::{Bucket, CommissionKind, CommissionStatus, LedgerKind};
pub use contact::{ContactError, Email, Name};
pub use conversion_states::{
    AttributionSource, ConversionReason, ConversionStatus, Event, FraudSignal,
};
pub use coupon::{CouponCode, CouponError};
pub use currency::{AmountError, Currency, CurrencyError};
pub use enrollment::{
    EnrollmentAction, EnrollmentReason, EnrollmentStatus, Standing, TransitionError, earns_at,
    reapply_after, transition,
};
pub use ids::{
    AgreementId, ClaimId, CommissionId, ConversionId, DeliveryId, EnrollmentId, EventId, IdError,
    LedgerEntryId, LinkId, PartnerId, PayoutId, ProgramId, UserId, WebhookEndpointId,
    base62_i64_pattern, parse_cursor,
};
pub use money::{Money, MoneyError, allocate, allocate_weighted, apply_rate, mul_div_round};
pub use order_items::{Category, Item, ItemsError, MAX_ITEMS, check_items};
pub use platform::Platform;
pub use postback_template::{MACROS as POSTBACK_MACROS, PostbackTemplate, TemplateError};
pub use secrets::{KeyOwner, NewApiKey, hash_api_key, new_webhook_secret, random_token};
pub use shares::{MAX_PARTNERS, Share, Shares, SharesError};
pub use signing::{KeyRing, SigningKey};
pub use sub_ids::{SUB_KEYS, SubIds, SubIdsError};
pub use target_url::{MAX_LEN as TARGET_URL_MAX_LEN, TargetError, TargetUrl, address_allowed};
pub use text::{TextError, TextRule, WHITESPACE, is_plain, plain_schema};
pub use text_enum::UnknownWord;
pub use web_url::{
    DomainsError, LandingDomain, LandingDomains, UrlError, WebUrl, plain_url_pattern,
};
pub use webhook_events::{DeliveryStatus, EndpointKind, WebhookEvent};
