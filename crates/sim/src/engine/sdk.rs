//! SDK sessions (app, mini-program, web) in the Segment-like wire shape, including logins and
//! WeChat authorisation that reveal user ids, UnionIDs and phones, and the in-store iPad sessions
//! that put many customers on one device.

use rand::Rng;
use serde_json::{Map, Value, json};

use super::Gen;
use crate::config::DefectKind;
use crate::layout::{ids, referrer};
use crate::person::Device;
use crate::record::{Event, Identifier};
use crate::rng;

/// Which SDK a session runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The brand's app.
    App,
    /// The WeChat mini-program.
    Mini,
    /// The web shop.
    Web,
}

/// Where a paid click landed: the platform's click-id parameter, click id and campaign.
#[derive(Debug, Clone)]
pub struct Landing {
    /// URL parameter name of the click id.
    pub param: &'static str,
    /// Click id.
    pub click_id: String,
    /// Campaign id.
    pub campaign: &'static str,
}

/// Per-session delivery facts shared by its events.
pub(crate) struct SessionCtx {
    pub surface: Surface,
    pub device: Device,
    pub shared_site: Option<&'static str>,
    pub late_ms: i64,
    pub logged_in: bool,
    pub landing: Option<Landing>,
    /// What opened the session (`utm_source`), when something did.
    pub referrer: Option<&'static str>,
}

