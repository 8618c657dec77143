//! The portal's two languages (English, Bahasa Indonesia), and how money,
//! numbers and dates are written in each.
//!
//! Texts live in Fluent files (`locales/{en,id}/portal.ftl`), embedded in
//! the binary at build time. Money is formatted from integer minor units,
//! never through a float.

use crate::domain::Currency;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid};
use std::borrow::Cow;
use std::collections::HashMap;

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // No Unicode isolation marks around arguments: they would show in
        // <input value> and in copied links.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static EN: LanguageIdentifier = langid!("en");
static ID: LanguageIdentifier = langid!("id");

/// A language of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    Id,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Id];

    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Id => "id",
        }
    }

    pub fn parse(code: &str) -> Option<Locale> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Locale::En),
            // `in` is the code Indonesian had before 1989; some systems still send it.
            "id" | "in" => Some(Locale::Id),
            _ => None,
        }
    }

    /// The language's own name, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Id => "Bahasa Indonesia",
        }
    }

    fn langid(self) -> &'static LanguageIdentifier {
        match self {
            Locale::En => &EN,
            Locale::Id => &ID,
        }
    }

    /// The preferred of our languages in an `Accept-Language` header
    /// (highest q first, header order among equals); English when none.
    pub fn from_accept_language(header: &str) -> Locale {
        let mut best: Option<(f32, Locale)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let primary = tag.split(['-', '_']).next().unwrap_or("");
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(locale) = Locale::parse(primary)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }
}

/// Texts and formats for one person: a language and a time zone.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub locale: Locale,
    pub tz: Tz,
}

impl Tr {
    pub fn new(locale: Locale, tz: Tz) -> Self {
        Self { locale, tz }
    }

    /// The text of `key`.
    pub fn t(&self, key: &str) -> String {
        LOCALES.lookup(self.locale.langid(), key)
    }

    /// The text of `key`, if the files have it (for keys made from data).
    pub fn try_t(&self, key: &str) -> Option<String> {
        LOCALES.try_lookup(self.locale.langid(), key)
    }

    /// The text of `key` with arguments.
    pub fn ta(&self, key: &str, args: &[(&'static str, String)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), FluentValue::from(v.clone())))
            .collect();
        LOCALES.lookup_with_args(self.locale.langid(), key, &args)
    }

    /// A whole number with the language's grouping: 12,500 or 12.500.
    pub fn number(&self, n: i64) -> String {
        group(n.unsigned_abs(), self.sep().0, n < 0)
    }

    /// A ratio as a percentage with two decimals: 2.50% or 2,50%.
    pub fn percent(&self, ratio: Option<f64>) -> String {
        match ratio {
            None => "–".into(),
            Some(r) => {
                // Hundredths of a percent, rounded: a display, not money.
                let hundredths = (r * 10_000.0).round() as i64;
                format!(
                    "{}{}{:02}%",
                    self.number(hundredths / 100),
                    self.sep().1,
                    (hundredths % 100).abs()
                )
            }
        }
    }

    /// Basis points as a rate: 1000 bps is 10% (10,5% in Indonesian for 1050).
    pub fn bps(&self, bps: i64) -> String {
        let (whole, frac) = (bps / 100, (bps % 100).abs());
        if frac == 0 {
            return format!("{whole}%");
        }
        let frac = format!("{frac:02}");
        format!("{whole}{}{}%", self.sep().1, frac.trim_end_matches('0'))
    }

    fn sep(&self) -> (char, char) {
        match self.locale {
            Locale::En => (',', '.'),
            Locale::Id => ('.', ','),
        }
    }

    /// Money from minor units: €12.50 in English, Rp 12.500 in Indonesian.
    pub fn money(&self, amount_minor: i64, currency: Currency) -> String {
        format_money(self.locale, amount_minor, currency)
    }

    /// A date in the person's time zone: 30 Nov 2026.
    pub fn date(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.tz);
        format!(
            "{} {} {}",
            local.day(),
            self.month(local.month()),
            local.year()
        )
    }

    /// A date and time in the person's time zone: 30 Nov 2026, 14:05.
    pub fn datetime(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.tz);
        format!("{}, {}", self.date(at), local.format("%H:%M"))
    }

    /// A calendar day: 30 Nov.
    pub fn day(&self, day: chrono::NaiveDate) -> String {
        format!("{} {}", day.day(), self.month(day.month()))
    }

    fn month(&self, m: u32) -> &'static str {
        const EN_MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        const ID_MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des",
        ];
        let i = (m.clamp(1, 12) - 1) as usize;
        match self.locale {
            Locale::En => EN_MONTHS[i],
            Locale::Id => ID_MONTHS[i],
        }
    }
}

