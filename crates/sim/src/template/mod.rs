//! Industry templates: the vocabulary (event names, sites, products, campaigns, file names) and
//! the true conversion model of a brand. The engine is the same for every template.

mod healthcare;
mod retail;

use crate::config::TemplateKind;

/// Channels a person can be touched through; each has a known effect on conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touch {
    /// A click on a paid ad, landing in the web shop or the mini-program.
    PaidAds,
    /// A WeChat official-account article or menu view.
    WechatOa,
    /// A CRM marketing message (SMS); never sent to opted-out members.
    CrmMessage,
    /// A mini-program session.
    MiniProgram,
    /// An app session.
    App,
    /// A web shop session.
    Web,
    /// A visit to a store (or clinic).
    StoreVisit,
    /// A customer-service contact before buying.
    CustomerService,
}

impl Touch {
    /// All touch channels, in truth-file order.
    pub const ALL: [Touch; 8] = [
        Touch::PaidAds,
        Touch::WechatOa,
        Touch::CrmMessage,
        Touch::MiniProgram,
        Touch::App,
        Touch::Web,
        Touch::StoreVisit,
        Touch::CustomerService,
    ];

    /// The channel's name in truth files.
    pub fn name(self) -> &'static str {
        match self {
            Touch::PaidAds => "paid_ads",
            Touch::WechatOa => "wechat_oa",
            Touch::CrmMessage => "crm_message",
            Touch::MiniProgram => "mini_program",
            Touch::App => "app",
            Touch::Web => "web",
            Touch::StoreVisit => "store_visit",
            Touch::CustomerService => "customer_service",
        }
    }
}

/// Where a conversion happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvChannel {
    /// In the app (SDK `submit_order`).
    App,
    /// In the mini-program.
    MiniProgram,
    /// In the web shop (SDK events plus the shop's order log).
    Web,
    /// In the marketplace store (order log only).
    Marketplace,
    /// At a physical site (POS export).
    Store,
}

impl ConvChannel {
    /// The channel's name in truth files.
    pub fn name(self) -> &'static str {
        match self {
            ConvChannel::App => "app",
            ConvChannel::MiniProgram => "mini_program",
            ConvChannel::Web => "web",
            ConvChannel::Marketplace => "marketplace",
            ConvChannel::Store => "store",
        }
    }
}

/// A physical site: a store or a clinic, with its zone and the POS file it reports into.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// Site code printed in exports.
    pub id: &'static str,
    /// Index into [`Template::pos_files`].
    pub file: usize,
    /// Relative weight of customers living near it.
    pub weight: f64,
}

/// A POS-like export file and the zone its local times are written in.
#[derive(Debug, Clone, Copy)]
pub struct PosFile {
    /// Path relative to the output directory.
    pub path: &'static str,
    /// IANA zone of the sites reporting into it.
    pub tz: &'static str,
}

/// An ad platform account.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    /// Short name used in paths (`ads/<name>_daily.csv`).
    pub name: &'static str,
    /// The ad account's zone; reports and click logs use it.
    pub tz: &'static str,
    /// Report currency.
    pub currency: &'static str,
    /// Name of the click-id URL parameter (`gdt_vid`, `fbclid`).
    pub click_param: &'static str,
    /// Share of ad clicks going to this platform.
    pub weight: f64,
}

/// A campaign on a platform.
#[derive(Debug, Clone, Copy)]
pub struct Campaign {
    /// Index into [`Template::platforms`].
    pub platform: usize,
    /// Campaign id as reported.
    pub id: &'static str,
    /// Campaign name as reported.
    pub name: &'static str,
    /// Cost per click in minor currency units.
    pub cpc: i64,
    /// Impressions per click (inverse click-through rate).
    pub impressions_per_click: f64,
}

/// A product or service with its price in minor units (fen).
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// Stock-keeping unit or service code.
    pub sku: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Unit price in fen.
    pub price: i64,
}

/// The template's event names. The marketplace/web order log deliberately uses other names.
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary {
    /// Screens/pages a browsing session moves through.
    pub screens: &'static [&'static str],
    /// Looking at one item.
    pub view_item: &'static str,
    /// Intent step (cart, slot selection).
    pub add_to_cart: &'static str,
    /// Placing the order in the app or mini-program.
    pub submit_order: &'static str,
    /// Paying.
    pub pay_order: &'static str,
    /// Searching.
    pub search: &'static str,
    /// Logging in (app) or authorising (mini-program).
    pub login: &'static str,
    /// Order-log event names of the marketplace and web shop: created, paid.
    pub log_create: &'static str,
    /// See `log_create`.
    pub log_paid: &'static str,
    /// Event name of a converted POS row when sent.
    pub pos_event: &'static str,
    /// Checking in at a store by scanning its QR code.
    pub store_checkin: &'static str,
    /// Legacy or misspelt names clients still send, per canonical name.
    pub aliases: &'static [(&'static str, &'static [&'static str])],
}

