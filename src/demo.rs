//! `mitra demo`: a program, a partner, an agreement and a link, created
//! through the same code as the API, with copy-paste commands to try them.

use crate::accounts;
use crate::agreements::{self, Terms};
use crate::domain::EnrollmentAction;
use crate::domain::{
    BasisPoints, CommissionRules, Currency, Email, KeyOwner, LandingDomains, Name, NewApiKey,
    PartnerId, ProgramId, Share, Shares, SubIds, WebUrl, new_webhook_secret, random_token,
};
use crate::enrollments::{self, Decision, Invitee};
use crate::http::state::AppState;
use crate::links::{self, NewLink};
use crate::partners;
use crate::programs::{self, NewProgram};
use std::collections::BTreeMap;

/// A portal account of the demo, with the password it was given.
pub struct DemoLogin {
    pub email: String,
    pub password: String,
}

pub struct Seeded {
    pub merchant_login: DemoLogin,
    pub partner_login: DemoLogin,
    pub program: ProgramId,
    pub program_key: String,
    pub webhook_secret: String,
    pub partner: PartnerId,
    pub partner_key: String,
    pub link_code: String,
}

pub async fn seed(state: &AppState) -> anyhow::Result<Seeded> {
    let program_key = NewApiKey::generate(KeyOwner::Program);
    let webhook_secret = new_webhook_secret();
    let program = programs::insert(
        &state.db,
        &NewProgram {
            name: Name::parse("Demo Shop")?,
            currency: Currency::parse("EUR")?,
            landing_domains: LandingDomains::parse(&["shop.example"])?,
            default_url: WebUrl::parse_plain("https://shop.example/")?,
            attribution_window_days: 30,
            hold_days: 0,
            commission: CommissionRules::parse(&serde_json::json!({
                "sale": {"percent_bps": 1000},
                "lead": {"flat_minor": 200}
            }))?,
            listing: programs::Listing {
                public: true,
                description: Some("A demo shop: 10% of every sale, 2.00 per lead.".into()),
                reapply_cooldown_days: 30,
            },
        },
        &program_key.hash,
        &webhook_secret,
    )
    .await?;
    let partner_key = NewApiKey::generate(KeyOwner::Partner);
    let partner = partners::insert(
        &state.db,
        &Name::parse("Ayu Lestari")?,
        &Email::parse("ayu@example.com")?,
        &partner_key.hash,
    )
    .await?;
    // The partner joins the program the way any does: invited, then accepting.
    let (enrollment, _) = enrollments::invite(
        &state.db,
        program.id,
        &Invitee::Partner(partner.id),
        &Decision {
            actor: "demo".into(),
            ..Decision::default()
        },
    )
    .await?;
    enrollments::act(
        &state.db,
        enrollment,
        EnrollmentAction::Accept,
        &Decision {
            actor: partner.id.to_string(),
            ..Decision::default()
        },
    )
    .await?;
    let terms = Terms {
        shares: Shares::new(vec![Share {
            partner_id: partner.id,
            share_bps: BasisPoints::WHOLE,
        }])?,
        commission: None,
        coupon_codes: vec![],
        valid_from: None,
        valid_until: None,
    };
    let agreement = agreements::insert(&state.db, program.id, &terms).await?;
    let sub_ids = SubIds::parse(&BTreeMap::from([("sub1".to_owned(), "demo".to_owned())]))?;
    let link = links::insert(
        &state.db,
        &state.settings.link_keys,
        &NewLink {
            program_id: program.id,
            agreement_id: agreement,
            destination_url: Some(WebUrl::parse_plain("https://shop.example/summer-sale")?),
            sub_ids,
            created_by_partner_id: None,
        },
    )
    .await?;
    let merchant_login = portal_login(
        state,
        accounts::Tenant::Program(program.id),
        "owner@shop.example",
    )
    .await?;
    let partner_login = portal_login(
        state,
        accounts::Tenant::Partner(partner.id),
        "ayu@example.com",
    )
    .await?;
    Ok(Seeded {
        merchant_login,
        partner_login,
        program: program.id,
        program_key: program_key.plaintext,
        webhook_secret,
        partner: partner.id,
        partner_key: partner_key.plaintext,
        link_code: link.code,
    })
}

/// A portal account with a fresh random password, made the way every
/// account is: invited, then given a password through the invitation.
async fn portal_login(
    state: &AppState,
    tenant: accounts::Tenant,
    email: &str,
) -> anyhow::Result<DemoLogin> {
    let issued = accounts::invite(&state.db, tenant, &Email::parse(email)?).await?;
    let user = accounts::redeem(&state.db, &issued.token, accounts::Purpose::Invite)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo invitation did not redeem"))?;
    let password = random_token()[..16].to_owned();
    let hash = accounts::passwords::hash(&password)?;
    accounts::set_password(&state.db, user.id, &hash).await?;
    Ok(DemoLogin {
        email: email.to_owned(),
        password,
    })
}

impl Seeded {
    /// What the demo prints: the tracked link and ready-to-paste commands.
    pub fn instructions(&self, base: &str) -> String {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "mitra".into());
        let link = format!("{base}/l/{}", self.link_code);
        format!(
            r#"
================================================================ mitra demo
Program  {program}  "Demo Shop": EUR, 10% of sales, 2.00 per lead, no hold
Partner  {partner}  "Ayu Lestari", 100% of the agreement
Tracked link:  {link}

1. Be the shopper: follow the link as a browser would; note the click id in Location.
   curl -si -A '{ua}' {link} | grep -i '^location'

2. Be the shop: post a signed sale for a click. (Bots, curl's own user agent among
   them, and sales within 3 s of their click are held for review: hence -A and sleep.)
   CLICK=$(curl -s -A '{ua}' -o /dev/null -w '%{{redirect_url}}' {link} | sed -n 's/.*mitra_click=\([^&#]*\).*/\1/p'); sleep 4
   BODY='{{"order_id":"demo-'$RANDOM'","event":"sale","amount_minor":12500,"currency":"EUR","click_id":"'$CLICK'"}}'
   curl -s -X POST {base}/v1/programs/{program}/conversions -H 'content-type: application/json' -H "Mitra-Signature: $({exe} sign --secret {secret} "$BODY")" -d "$BODY"; echo

3. Be the partner: a second later the commission (12.50 EUR) is booked and, as this
   program holds commissions 0 days, approved.
   curl -s {base}/v1/partners/{partner}/commissions -H 'authorization: Bearer {partner_key}'; echo
   curl -s {base}/v1/partners/{partner}/balance -H 'authorization: Bearer {partner_key}'; echo

4. Be the merchant: pay the partner, and see the day's report.
   curl -s -X POST {base}/v1/programs/{program}/payouts -H 'authorization: Bearer {program_key}'; echo
   curl -s {base}/v1/reports -H 'authorization: Bearer {program_key}' -H 'accept: text/csv' | tail -n 2

5. Or do all of it in a browser: the portal, in English and Bahasa Indonesia.
   {base}/portal/login
   merchant:  {merchant_email}  password {merchant_password}
   partner:   {partner_email}  password {partner_password}

Program API key: {program_key}
Metrics: {base}/metrics     Stop: Ctrl-C
===========================================================================
"#,
            program = self.program,
            partner = self.partner,
            secret = self.webhook_secret,
            partner_key = self.partner_key,
            program_key = self.program_key,
            ua = "Mozilla/5.0 (mitra demo)",
            merchant_email = self.merchant_login.email,
            merchant_password = self.merchant_login.password,
            partner_email = self.partner_login.email,
            partner_password = self.partner_login.password,
        )
    }
}
