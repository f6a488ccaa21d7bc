//! `retail`: a mother-and-baby brand selling through ads, WeChat, app, web shop, a marketplace
//! store and physical stores in mainland China plus one cross-border store in Sydney.

use super::{Campaign, Chain, Item, Paths, Platform, PosFile, Site, Template, Vocabulary};

/// The retail template.
pub static RETAIL: Template = Template {
    name: "retail",
    brand: "bloomkids",
    app_id: "com.bloomkids.app",
    mp_app_id: "wx5f1c0ab7d3e2a901",
    oa_app_id: "wx9b2e7c41f0d8a3c5",
    oa_original_id: "gh_3a9f1c2b7e4d",
    open_platform_id: "op_bloomkids",
    crm_system: "bloomkids_crm",
    marketplace: "tmall",
    vocab: Vocabulary {
        screens: &[
            "home",
            "category",
            "product_list",
            "promotion",
            "member_center",
            "cart",
        ],
        view_item: "view_item",
        add_to_cart: "add_to_cart",
        submit_order: "submit_order",
        pay_order: "pay_order",
        search: "search",
        login: "login",
        log_create: "order_create",
        log_paid: "order_paid",
        pos_event: "pos_order",
        store_checkin: "store_checkin",
        aliases: &[
            ("view_item", &["ViewItem", "product_view", "viewItem"]),
            ("add_to_cart", &["addToCart", "AddCart", "add-to-cart"]),
            ("submit_order", &["SubmitOrder", "place_order"]),
            ("pay_order", &["payment_success", "PayOrder"]),
            ("search", &["Search", "do_search"]),
            ("login", &["signin", "Login"]),
        ],
    },
    paths: Paths {
        crm_members: "crm/members.csv",
        crm_updates: "crm/member_updates.csv",
        crm_orders: "crm/member_orders.csv",
        crm_sends: "crm/sms_sends.csv",
        market_orders: "marketplace/tmall_orders.jsonl",
        web_orders: "webshop/orders.jsonl",
        tickets: "service/tickets.csv",
        surveys: "surveys/responses.csv",
    },
    pos_files: &[
        PosFile {
            path: "pos/cn_stores.csv",
            tz: "Asia/Shanghai",
        },
        PosFile {
            path: "pos/au_stores.csv",
            tz: "Australia/Sydney",
        },
    ],
    sites: &[
        Site {
            id: "SH001",
            file: 0,
            weight: 3.0,
        },
        Site {
            id: "SH002",
            file: 0,
            weight: 2.0,
        },
        Site {
            id: "BJ001",
            file: 0,
            weight: 2.5,
        },
        Site {
            id: "GZ001",
            file: 0,
            weight: 2.0,
        },
        Site {
            id: "SZ001",
            file: 0,
            weight: 1.5,
        },
        Site {
            id: "CD001",
            file: 0,
            weight: 1.0,
        },
        Site {
            id: "HZ001",
            file: 0,
            weight: 1.0,
        },
        Site {
            id: "SYD01",
            file: 1,
            weight: 1.5,
        },
    ],
    platforms: &[
        Platform {
            name: "tencent_ads",
            tz: "Asia/Shanghai",
            currency: "CNY",
            click_param: "gdt_vid",
            weight: 0.8,
        },
        Platform {
            name: "meta_ads",
            tz: "America/Los_Angeles",
            currency: "USD",
            click_param: "fbclid",
            weight: 0.2,
        },
    ],
    campaigns: &[
        Campaign {
            platform: 0,
            id: "gdt_1001",
            name: "newborn_formula_q1",
            cpc: 180,
            impressions_per_click: 80.0,
        },
        Campaign {
            platform: 0,
            id: "gdt_1002",
            name: "diaper_flash_sale",
            cpc: 120,
            impressions_per_click: 60.0,
        },
        Campaign {
            platform: 0,
            id: "gdt_1003",
            name: "member_day_retarget",
            cpc: 90,
            impressions_per_click: 40.0,
        },
        Campaign {
            platform: 1,
            id: "fb_2301",
            name: "au_formula_crossborder",
            cpc: 65,
            impressions_per_click: 120.0,
        },
        Campaign {
            platform: 1,
            id: "fb_2302",
            name: "au_gift_sets",
            cpc: 45,
            impressions_per_click: 90.0,
        },
    ],
    items: &[
        Item {
            sku: "F-STAGE1-800",
            name: "infant formula stage 1 800g",
            price: 29_800,
        },
        Item {
            sku: "F-STAGE2-800",
            name: "follow-on formula stage 2 800g",
            price: 27_800,
        },
        Item {
            sku: "D-NB-84",
            name: "newborn diapers 84 pcs",
            price: 13_900,
        },
        Item {
            sku: "D-M-62",
            name: "diapers size M 62 pcs",
            price: 12_900,
        },
        Item {
            sku: "W-80x6",
            name: "baby wipes 80x6",
            price: 5_990,
        },
        Item {
            sku: "B-240",
            name: "glass feeding bottle 240ml",
            price: 8_900,
        },
        Item {
            sku: "S-STROLL",
            name: "lightweight stroller",
            price: 129_900,
        },
        Item {
            sku: "C-BODY3",
            name: "cotton bodysuits 3-pack",
            price: 9_900,
        },
    ],
    ticket_pre: &[
        "product_question",
        "stock_check",
        "promotion_question",
        "membership_question",
    ],
    ticket_post: &[
        "delivery_delay",
        "return_request",
        "product_quality",
        "invoice_request",
    ],
    intercept: -3.2,
    betas: [0.55, 0.35, 0.45, 0.6, 0.75, 0.4, 1.1, 0.25],
    touch_weights: [1.6, 1.0, 0.7, 2.0, 1.6, 1.2, 0.8, 0.25],
    conv_weights: [0.25, 0.25, 0.12, 0.2, 0.18],
    // Ads land in the web shop or the mini-program; official-account articles open the
    // mini-program; a store visit converts most often; service contacts mostly end a journey.
    chain: Chain {
        //      ads  oa   crm  mini app  web  store cs
        next: [
            [0.0, 0.4, 0.1, 1.4, 0.4, 2.6, 0.3, 0.2], // ads
            [0.3, 0.0, 0.1, 2.6, 0.3, 0.2, 0.6, 0.3], // official account
            [0.2, 0.3, 0.0, 1.4, 1.4, 0.5, 1.0, 0.2], // crm
            [0.3, 0.6, 0.1, 0.0, 0.3, 0.2, 0.8, 0.4], // mini-program
            [0.3, 0.2, 0.2, 0.4, 0.0, 0.3, 0.6, 0.4], // app
            [0.8, 0.2, 0.1, 0.5, 0.4, 0.0, 0.4, 0.4], // web
            [0.2, 0.3, 0.2, 0.8, 0.5, 0.2, 0.0, 0.2], // store
            [0.2, 0.1, 0.1, 0.5, 0.5, 0.5, 0.6, 0.0], // service
        ],
        convert: [0.25, 0.2, 0.4, 0.7, 1.1, 0.35, 2.2, 0.15],
        leave: [2.8, 2.2, 2.2, 2.4, 2.2, 2.6, 1.8, 2.6],
    },
    journeys_per_180d: 3.5,
    member_share: 0.35,
    app_share: 0.45,
};
