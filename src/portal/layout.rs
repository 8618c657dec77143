//! The frame of every page: title, navigation, language switch, notices.

use super::i18n::{Locale, Tr};
use super::web::Visitor;
use crate::accounts::Tenant;

/// One entry of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: String,
    pub current: bool,
}

/// A language of the switch.
pub struct LangItem {
    pub href: String,
    pub name: &'static str,
    pub code: &'static str,
    pub current: bool,
}

/// What the base template needs, on every page.
pub struct Layout {
    pub tr: Tr,
    pub csrf: String,
    pub title: String,
    pub nav: Vec<NavItem>,
    /// The signed-in person's address.
    pub who: Option<String>,
    pub langs: Vec<LangItem>,
    /// A message about what was just done (`?notice=...`), in words.
    pub notice: Option<String>,
}

const PARTNER_NAV: [(&str, &str); 9] = [
    ("/portal/partner", "nav-dashboard"),
    ("/portal/partner/programs", "nav-programs"),
    ("/portal/partner/links", "nav-links"),
    ("/portal/partner/simulate", "nav-simulate"),
    ("/portal/partner/commissions", "nav-commissions"),
    ("/portal/partner/claims", "nav-claims"),
    ("/portal/partner/statement", "nav-statement"),
    ("/portal/partner/payouts", "nav-payouts"),
    ("/portal/account", "nav-account"),
];

const MERCHANT_NAV: [(&str, &str); 8] = [
    ("/portal/merchant", "nav-overview"),
    ("/portal/merchant/partners", "nav-partners"),
    ("/portal/merchant/agreements", "nav-agreements"),
    ("/portal/merchant/conversions", "nav-conversions"),
    ("/portal/merchant/claims", "nav-claims"),
    ("/portal/merchant/payouts", "nav-payouts"),
    ("/portal/merchant/integration", "nav-integration"),
    ("/portal/account", "nav-account"),
];

impl Layout {
    /// The frame for `visitor`, titled with the text of `title_key`.
    pub fn new(visitor: &Visitor, title_key: &str) -> Self {
        let tr = visitor.tr();
        let path = visitor.path.split('?').next().unwrap_or("");
        let items: &[(&str, &str)] = match visitor.session().map(|s| s.user.tenant) {
            Some(Tenant::Partner(_)) => &PARTNER_NAV,
            Some(Tenant::Program(_)) => &MERCHANT_NAV,
            None => &[],
        };
        let nav = items
            .iter()
            .map(|(href, key)| NavItem {
                href,
                label: tr.t(key),
                // The first entry is a prefix of every other: it is current only on itself.
                current: path == *href
                    || (path.starts_with(&format!("{href}/")) && href.matches('/').count() > 2),
            })
            .collect();
        let next =
            url::form_urlencoded::byte_serialize(visitor.path.as_bytes()).collect::<String>();
        let langs = Locale::ALL
            .iter()
            .map(|l| LangItem {
                href: format!("/portal/lang/{}?next={next}", l.code()),
                name: l.name(),
                code: l.code(),
                current: *l == visitor.locale,
            })
            .collect();
        let notice = visitor
            .path
            .split_once('?')
            .and_then(|(_, q)| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "notice")
                    .map(|(_, v)| v.into_owned())
            })
            .filter(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
            .and_then(|k| tr.try_t(&format!("notice-{k}")));
        Layout {
            title: tr.t(title_key),
            tr,
            csrf: visitor.csrf().to_owned(),
            nav,
            who: visitor.session().map(|s| s.user.email.clone()),
            langs,
            notice,
        }
    }

    pub fn lang(&self) -> &'static str {
        self.tr.locale.code()
    }

    pub fn t(&self, key: &str) -> String {
        self.tr.t(key)
    }
}