fn money(fen: i64) -> Value {
    serde_json::Number::from_f64(fen as f64 / 100.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

impl Gen<'_> {
    fn open_session(
        &mut self,
        surface: Surface,
        landing: Option<Landing>,
        shared_site: Option<&'static str>,
    ) -> SessionCtx {
        let late = self.chance(DefectKind::LateArrival);
        let late_ms = if late {
            self.mess.random_range(2 * 3_600_000..72 * 3_600_000)
        } else {
            0
        };
        let device = match (surface, shared_site) {
            (_, Some(_)) => self.ctx.store_device(self.p.site, self.p.idx % 2),
            (Surface::App, None) => self.p.app_dev.clone(),
            (Surface::Mini, None) => self.p.mp_dev.clone(),
            (Surface::Web, None) => self.p.web_dev.clone(),
        };
        let logged_in = match surface {
            Surface::App => self.p.app_logged_in && shared_site.is_none(),
            Surface::Mini => self.p.mp_authorised,
            Surface::Web => false,
        };
        SessionCtx {
            surface,
            device,
            shared_site,
            late_ms,
            logged_in,
            landing,
            referrer: None,
        }
    }

    /// A browsing session starting at `t0`, opened by `referrer` when something opened it;
    /// returns the instant of its last event.
    pub fn session(
        &mut self,
        surface: Surface,
        t0: i64,
        landing: Option<Landing>,
        referrer: Option<&'static str>,
        shared: bool,
    ) -> i64 {
        let site = shared.then(|| self.ctx.t.sites[self.p.site].id);
        let mut s = self.open_session(surface, landing, site);
        s.referrer = referrer;
        let v = self.ctx.t.vocab;
        let mut t = t0;
        let first = v.screens[if s.landing.is_some() { 2 } else { 0 }];
        let kind = if surface == Surface::Web {
            "page"
        } else {
            "screen"
        };
        self.emit(&mut s, kind, first, Map::new(), t);
        let wants_login = match surface {
            Surface::App => !s.logged_in && (shared || self.rng.random_bool(0.5)),
            Surface::Mini => !s.logged_in && self.rng.random_bool(0.45),
            Surface::Web => self.rng.random_bool(0.2),
        };
        if wants_login {
            t += self.rng.random_range(3_000..40_000);
            self.login(&mut s, t);
        }
        let n = 1 + rng::poisson(&mut self.rng, 3.0);
        for _ in 0..n {
            t += self.rng.random_range(2_000..90_000);
            let roll = self.rng.random_range(0..100);
            let item = self.ctx.t.items[self.rng.random_range(0..self.ctx.t.items.len())];
            let mut props = Map::new();
            match roll {
                0..=39 => {
                    let screen = v.screens[self.rng.random_range(0..v.screens.len())];
                    self.emit(&mut s, kind, screen, props, t);
                }
                40..=74 => {
                    props.insert("sku".into(), item.sku.into());
                    props.insert("name".into(), item.name.into());
                    props.insert("price".into(), money(item.price));
                    props.insert("currency".into(), "CNY".into());
                    self.emit(&mut s, "track", v.view_item, props, t);
                }
                75..=84 => {
                    props.insert(
                        "query".into(),
                        item.name.split(' ').next().unwrap_or("").into(),
                    );
                    self.emit(&mut s, "track", v.search, props, t);
                }
                _ => {
                    props.insert("sku".into(), item.sku.into());
                    props.insert("price".into(), money(item.price));
                    props.insert("quantity".into(), 1.into());
                    self.emit(&mut s, "track", v.add_to_cart, props, t);
                }
            }
        }
        t
    }

    fn login(&mut self, s: &mut SessionCtx, t: i64) {
        let mut props = Map::new();
        props.insert(
            "method".into(),
            if s.surface == Surface::Mini {
                "wechat_phone"
            } else {
                "sms_code"
            }
            .into(),
        );
        s.logged_in = true;
        match s.surface {
            Surface::App if s.shared_site.is_none() => self.p.app_logged_in = true,
            Surface::Mini => self.p.mp_authorised = true,
            _ => {}
        }
        let name = self.ctx.t.vocab.login;
        self.emit_with_phone(s, "track", name, props, t);
        self.emit_with_phone(s, "identify", "", Map::new(), t + 50);
    }

    /// A store visit: the customer checks in by scanning the store's QR code; sometimes the
    /// assistant serves them on a shared iPad. The app on a store's iPad runs in store mode,
    /// which tags its sessions with the store as what opened them, as the check-in QR code
    /// does: the session is part of the visit, not a visit to the app.
    pub fn store_visit(&mut self, t: i64) -> i64 {
        self.store_checkin(t + 30_000);
        if self.chance(DefectKind::SharedDevice) {
            // The iPad session is mess: draw it from a stream seeded by the mess stream so that planting it never
            // shifts the journey stream (a clean run has the same journeys).
            let side = rng::stream(self.mess.random(), 5, self.p.idx);
            let journey_rng = std::mem::replace(&mut self.rng, side);
            self.session(Surface::App, t + 120_000, None, Some(referrer::STORE), true);
            self.rng = journey_rng;
        }
        // The visit lasts the same whether or not an iPad was used, so later touches do not move.
        t + 1_200_000
    }

    /// Checking in at the person's store: the QR code opens the mini-program in WeChat, or
    /// the web shop's check-in page in a phone browser. It carries the ids of that app or
    /// browser only: a phone number asked for at check-in would put far more events with
    /// family phones before identity, whose outcome then depends on their arrival order.
    /// Its draws come from streams keyed by the person and the instant, so the journey and
    /// mess streams do not move.
    fn store_checkin(&mut self, t: i64) {
        let key = self.ctx.cfg.seed ^ t as u64;
        let side = rng::stream(key, super::DOMAIN_CHECKIN, self.p.idx);
        let side_mess = rng::stream(key, super::DOMAIN_CHECKIN + 100, self.p.idx);
        let journey_rng = std::mem::replace(&mut self.rng, side);
        let mess = std::mem::replace(&mut self.mess, side_mess);
        let surface = if self.p.has_wechat {
            Surface::Mini
        } else {
            Surface::Web
        };
        let mut s = self.open_session(surface, None, None);
        s.referrer = Some(referrer::STORE);
        let mut props = Map::new();
        props.insert("store_id".into(), self.ctx.t.sites[self.p.site].id.into());
        let name = self.ctx.t.vocab.store_checkin;
        self.emit(&mut s, "track", name, props, t);
        self.rng = journey_rng;
        self.mess = mess;
    }

    /// Ordering and paying inside an SDK surface.
    pub fn order_events(
        &mut self,
        surface: Surface,
        t: i64,
        order_id: &str,
        lines: &[(usize, i64)],
        total: i64,
    ) {
        let mut s = self.open_session(surface, None, None);
        if !s.logged_in {
            self.login(&mut s, t - 60_000);
        }
        let v = self.ctx.t.vocab;
        let items: Vec<Value> = lines
            .iter()
            .map(|(i, q)| {
                let it = self.ctx.t.items[*i];
                json!({"sku": it.sku, "quantity": q, "price": money(it.price)})
            })
            .collect();
        let mut props = Map::new();
        props.insert("order_id".into(), order_id.into());
        props.insert("revenue".into(), money(total));
        props.insert("currency".into(), "CNY".into());
        props.insert("items".into(), Value::Array(items));
        self.emit(&mut s, "track", v.submit_order, props.clone(), t);
        props.remove("items");
        props.insert("payment_method".into(), "wechat_pay".into());
        let paid = t + self.rng.random_range(10_000..120_000);
        self.emit(&mut s, "track", v.pay_order, props, paid);
    }

    fn emit_with_phone(
        &mut self,
        s: &mut SessionCtx,
        kind: &'static str,
        name: &str,
        props: Map<String, Value>,
        t: i64,
    ) {
        let phone = self.p.phone_at(t).to_owned();
        self.emit_inner(s, kind, name, props, t, Some(phone));
    }

    fn emit(
        &mut self,
        s: &mut SessionCtx,
        kind: &'static str,
        name: &str,
        props: Map<String, Value>,
        t: i64,
    ) {
        self.emit_inner(s, kind, name, props, t, None);
    }

    #[expect(
        clippy::too_many_lines,
        reason = "builds one SDK event field by field from the session; the order of random draws is part of the seed's output"
    )]
    fn emit_inner(
        &mut self,
        s: &mut SessionCtx,
        kind: &'static str,
        name: &str,
        mut props: Map<String, Value>,
        t: i64,
        phone: Option<String>,
    ) {
        let t_model = self.ctx.t;
        let (file, scope, lib) = match s.surface {
            Surface::App => (ids::SDK_APP, t_model.app_id, "touchline-sdk-mobile"),
            Surface::Mini => (
                ids::SDK_MINI,
                t_model.mp_app_id,
                "touchline-sdk-miniprogram",
            ),
            Surface::Web => (ids::SDK_WEB, t_model.brand, "touchline-sdk-js"),
        };
        if kind != "identify" {
            props.entry("page").or_insert_with(|| {
                Value::String(if kind == "track" {
                    "-".into()
                } else {
                    name.into()
                })
            });
        }
        if let Some(l) = &s.landing {
            props.insert(l.param.into(), l.click_id.clone().into());
            props.insert("utm_campaign".into(), l.campaign.into());
        }
        if let Some(referrer) = s.referrer {
            props.insert("utm_source".into(), referrer.into());
        }
        let mut ids_out = vec![Identifier::scoped(
            "anonymous_id",
            s.device.anon.clone(),
            scope,
        )];
        let mut context = json!({
            "library": {"name": lib, "version": "3.4.1"},
            "locale": "zh-CN",
            "timezone": "Asia/Shanghai",
            "os": {"name": s.device.os},
            "device": {"model": s.device.model},
        });
        if s.surface == Surface::App {
            context["device"]["id"] = s.device.id.clone().into();
            context["app"] =
                json!({"name": t_model.brand, "version": "5.12.0", "namespace": t_model.app_id});
            ids_out.push(Identifier::global("device_id", s.device.id.clone()));
        }
        if s.surface == Surface::Mini {
            let mut wx = json!({"appId": t_model.mp_app_id, "openId": self.p.mp_openid});
            ids_out.push(Identifier::scoped(
                "wechat_openid",
                self.p.mp_openid.clone(),
                t_model.mp_app_id,
            ));
            if s.logged_in {
                wx["unionId"] = self.p.unionid.clone().into();
                ids_out.push(Identifier::scoped(
                    "wechat_unionid",
                    self.p.unionid.clone(),
                    t_model.open_platform_id,
                ));
            }
            context["wechat"] = wx;
        }
        let user_id = (s.logged_in && s.surface != Surface::Mini).then(|| self.p.user_id.clone());
        if let Some(u) = &user_id {
            ids_out.push(Identifier::scoped("user_id", u.clone(), t_model.app_id));
        }
        if let Some(ph) = &phone {
            ids_out.push(Identifier::global("phone", ph.clone()));
            if self.p.is_member(t) {
                ids_out.push(Identifier::scoped(
                    "member_card",
                    self.p.member_card.clone(),
                    t_model.brand,
                ));
            }
        }
        let mut traits = Map::new();
        if kind == "identify" {
            if let Some(ph) = &phone {
                traits.insert("phone".into(), ph.clone().into());
            }
            context["traits"] = Value::Object(traits);
        }
        let sent = t + self.rng.random_range(500..20_000) + s.late_ms;
        let ev = Event {
            message_id: rng::uuid(&mut self.rng),
            kind,
            event: (!name.is_empty() && kind != "identify").then(|| name.to_owned()),
            anonymous_id: Some(s.device.anon.clone()),
            user_id,
            properties: props,
            context,
            original_timestamp: Value::from(t + s.device.skew_ms),
            sent_at: sent + s.device.skew_ms,
            channel: match s.surface {
                Surface::App => "app",
                Surface::Mini => "mini_program",
                Surface::Web => "web",
            },
            source: self.ctx.layout.files[file].source.clone(),
            identifiers: ids_out,
        };
        self.push_sdk(file, ev, t, s.shared_site, s.late_ms);
    }
}
