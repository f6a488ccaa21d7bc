//! Business records: CRM exports and updates, marketing sends, official-account pushes, ad
//! clicks, orders in every channel (POS, marketplace, web shop, in-app), tickets and surveys.
//! Time cells are passed as epoch milliseconds and formatted by the file's convention when the
//! row is finished (see `mess.rs`), after any DST defect has moved them.

use rand::Rng;

use super::Gen;
use super::sdk::{Landing, Surface};
use crate::config::DefectKind;
use crate::layout::ids;
use crate::record::{Field, Identifier};
use crate::rng;
use crate::template::ConvChannel;

fn s(v: impl Into<String>) -> Field {
    Field::Str(v.into())
}

impl Gen<'_> {
    /// The member's identifiers as the CRM holds them at `at`.
    fn member_ids(&self, at: i64) -> Vec<Identifier> {
        let t = self.ctx.t;
        let mut v = vec![
            Identifier::scoped("crm_id", self.p.crm_id.clone(), t.crm_system),
            Identifier::scoped("member_card", self.p.member_card.clone(), t.brand),
            Identifier::global("phone", self.p.phone_at(at).to_owned()),
        ];
        if let Some(e) = &self.p.email {
            v.push(Identifier::global("email", e.clone()));
        }
        v
    }

    /// The member's row in the export taken at period start.
    pub(super) fn crm_member_export(&mut self, joined: i64) {
        let tier = ["silver", "gold", "platinum"][self.rng.random_range(0..3)];
        let site = self.ctx.t.sites[self.p.site].id;
        // The export is taken at period start: the number held then.
        let at = self.ctx.start_ms;
        let fields = vec![
            s(&self.p.crm_id),
            s(&self.p.member_card),
            s(self.p.phone_at(at)),
            self.p.email.clone().map_or(Field::Null, Field::Str),
            s(tier),
            s(site),
            Field::Int(joined),
            Field::Bool(true),
            Field::Bool(self.rng.random_bool(0.9)),
            s(crate::output::format_naive(
                self.ctx.start_ms - 1000,
                chrono_tz::Asia::Shanghai,
            )),
        ];
        let ids = self.member_ids(at);
        self.push_row(
            ids::CRM_MEMBERS,
            self.p.crm_id.clone(),
            joined,
            "member_export",
            fields,
            ids,
        );
    }

    fn crm_update(&mut self, t: i64, change: &str, marketing: bool) {
        let seq = self.next_seq();
        let key = format!("{}-{}", self.p.crm_id, seq);
        let fields = vec![
            s(&self.p.crm_id),
            s(&self.p.member_card),
            s(change),
            s(self.p.phone_at(t)),
            self.p.email.clone().map_or(Field::Null, Field::Str),
            Field::Bool(marketing),
            Field::Bool(marketing),
            Field::Int(t),
        ];
        let ids = self.member_ids(t);
        self.push_row(ids::CRM_UPDATES, key, t, "member_update", fields, ids);
    }

    /// A new member joins during the period.
    pub(super) fn crm_join(&mut self, t: i64) {
        self.crm_update(t, "joined", true);
    }

    /// The member withdraws marketing consent.
    pub(super) fn crm_opt_out(&mut self, t: i64) {
        self.crm_update(t, "consent_withdrawn", false);
    }

    /// A CRM marketing SMS.
    pub(super) fn crm_send(&mut self, t: i64) {
        let seq = self.next_seq();
        let key = format!("S{:08}{:03}", self.p.idx, seq);
        let campaign = [
            "member_day",
            "new_arrivals",
            "points_expiry",
            "birthday_coupon",
        ][self.rng.random_range(0..4)];
        let fields = vec![
            s(&key),
            s(&self.p.crm_id),
            s(self.p.phone_at(t)),
            s(campaign),
            Field::Int(t),
        ];
        let ids = vec![
            Identifier::scoped("crm_id", self.p.crm_id.clone(), self.ctx.t.crm_system),
            Identifier::global("phone", self.p.phone_at(t).to_owned()),
        ];
        self.push_row(ids::CRM_SENDS, key, t, "marketing_send", fields, ids);
    }

    /// An official-account touch: a follow on first contact, then an article view.
    pub(super) fn oa_touch(&mut self, t: i64) -> i64 {
        let t_model = self.ctx.t;
        let mut at = t;
        if !self.p.oa_followed {
            self.p.oa_followed = true;
            self.oa_push(at, "subscribe", "qrscene_store");
            let fields = vec![
                s(&self.p.oa_openid),
                s(&self.p.unionid),
                Field::Int(1),
                Field::Int(at),
                s("ADD_SCENE_QR_CODE"),
            ];
            let ids = vec![
                Identifier::scoped("wechat_openid", self.p.oa_openid.clone(), t_model.oa_app_id),
                Identifier::scoped(
                    "wechat_unionid",
                    self.p.unionid.clone(),
                    t_model.open_platform_id,
                ),
            ];
            let key = format!("{}-user", self.p.oa_openid);
            self.push_row(ids::OA_USERS, key, at, "oa_follower", fields, ids);
            at += self.rng.random_range(5_000..60_000);
        }
        let article = self.rng.random_range(100..180);
        self.oa_push(
            at,
            "VIEW",
            &format!("https://mp.weixin.qq.com/s/{}-{article}", t_model.brand),
        );
        at
    }

    fn oa_push(&mut self, t: i64, event: &str, key: &str) {
        let t_model = self.ctx.t;
        let fields = vec![
            s(t_model.oa_original_id),
            s(&self.p.oa_openid),
            Field::Int(t),
            s("event"),
            s(event),
            s(key),
        ];
        let ids = vec![Identifier::scoped(
            "wechat_openid",
            self.p.oa_openid.clone(),
            t_model.oa_app_id,
        )];
        let rkey = format!("{}-{}-{}", self.p.oa_openid, t / 1000, event);
        self.push_row(ids::OA_EVENTS, rkey, t, "oa_event", fields, ids);
    }

    /// A paid click: the click log row, the daily aggregate, and the landing session.
    pub(super) fn ad_click(&mut self, t: i64) -> i64 {
        let t_model = self.ctx.t;
        let weights: Vec<f64> = t_model.platforms.iter().map(|p| p.weight).collect();
        let pl = rng::weighted(&mut self.rng, &weights);
        let camps: Vec<usize> = (0..t_model.campaigns.len())
            .filter(|c| t_model.campaigns[*c].platform == pl)
            .collect();
        let ci = camps[self.rng.random_range(0..camps.len())];
        let camp = t_model.campaigns[ci];
        let platform = t_model.platforms[pl];
        let click_id = format!(
            "{}{}",
            if pl == 0 { "wx0" } else { "IwAR" },
            rng::token(&mut self.rng, 22)
        );
        let to_mini =
            self.p.has_wechat && platform.tz == "Asia/Shanghai" && self.rng.random_bool(0.5);
        let fields = vec![
            s(&click_id),
            Field::Int(t),
            s(camp.id),
            s(format!("{}-ad{}", camp.id, self.rng.random_range(1..5))),
            s(if to_mini { "mini_program" } else { "web" }),
            s(self.p.app_dev.os),
        ];
        let file = self.ctx.layout.ad0 + 2 * pl + 1;
        let ids = vec![Identifier::scoped(
            "click_id",
            click_id.clone(),
            platform.name,
        )];
        let at = self.push_row(file, click_id.clone(), t, "ad_click", fields, ids);
        let tz = self.ctx.layout.files[file].tz;
        let day = crate::output::local_day_index(at, tz, self.ctx.start_ms);
        *self.stats.ad_clicks.entry((ci, day)).or_insert(0) += 1;
        let landing = Landing {
            param: platform.click_param,
            click_id,
            campaign: camp.id,
        };
        let surface = if to_mini { Surface::Mini } else { Surface::Web };
        let at = t + self.rng.random_range(1_000..6_000);
        let referrer = Some(crate::layout::referrer::ADS);
        self.session(surface, at, Some(landing), referrer, false)
    }

    /// A conversion in `ch` at `t`; returns the order id and value.
    pub(super) fn convert(&mut self, ch: ConvChannel, t: i64) -> (String, i64) {
        let t_model = self.ctx.t;
        let n = 1 + rng::poisson(&mut self.rng, 0.6) as usize;
        let lines: Vec<(usize, i64)> = (0..n)
            .map(|_| {
                (
                    self.rng.random_range(0..t_model.items.len()),
                    self.rng.random_range(1..3),
                )
            })
            .collect();
        let total: i64 = lines.iter().map(|(i, q)| t_model.items[*i].price * q).sum();
        let items_text = lines
            .iter()
            .map(|(i, q)| format!("{}x{q}", t_model.items[*i].sku))
            .collect::<Vec<_>>()
            .join(";");
        let prefix = match ch {
            ConvChannel::App => "A",
            ConvChannel::MiniProgram => "M",
            ConvChannel::Web => "W",
            ConvChannel::Marketplace => "T",
            ConvChannel::Store => "R",
        };
        let seq = self.next_seq();
        let order_id = format!("{prefix}{:08}{:03}", self.p.idx, seq);
        match ch {
            ConvChannel::App | ConvChannel::MiniProgram | ConvChannel::Web => {
                let surface = match ch {
                    ConvChannel::App => Surface::App,
                    ConvChannel::MiniProgram => Surface::Mini,
                    _ => Surface::Web,
                };
                self.order_events(surface, t, &order_id, &lines, total);
                if ch == ConvChannel::Web {
                    self.order_log(
                        ids::WEBSHOP,
                        t,
                        &order_id,
                        &self.p.user_id.clone(),
                        &items_text,
                        total,
                        true,
                    );
                }
                if self.p.is_member(t) {
                    self.crm_order(t, &order_id, "online", "-", total, false);
                }
            }
            ConvChannel::Marketplace => {
                let uid = self.p.market_uid.clone();
                self.order_log(ids::MARKET, t, &order_id, &uid, &items_text, total, false);
            }
            ConvChannel::Store => self.pos_order(t, &order_id, &items_text, total),
        }
        (order_id, total)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one order log row needs all of its cells"
    )]
    fn order_log(
        &mut self,
        file: usize,
        t: i64,
        order_id: &str,
        buyer: &str,
        items: &str,
        total: i64,
        full_phone: bool,
    ) {
        let v = self.ctx.t.vocab;
        let phone = if full_phone || self.rng.random_bool(0.3) {
            self.p.phone_at(t).to_owned()
        } else {
            let number = self.p.phone_at(t);
            format!("{}****{}", &number[..3], &number[7..])
        };
        let (buyer_kind, scope) = if file == ids::MARKET {
            ("marketplace_buyer", self.ctx.t.marketplace)
        } else {
            ("user_id", self.ctx.t.app_id)
        };
        let paid_at = t + self.rng.random_range(20_000..300_000);
        for (event, at) in [(v.log_create, t), (v.log_paid, paid_at)] {
            let mut ids = vec![Identifier::scoped(buyer_kind, buyer.to_owned(), scope)];
            if !phone.contains('*') {
                ids.push(Identifier::global("phone", phone.clone()));
            }
            let fields = vec![
                s(event),
                s(order_id),
                s(buyer),
                s(&phone),
                Field::Money(total),
                s(items),
                Field::Int(at),
                s(if file == ids::MARKET {
                    "tmall-flagship"
                } else {
                    "webshop"
                }),
            ];
            self.push_row(file, format!("{order_id}-{event}"), at, event, fields, ids);
        }
    }

    fn pos_order(&mut self, t: i64, order_id: &str, items: &str, total: i64) {
        let t_model = self.ctx.t;
        let site = t_model.sites[self.p.site];
        let member = self.p.is_member(t);
        let card = member && self.rng.random_bool(0.9);
        let phone = self.rng.random_bool(if member { 0.3 } else { 0.25 });
        let mut ids = Vec::new();
        if card {
            ids.push(Identifier::scoped(
                "member_card",
                self.p.member_card.clone(),
                t_model.brand,
            ));
        }
        if phone {
            ids.push(Identifier::global("phone", self.p.phone_at(t).to_owned()));
        }
        let fields = vec![
            s(order_id),
            s(site.id),
            Field::Int(t),
            if card {
                s(&self.p.member_card)
            } else {
                Field::Null
            },
            if phone {
                s(self.p.phone_at(t))
            } else {
                Field::Null
            },
            Field::Money(total),
            s(items),
            s(format!("E{:03}", self.rng.random_range(1..40))),
            s(["wechat_pay", "alipay", "card", "cash"][self.rng.random_range(0..4)]),
        ];
        let file = ids::POS0 + site.file;
        let at = self.push_row(
            file,
            order_id.to_owned(),
            t,
            t_model.vocab.pos_event,
            fields,
            ids,
        );
        let written = self.out.records.last().is_some_and(|r| match &r.body {
            crate::record::Body::Row(row) => {
                row.fields.first().and_then(Field::as_str) == Some(order_id)
            }
            crate::record::Body::Sdk(_) => false,
        });
        if member && written && self.chance(DefectKind::CrossSourceDuplicate) {
            let path = self.ctx.layout.files[file].path.clone();
            self.crm_order(at, order_id, "store", site.id, total, true);
            if let Some(r) = self.out.records.last_mut() {
                r.defects.push(crate::record::Defect {
                    kind: DefectKind::CrossSourceDuplicate,
                    detail: format!("pos order {order_id} also in {path}"),
                });
                self.stats.defect_records[DefectKind::CrossSourceDuplicate as usize] += 1;
            }
        }
    }

    fn crm_order(
        &mut self,
        t: i64,
        order_id: &str,
        source: &str,
        store: &str,
        total: i64,
        duplicate: bool,
    ) {
        let fields = vec![
            s(&self.p.crm_id),
            s(&self.p.member_card),
            s(order_id),
            s(source),
            s(store),
            Field::Money(total),
            Field::Int(total / 100),
            Field::Int(t),
        ];
        let ids = vec![
            Identifier::scoped("crm_id", self.p.crm_id.clone(), self.ctx.t.crm_system),
            Identifier::scoped("member_card", self.p.member_card.clone(), self.ctx.t.brand),
        ];
        let key = format!("{order_id}-crm");
        if duplicate {
            self.push_row_keep_ids(ids::CRM_ORDERS, key, t, "member_order", fields, ids);
        } else {
            self.push_row(ids::CRM_ORDERS, key, t, "member_order", fields, ids);
        }
    }

    /// A customer-service ticket.
    pub(super) fn ticket(&mut self, t: i64, category: &str) {
        let seq = self.next_seq();
        let key = format!("T{:08}{:03}", self.p.idx, seq);
        let member = self.p.is_member(t);
        let channel = ["hotline", "wechat", "online_chat"][self.rng.random_range(0..3)];
        let closed = t + self.rng.random_range(600_000..3 * crate::DAY_MS);
        let mut ids = vec![Identifier::global("phone", self.p.phone_at(t).to_owned())];
        if member {
            ids.push(Identifier::scoped(
                "member_card",
                self.p.member_card.clone(),
                self.ctx.t.brand,
            ));
        }
        let fields = vec![
            s(&key),
            Field::Int(t),
            s(channel),
            s(self.p.phone_at(t)),
            if member {
                s(&self.p.member_card)
            } else {
                Field::Null
            },
            s(category),
            s("closed"),
            s(crate::output::format_naive(
                closed,
                chrono_tz::Asia::Shanghai,
            )),
        ];
        self.push_row(ids::TICKETS, key, t, "service_ticket", fields, ids);
    }

    /// A survey response after a purchase.
    pub(super) fn survey(&mut self, t: i64, ch: ConvChannel) {
        let seq = self.next_seq();
        let key = format!("Q{:08}{:03}", self.p.idx, seq);
        let member = self.p.is_member(t);
        let score = (7.5 + self.p.propensity * 2.0 + rng::normal(&mut self.rng) * 1.8)
            .round()
            .clamp(0.0, 10.0) as i64;
        let csat = (1 + score / 2).min(5);
        let mut ids = vec![Identifier::global("phone", self.p.phone_at(t).to_owned())];
        if member {
            ids.push(Identifier::scoped(
                "member_card",
                self.p.member_card.clone(),
                self.ctx.t.brand,
            ));
        }
        let fields = vec![
            s(&key),
            Field::Int(t),
            s(self.p.phone_at(t)),
            if member {
                s(&self.p.member_card)
            } else {
                Field::Null
            },
            s(ch.name()),
            Field::Int(score),
            Field::Int(csat),
        ];
        self.push_row(ids::SURVEYS, key, t, "survey_response", fields, ids);
    }
}
