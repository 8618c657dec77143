//! Telling bots and link previews from shoppers, by user agent.
//!
//! Chat apps and social networks fetch a shared link to draw its preview;
//! crawlers and HTTP libraries follow links on their own. Their clicks are
//! logged (they are real requests) but flagged, and excluded from `clicks`
//! in roll-ups and reports.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
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
        Some(ua) if MATCHER.is_match(ua) => Some(BotReason::UserAgent),
        Some(_) => None,
    }
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
    fn no_user_agent_or_head_is_a_bot() {
        assert_eq!(classify(None, false), Some(BotReason::NoUserAgent));
        assert_eq!(classify(Some("  "), false), Some(BotReason::NoUserAgent));
        assert_eq!(
            classify(Some("Mozilla/5.0 Chrome/120"), true),
            Some(BotReason::HeadRequest)
        );
    }
}
