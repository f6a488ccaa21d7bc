//! `healthcare`: a private hospital group. Patients find it through ads and WeChat, book in the
//! mini-program, app, web or a third-party booking platform, register at the clinic desk (HIS
//! export), and are followed up by phone and surveyed.

use super::{Campaign, Chain, Item, Paths, Platform, PosFile, Site, Template, Vocabulary};

/// The healthcare template.
pub static HEALTHCARE: Template = Template {
    name: "healthcare",
    brand: "kindcare",
    app_id: "com.kindcare.patient",
    mp_app_id: "wx0c7d2e9a14b6f352",
    oa_app_id: "wx6a3f8e21c9b0d47e",
    oa_original_id: "gh_7d1e0a5c9b3f",
    open_platform_id: "op_kindcare",
    crm_system: "kindcare_pmi",
    marketplace: "haodf",
    vocab: Vocabulary {
        screens: &[
            "home",
            "departments",
            "doctor_list",
            "health_articles",
            "my_records",
            "booking",
        ],
        view_item: "view_doctor",
        add_to_cart: "select_slot",
        submit_order: "book_appointment",
        pay_order: "pay_deposit",
        search: "search_symptom",
        login: "login",
        log_create: "appointment_create",
        log_paid: "appointment_confirmed",
        pos_event: "registration",
        store_checkin: "clinic_checkin",
        aliases: &[
            ("view_doctor", &["doctor_view", "ViewDoctor"]),
            ("select_slot", &["choose_time", "SelectSlot"]),
            ("book_appointment", &["make_appointment", "BookAppointment"]),
            ("pay_deposit", &["deposit_paid"]),
            ("search_symptom", &["symptom_search"]),
            ("login", &["signin"]),
        ],
    },
    paths: Paths {
        crm_members: "pmi/patients.csv",
        crm_updates: "pmi/patient_updates.csv",
        crm_orders: "pmi/visits.csv",
        crm_sends: "pmi/reminder_sends.csv",
        market_orders: "booking_platform/haodf_appointments.jsonl",
        web_orders: "web/appointments.jsonl",
        tickets: "followup/calls.csv",
        surveys: "surveys/satisfaction.csv",
    },
    pos_files: &[PosFile {
        path: "his/registrations.csv",
        tz: "Asia/Shanghai",
    }],
    sites: &[
        Site {
            id: "KC-SH-XH",
            file: 0,
            weight: 3.0,
        },
        Site {
            id: "KC-SH-PD",
            file: 0,
            weight: 2.0,
        },
        Site {
            id: "KC-BJ-CY",
            file: 0,
            weight: 2.0,
        },
        Site {
            id: "KC-GZ-TH",
            file: 0,
            weight: 1.5,
        },
    ],
    platforms: &[Platform {
        name: "baidu_ads",
        tz: "Asia/Shanghai",
        currency: "CNY",
        click_param: "bd_vid",
        weight: 1.0,
    }],
    campaigns: &[
        Campaign {
            platform: 0,
            id: "bd_501",
            name: "pediatrics_search",
            cpc: 650,
            impressions_per_click: 35.0,
        },
        Campaign {
            platform: 0,
            id: "bd_502",
            name: "dental_checkup",
            cpc: 480,
            impressions_per_click: 45.0,
        },
        Campaign {
            platform: 0,
            id: "bd_503",
            name: "health_screening_pkg",
            cpc: 320,
            impressions_per_click: 55.0,
        },
    ],
    items: &[
        Item {
            sku: "CONS-PED",
            name: "pediatrics consultation",
            price: 30_000,
        },
        Item {
            sku: "CONS-GP",
            name: "general practice consultation",
            price: 25_000,
        },
        Item {
            sku: "DENT-CHK",
            name: "dental check-up",
            price: 38_000,
        },
        Item {
            sku: "SCREEN-B",
            name: "health screening basic",
            price: 128_000,
        },
        Item {
            sku: "VACC-FLU",
            name: "influenza vaccination",
            price: 16_800,
        },
    ],
    ticket_pre: &[
        "doctor_availability",
        "insurance_question",
        "price_question",
    ],
    ticket_post: &[
        "follow_up_call",
        "report_question",
        "billing_dispute",
        "complaint",
    ],
    intercept: -3.0,
    betas: [0.7, 0.3, 0.5, 0.65, 0.6, 0.45, 0.9, 0.4],
    touch_weights: [1.8, 0.9, 0.6, 1.8, 1.0, 1.0, 0.5, 0.4],
    conv_weights: [0.2, 0.35, 0.1, 0.15, 0.2],
    // Ads and articles lead to the booking mini-program; a clinic visit converts most often.
    chain: Chain {
        //      ads  oa   crm  mini app  web  clinic cs
        next: [
            [0.0, 0.5, 0.1, 1.8, 0.3, 1.6, 0.2, 0.3], // ads
            [0.3, 0.0, 0.1, 2.4, 0.3, 0.2, 0.4, 0.4], // official account
            [0.2, 0.4, 0.0, 1.6, 0.8, 0.4, 0.6, 0.3], // crm
            [0.3, 0.5, 0.1, 0.0, 0.3, 0.2, 0.6, 0.6], // mini-program
            [0.3, 0.2, 0.2, 0.4, 0.0, 0.3, 0.5, 0.5], // app
            [0.7, 0.2, 0.1, 0.8, 0.3, 0.0, 0.3, 0.5], // web
            [0.2, 0.3, 0.2, 0.8, 0.4, 0.2, 0.0, 0.3], // clinic
            [0.2, 0.1, 0.1, 0.8, 0.4, 0.4, 0.6, 0.0], // service
        ],
        convert: [0.3, 0.3, 0.5, 1.1, 1.0, 0.5, 2.0, 0.4],
        leave: [3.4, 3.0, 3.0, 3.0, 3.0, 3.2, 2.4, 3.0],
    },
    journeys_per_180d: 2.6,
    member_share: 0.3,
    app_share: 0.3,
};
