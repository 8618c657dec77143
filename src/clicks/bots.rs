//! Telling bots and link previews from shoppers, by user agent.
//!
//! Chat apps and social networks fetch a shared link to draw its preview;
//! crawlers and HTTP libraries follow links on their own. Their clicks are
//! logged (they are real requests) but flagged, and excluded from `clicks`
//! in roll-ups and reports.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::hash::BuildHasher;
use std::sync::LazyLock;

/// Why a click was flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotReason {
    /// No user agent at all: browsers always send one.
    NoUserAgent,
    /// A crawler, link-preview fetcher, headless browser or HTTP library.
    UserAgent,
    /// HEAD: browsers navigate with GET; link checkers ask HEAD.
    HeadRequest,
}

impl BotReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BotReason::NoUserAgent => "no_user_agent",
            BotReason::UserAgent => "user_agent",
            BotReason::HeadRequest => "head_request",
        }
    }
}

/// Substrings (matched case-insensitively) that mark a non-human client.
const PATTERNS: &[&str] = &[
    // Generic crawler words.
    "bot",
    "crawler",
    "spider",
    "crawl",
    "slurp",
    "scraper",
    "preview",
    "fetcher",
    // Link previews of chat and social apps.
    // (In-app browsers of Instagram, LINE, Snapchat or LinkedIn carry the
    // app's name too, and are shoppers: only the fetchers are listed.)
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "whatsapp/",
    "slack-imgproxy",
    "skypeuripreview",
    "embedly",
    "vkshare",
    "iframely",
    "outbrain",
    "google-inspectiontool",
    // Headless and automated browsers.
    "headlesschrome",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "prerender",
    // HTTP libraries and command-line clients.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww-perl",
    "node-fetch",
    "axios/",
    "undici",
    "ruby",
    "php/",
    "guzzlehttp",
    "reqwest",
    "httpie",
    "postmanruntime",
    "insomnia",
    // Monitors and security scanners.
    "uptime",
    "monitor",
    "pingdom",
    "statuscake",
    "nagios",
    "zgrab",
    "masscan",
    "nmap",
];

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        // A full DFA: the fastest scan per user agent, for a few KB of table.
        .kind(Some(AhoCorasickKind::DFA))
        .build(PATTERNS)
        .expect("patterns compile")
});

/// Whether a request with this user agent and method is a bot, and why.
pub fn classify(user_agent: Option<&str>, is_head: bool) -> Option<BotReason> {
    if is_head {
        return Some(BotReason::HeadRequest);
    }
    match user_agent.map(str::trim) {
        None | Some("") => Some(BotReason::NoUserAgent),
        Some(ua) if VERDICTS.with_borrow_mut(|v| v.is_bot(ua)) => Some(BotReason::UserAgent),
        Some(_) => None,
    }
}

/// User agents this thread judged lately, with their verdicts.
///
/// A shopper's browser sends the same user agent on every click, and one
/// browser build is shared by many shoppers: most redirects find their
/// user agent here and skip the scan (about 1,700 instructions for a
/// browser's 100 bytes, against some 150 to hash and compare). Direct
/// mapped: a user agent has one slot, chosen by a hash keyed per process
/// (so no client can aim at another's slot), and the newest verdict takes
/// it. The full user agent is kept and compared, so a verdict is never
/// another user agent's. Bounded: `SLOTS` entries of at most `LONGEST`
/// bytes; longer user agents are scanned every time.
struct Verdicts {
    hasher: foldhash::fast::RandomState,
    slots: Vec<Option<(Box<str>, bool)>>,
}

const SLOTS: usize = 1024;
const LONGEST: usize = 512;

impl Verdicts {
    fn new() -> Self {
        Self {
            hasher: foldhash::fast::RandomState::default(),
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }

    fn is_bot(&mut self, ua: &str) -> bool {
        if ua.len() > LONGEST {
            return MATCHER.is_match(ua);
        }
        let slot = &mut self.slots[self.hasher.hash_one(ua) as usize % SLOTS];
        match slot {
            Some((seen, verdict)) if **seen == *ua => *verdict,
            _ => {
                let verdict = MATCHER.is_match(ua);
                *slot = Some((ua.into(), verdict));
                verdict
            }
        }
    }
}

thread_local! {
    static VERDICTS: std::cell::RefCell<Verdicts> = std::cell::RefCell::new(Verdicts::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_crawlers_headless_browsers_and_libraries_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "WhatsApp/2.23.20.0 A",
            "TelegramBot (like TwitterBot)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            "curl/8.5.0",
            "Wget/1.21.4",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
            "okhttp/4.12.0",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        ] {
            assert_eq!(
                classify(Some(ua), false),
                Some(BotReason::UserAgent),
                "{ua}"
            );
        }
    }

    #[test]
    fn browsers_are_shoppers() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        ] {
            assert_eq!(classify(Some(ua), false), None, "{ua}");
        }
    }

    #[test]
    fn in_app_browsers_are_shoppers() {
        for ua in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 307.0.0.34.111",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Line/13.19.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]",
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/440.0.0.0;]",
        ] {
            assert_eq!(classify(Some(ua), false), None, "{ua}");
        }
    }

    #[test]
    fn a_remembered_verdict_is_the_scan_s_own() {
        let mut verdicts = Verdicts::new();
        let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        // More user agents than slots: every verdict, first seen or
        // remembered, stays the scan's, whichever slots they share.
        let many: Vec<String> = (0..3 * SLOTS)
            .map(|i| match i % 3 {
                0 => format!("{browser} build/{i}"),
                1 => format!("{bot} build/{i}"),
                _ => format!("Mozilla/5.0 ({i}) crawler"),
            })
            .collect();
        for _ in 0..2 {
            for ua in many.iter().map(String::as_str).chain([browser, bot]) {
                assert_eq!(verdicts.is_bot(ua), MATCHER.is_match(ua), "{ua}");
            }
        }
        assert!(!verdicts.is_bot(browser) && !verdicts.is_bot(browser));
        assert!(verdicts.is_bot(bot) && verdicts.is_bot(bot));
        // Too long to keep: scanned, never stored.
        let long = format!("{browser} {}", "x".repeat(LONGEST));
        assert!(!verdicts.is_bot(&long));
        assert!(
            verdicts
                .slots
                .iter()
                .flatten()
                .all(|(ua, _)| ua.len() <= LONGEST)
        );
        assert_eq!(verdicts.slots.len(), SLOTS);
    }

    #[test]
    fn no_user_agent_or_head_is_a_bot() {
        assert_eq!(classify(None, false), Some(BotReason::NoUserAgent));
        assert_eq!(classify(Some("  "), false), Some(BotReason::NoUserAgent));
        assert_eq!(
            classify(Some("Mozilla/5.0 Chrome/120"), true),
            Some(BotReason::HeadRequest)
        );
    }
}