/// Relative paths of the fixed sources.
#[derive(Debug, Clone, Copy)]
pub struct Paths {
    /// Membership / patient master export at period start.
    pub crm_members: &'static str,
    /// Later membership updates.
    pub crm_updates: &'static str,
    /// Member transactions as the CRM exports them.
    pub crm_orders: &'static str,
    /// Marketing message sends.
    pub crm_sends: &'static str,
    /// Marketplace / third-party booking platform order log.
    pub market_orders: &'static str,
    /// Web shop order log.
    pub web_orders: &'static str,
    /// Customer-service tickets / follow-up calls.
    pub tickets: &'static str,
    /// Survey responses.
    pub surveys: &'static str,
}

/// A complete industry template.
#[derive(Debug)]
pub struct Template {
    /// Template name.
    pub name: &'static str,
    /// Brand code used in source ids and scopes.
    pub brand: &'static str,
    /// App bundle id (scope of app user ids).
    pub app_id: &'static str,
    /// Mini-program app id (scope of its OpenIDs).
    pub mp_app_id: &'static str,
    /// Official-account app id (scope of its OpenIDs).
    pub oa_app_id: &'static str,
    /// Official-account original id (`ToUserName` of pushes).
    pub oa_original_id: &'static str,
    /// WeChat open-platform account (scope of UnionIDs).
    pub open_platform_id: &'static str,
    /// The CRM system name (scope of CRM ids).
    pub crm_system: &'static str,
    /// Marketplace name (scope of buyer ids).
    pub marketplace: &'static str,
    /// Event vocabulary.
    pub vocab: Vocabulary,
    /// Source file paths.
    pub paths: Paths,
    /// POS-like export files.
    pub pos_files: &'static [PosFile],
    /// Physical sites.
    pub sites: &'static [Site],
    /// Ad platforms.
    pub platforms: &'static [Platform],
    /// Campaigns.
    pub campaigns: &'static [Campaign],
    /// Items sold.
    pub items: &'static [Item],
    /// Pre-purchase customer-service categories.
    pub ticket_pre: &'static [&'static str],
    /// Post-purchase customer-service categories.
    pub ticket_post: &'static [&'static str],
    /// Intercept of the true conversion model (log-odds of a journey with no touches).
    pub intercept: f64,
    /// True log-odds contribution of each touch channel, in [`Touch::ALL`] order.
    pub betas: [f64; 8],
    /// Relative frequency of each touch channel in journeys, in [`Touch::ALL`] order.
    pub touch_weights: [f64; 8],
    /// Relative frequency of conversion channels: app, mini-program, web, marketplace, store.
    pub conv_weights: [f64; 5],
    /// The journey chain of the chain conversion model.
    pub chain: Chain,
    /// Mean journeys per person over 180 days.
    pub journeys_per_180d: f64,
    /// Share of persons who are members before the period starts.
    pub member_share: f64,
    /// Share of persons with the app installed.
    pub app_share: f64,
}

/// The true journey chain of the chain conversion model ([`crate::ConversionModel::Chain`]):
/// from each touch channel (rows in [`Touch::ALL`] order), the relative weights of the next
/// channel, of converting and of leaving. A journey's first channel is drawn from
/// [`Template::touch_weights`]. A channel the person cannot be reached through is left out
/// and the rest of its row renormalised; the diagonal is never read (a channel does not
/// follow itself, as Markov attribution collapses repeats).
#[derive(Debug)]
pub struct Chain {
    /// Weights of the next channel, in [`Touch::ALL`] order.
    pub next: [[f64; 8]; 8],
    /// Weight of converting after the channel.
    pub convert: [f64; 8],
    /// Weight of leaving without converting after the channel.
    pub leave: [f64; 8],
}

/// The template for `kind`.
pub fn get(kind: TemplateKind) -> &'static Template {
    match kind {
        TemplateKind::Retail => &retail::RETAIL,
        TemplateKind::Healthcare => &healthcare::HEALTHCARE,
    }
}