fn group(mut n: u64, sep: char, negative: bool) -> String {
    let mut parts = Vec::new();
    loop {
        if n < 1000 {
            parts.push(n.to_string());
            break;
        }
        parts.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    let body = parts.join(&sep.to_string());
    if negative { format!("-{body}") } else { body }
}

/// The symbol a currency is written with, and whether a space follows it.
fn symbol(locale: Locale, currency: Currency) -> (Cow<'static, str>, bool) {
    match (currency.code(), locale) {
        ("EUR", _) => ("€".into(), false),
        ("GBP", _) => ("£".into(), false),
        ("JPY", _) => ("¥".into(), false),
        ("USD", Locale::En) => ("$".into(), false),
        ("USD", Locale::Id) => ("US$".into(), false),
        ("IDR", Locale::Id) => ("Rp".into(), true),
        (code, _) => (code.to_owned().into(), true),
    }
}

/// Money from minor units in a language. Rupiah amounts leave out a zero
/// fraction (nobody writes sen); other currencies always show theirs.
pub fn format_money(locale: Locale, amount_minor: i64, currency: Currency) -> String {
    let (group_sep, decimal) = match locale {
        Locale::En => (',', '.'),
        Locale::Id => ('.', ','),
    };
    let e = currency.exponent();
    let scale = 10u64.pow(e);
    let abs = amount_minor.unsigned_abs();
    let (major, minor) = (abs / scale, abs % scale);
    let mut number = group(major, group_sep, false);
    if e > 0 && !(currency.code() == "IDR" && minor == 0) {
        number.push(decimal);
        number.push_str(&format!("{:0width$}", minor, width = e as usize));
    }
    let (sym, space) = symbol(locale, currency);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let space = if space { "\u{a0}" } else { "" };
    format!("{sign}{sym}{space}{number}")
}

/// Every message id of a Fluent file, for the tests that keep both languages whole.
#[cfg(test)]
fn ids(ftl: &str) -> std::collections::BTreeSet<String> {
    ftl.lines()
        .filter(|l| !l.starts_with([' ', '#', '\t']) && l.contains(" ="))
        .map(|l| l.split(" =").next().unwrap_or("").trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn money_is_written_the_way_each_language_writes_it() {
        assert_eq!(
            format_money(Locale::Id, 1_250_000, cur("IDR")),
            "Rp\u{a0}12.500"
        );
        assert_eq!(format_money(Locale::En, 1250, cur("EUR")), "€12.50");
        assert_eq!(format_money(Locale::Id, 1250, cur("EUR")), "€12,50");
        assert_eq!(
            format_money(Locale::En, 1_250_000, cur("IDR")),
            "IDR\u{a0}12,500"
        );
        assert_eq!(
            format_money(Locale::Id, 1_250_050, cur("IDR")),
            "Rp\u{a0}12.500,50"
        );
        assert_eq!(
            format_money(Locale::En, -123_456_789, cur("USD")),
            "-$1,234,567.89"
        );
        assert_eq!(format_money(Locale::En, 1500, cur("JPY")), "¥1,500");
        assert_eq!(format_money(Locale::En, 5, cur("EUR")), "€0.05");
    }

    #[test]
    fn the_browser_language_picks_indonesian_or_english() {
        assert_eq!(
            Locale::from_accept_language("id-ID,id;q=0.9,en;q=0.8"),
            Locale::Id
        );
        assert_eq!(
            Locale::from_accept_language("en-US,en;q=0.9,id;q=0.8"),
            Locale::En
        );
        assert_eq!(
            Locale::from_accept_language("fr-FR,id;q=0.5,en;q=0.4"),
            Locale::Id
        );
        assert_eq!(Locale::from_accept_language("de,fr"), Locale::En);
        assert_eq!(Locale::from_accept_language("id;q=0"), Locale::En);
        assert_eq!(Locale::from_accept_language(""), Locale::En);
    }

    #[test]
    fn dates_are_shown_in_the_persons_time_zone() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T20:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let jakarta = Tr::new(Locale::Id, chrono_tz::Asia::Jakarta);
        assert_eq!(jakarta.datetime(at), "1 Des 2026, 03:30");
        let london = Tr::new(Locale::En, chrono_tz::Europe::London);
        assert_eq!(london.datetime(at), "30 Nov 2026, 20:30");
    }

    #[test]
    fn numbers_and_rates_follow_the_language() {
        let en = Tr::new(Locale::En, Tz::UTC);
        let id = Tr::new(Locale::Id, Tz::UTC);
        assert_eq!(en.number(1_234_567), "1,234,567");
        assert_eq!(id.number(1_234_567), "1.234.567");
        assert_eq!(en.percent(Some(0.025)), "2.50%");
        assert_eq!(id.percent(Some(0.025)), "2,50%");
        assert_eq!(en.percent(None), "–");
        assert_eq!(en.bps(1000), "10%");
        assert_eq!(id.bps(1050), "10,5%");
        assert_eq!(en.bps(1025), "10.25%");
    }

    #[test]
    fn both_languages_have_every_text() {
        let en = ids(include_str!("../../locales/en/portal.ftl"));
        let id = ids(include_str!("../../locales/id/portal.ftl"));
        assert!(en.len() > 100, "{} texts", en.len());
        let only_en: Vec<_> = en.difference(&id).collect();
        let only_id: Vec<_> = id.difference(&en).collect();
        assert!(only_en.is_empty(), "missing in Indonesian: {only_en:?}");
        assert!(only_id.is_empty(), "missing in English: {only_id:?}");
    }

    #[test]
    fn texts_take_their_arguments() {
        let id = Tr::new(Locale::Id, Tz::UTC);
        assert_eq!(id.t("nav-sign-out"), "Keluar");
        assert_eq!(
            id.ta("invite-title", &[("program", "Toko Batik".into())]),
            "Undangan dari Toko Batik"
        );
    }
}
