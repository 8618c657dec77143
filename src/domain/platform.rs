//! The shop and payment platforms whose own webhooks mitra takes.

use super::text_enum::text_enum;

text_enum! {
    /// A platform with a native integration: its webhooks are accepted as it
    /// sends them, signed with its own scheme and a secret set per program.
    pub enum Platform("platform") {
        Shopify = "shopify",
        WooCommerce = "woocommerce",
        Stripe = "stripe",
    }
}

impl Platform {
    /// The platform's name as its users know it.
    pub fn title(self) -> &'static str {
        match self {
            Platform::Shopify => "Shopify",
            Platform::WooCommerce => "WooCommerce",
            Platform::Stripe => "Stripe",
        }
    }
}
