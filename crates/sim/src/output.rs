//! Writing a run to disk: one file per source, the ground truth under `truth/`, and
//! `manifest.json`. Every line written is counted so the truth can cite `file:line`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, TimeZone};
use chrono_tz::Tz;

use crate::SimError;
use crate::engine::{Ctx, PersonOut};
use crate::layout::FileFormat;
use crate::person::Person;
use crate::record::Field;

/// Naive local time `YYYY-MM-DD HH:MM:SS` of `ms` in `tz`.
pub fn format_naive(ms: i64, tz: Tz) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(dt) => dt
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => String::new(),
    }
}

/// Naive wall time of `ms` at a fixed offset (a clock that ignored a DST change).
pub fn format_with_offset(ms: i64, offset_s: i32) -> String {
    match DateTime::from_timestamp_millis(ms + i64::from(offset_s) * 1000) {
        Some(dt) => dt.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string(),
        None => String::new(),
    }
}

/// RFC 3339 with the zone's offset, whole seconds.
pub fn format_iso(ms: i64, tz: Tz) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(dt) => dt
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => String::new(),
    }
}

/// The local calendar day of `ms` in `tz`, as days from the common era (an ordering key).
pub fn local_day_index(ms: i64, tz: Tz, _start_ms: i64) -> i64 {
    DateTime::from_timestamp_millis(ms)
        .map(|dt| i64::from(dt.with_timezone(&tz).date_naive().num_days_from_ce()))
        .unwrap_or(0)
}

/// A counted, buffered line writer.
#[derive(Debug)]
pub struct Sink {
    path: PathBuf,
    w: BufWriter<File>,
    /// Lines written so far, headers included.
    pub lines: u64,
}

impl Sink {
    fn create(root: &Path, rel: &str) -> Result<Sink, SimError> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
        }
        let f = File::create(&path).map_err(|e| SimError::io(&path, e))?;
        Ok(Sink {
            w: BufWriter::with_capacity(1 << 17, f),
            path,
            lines: 0,
        })
    }

    /// Writes one line (a newline is appended).
    pub fn line(&mut self, s: &str) -> Result<(), SimError> {
        self.w
            .write_all(s.as_bytes())
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(|e| SimError::io(&self.path, e))?;
        self.lines += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SimError> {
        self.w.flush().map_err(|e| SimError::io(&self.path, e))
    }
}

fn csv_line(cells: &[Field]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        c.write_csv(&mut s);
    }
    s
}

fn text(v: impl Into<String>) -> Field {
    Field::Str(v.into())
}

/// Paths of the truth files, relative to the output directory.
pub mod truth_paths {
    /// `file,line,key,person_id,true_time_ms` for every data line.
    pub const RECORDS: &str = "truth/records.csv";
    /// `file,line,key,kind,detail` for every planted defect.
    pub const DEFECTS: &str = "truth/defects.csv";
    /// Every person's true identifiers.
    pub const PERSONS: &str = "truth/persons.csv";
    /// Every journey with its conversion probability and outcome.
    pub const JOURNEYS: &str = "truth/journeys.csv";
    /// Who churned and when.
    pub const CHURN: &str = "truth/churn.csv";
    /// Who opted out of marketing and when.
    pub const OPTOUTS: &str = "truth/optouts.csv";
    /// `phone,person_id,valid_from_ms,valid_to_ms,sharing` for every phone number more than
    /// one person holds (a family's, a recycled one); empty bounds are open.
    pub const PHONE_HOLDERS: &str = "truth/phone_holders.csv";
    /// Store devices shared by many customers.
    pub const SHARED_DEVICES: &str = "truth/shared_devices.csv";
    /// The conversion model and the channels' true contributions.
    pub const MODEL: &str = "truth/conversion_model.json";
}

/// All open files of a run.
#[derive(Debug)]
pub struct Output {
    /// The output directory.
    pub root: PathBuf,
    /// Data files, in layout order.
    pub files: Vec<Sink>,
    records: Sink,
    defects: Sink,
    persons: Sink,
    journeys: Sink,
    churn: Sink,
    optouts: Sink,
    phone_holders: Sink,
    buf: String,
}

impl Output {
    /// Creates every file of `ctx`'s layout and the truth files, with their headers.
    pub fn create(root: &Path, ctx: &Ctx) -> Result<Output, SimError> {
        let mut files = Vec::new();
        for spec in &ctx.layout.files {
            let mut sink = Sink::create(root, &spec.path)?;
            if spec.format == FileFormat::Csv {
                sink.line(&spec.header.join(","))?;
            }
            files.push(sink);
        }
        let open = |rel: &str, header: &str| -> Result<Sink, SimError> {
            let mut s = Sink::create(root, rel)?;
            s.line(header)?;
            Ok(s)
        };
        use truth_paths as tp;
        let records = open(tp::RECORDS, "file,line,key,person_id,true_time_ms")?;
        let defects = open(tp::DEFECTS, "file,line,key,kind,detail")?;
        let persons = open(
            tp::PERSONS,
            "person_id,phone,email,member_card,crm_id,user_id,wechat_unionid,mp_openid,oa_openid,\
             marketplace_buyer_id,app_device_id,app_anonymous_id,mp_anonymous_id,web_anonymous_id,\
             has_app,has_wechat,member_from_ms,home_site,propensity",
        )?;
        let journeys = open(
            tp::JOURNEYS,
            "person_id,journey,start_ms,touches,p_convert,converted,conversion_channel,conversion_ms,order_id,value",
        )?;
        let churn = open(tp::CHURN, "person_id,churn_date,churn_ms,last_activity_ms")?;
        let optouts = open(tp::OPTOUTS, "person_id,crm_id,opt_out_ms")?;
        let phone_holders = open(
            tp::PHONE_HOLDERS,
            "phone,person_id,valid_from_ms,valid_to_ms,sharing",
        )?;
        let mut shared = open(tp::SHARED_DEVICES, "device_id,site")?;
        for (i, site) in ctx.t.sites.iter().enumerate() {
            for n in 0..2 {
                shared.line(&csv_line(&[text(ctx.store_device(i, n).id), text(site.id)]))?;
            }
        }
        shared.flush()?;
        Ok(Output {
            root: root.to_path_buf(),
            files,
            records,
            defects,
            persons,
            journeys,
            churn,
            optouts,
            phone_holders,
            buf: String::new(),
        })
    }

    /// Writes one person's records and truth.
    #[expect(
        clippy::too_many_lines,
        reason = "writes one person's rows to every truth file in turn"
    )]
    pub fn write_person(&mut self, ctx: &Ctx, p: &Person, out: &PersonOut) -> Result<(), SimError> {
        for rec in &out.records {
            let spec = &ctx.layout.files[rec.file];
            self.buf.clear();
            rec.write_line(spec, &mut self.buf)
                .map_err(SimError::Json)?;
            let sink = &mut self.files[rec.file];
            sink.line(&self.buf)?;
            let line = sink.lines;
            let key = text(rec.key.clone());
            self.records.line(&csv_line(&[
                text(spec.path.clone()),
                Field::Int(line as i64),
                key.clone(),
                text(p.id.clone()),
                Field::Int(rec.true_ms),
            ]))?;
            for d in &rec.defects {
                self.defects.line(&csv_line(&[
                    text(spec.path.clone()),
                    Field::Int(line as i64),
                    key.clone(),
                    text(d.kind.name()),
                    text(d.detail.clone()),
                ]))?;
            }
        }
        let opt = |o: &Option<String>| o.clone().map_or(Field::Null, Field::Str);
        let ever_member = p.member_from.is_some();
        self.persons.line(&csv_line(&[
            text(p.id.clone()),
            text(p.phone.clone()),
            opt(&p.email),
            if ever_member {
                text(p.member_card.clone())
            } else {
                Field::Null
            },
            if ever_member {
                text(p.crm_id.clone())
            } else {
                Field::Null
            },
            text(p.user_id.clone()),
            text(p.unionid.clone()),
            text(p.mp_openid.clone()),
            text(p.oa_openid.clone()),
            text(p.market_uid.clone()),
            text(p.app_dev.id.clone()),
            text(p.app_dev.anon.clone()),
            text(p.mp_dev.anon.clone()),
            text(p.web_dev.anon.clone()),
            Field::Bool(p.has_app),
            Field::Bool(p.has_wechat),
            p.member_from.map_or(Field::Null, Field::Int),
            text(ctx.t.sites[p.site].id),
            text(format!("{:.4}", p.propensity)),
        ]))?;
        for j in &out.journeys {
            let touches: Vec<&str> = j.touches.iter().map(|t| t.name()).collect();
            let (ch, at, order, value) = match &j.conversion {
                Some((c, at, o, v)) => (
                    text(c.name()),
                    Field::Int(*at),
                    text(o.clone()),
                    Field::Money(*v),
                ),
                None => (Field::Null, Field::Null, Field::Null, Field::Null),
            };
            self.journeys.line(&csv_line(&[
                text(p.id.clone()),
                Field::Int(i64::from(j.n)),
                Field::Int(j.start_ms),
                text(touches.join(">")),
                text(format!("{:.6}", j.p)),
                Field::Bool(j.converted),
                ch,
                at,
                order,
                value,
            ]))?;
        }
        if let Some(c) = p.churn_ms.filter(|c| *c < ctx.end_ms) {
            let date = DateTime::from_timestamp_millis(c)
                .map(|d| d.date_naive().to_string())
                .unwrap_or_default();
            self.churn.line(&csv_line(&[
                text(p.id.clone()),
                text(date),
                Field::Int(c),
                out.last_activity_ms.map_or(Field::Null, Field::Int),
            ]))?;
        }
        if let Some(o) = p.optout_ms {
            self.optouts.line(&csv_line(&[
                text(p.id.clone()),
                text(p.crm_id.clone()),
                Field::Int(o),
            ]))?;
        }
        self.write_phone_holding(ctx, p)
    }

    /// The person's holding of a number their household shares, if any.
    fn write_phone_holding(&mut self, ctx: &Ctx, p: &Person) -> Result<(), SimError> {
        let Some(h) = crate::household::household_of(&ctx.cfg, p.idx) else {
            return Ok(());
        };
        let (number, from, to) = match (h.sharing, &p.phone_change) {
            (crate::household::Sharing::Family, _) | (_, None) => (&p.phone, None, None),
            (crate::household::Sharing::Recycled, Some((at, number))) if p.idx == h.second => {
                (number, Some(*at), None)
            }
            (crate::household::Sharing::Recycled, Some((at, _))) => (&p.phone, None, Some(*at)),
        };
        self.phone_holders.line(&csv_line(&[
            text(number.clone()),
            text(p.id.clone()),
            from.map_or(Field::Null, Field::Int),
            to.map_or(Field::Null, Field::Int),
            text(h.sharing.name()),
        ]))
    }

    /// Appends an aggregate row (no true person) to data file `file`; returns its line number.
    pub fn write_aggregate(
        &mut self,
        ctx: &Ctx,
        file: usize,
        key: &str,
        cells: &[Field],
        true_ms: i64,
        defect: Option<(&str, String)>,
    ) -> Result<u64, SimError> {
        let sink = &mut self.files[file];
        sink.line(&csv_line(cells))?;
        let line = sink.lines;
        let path = text(ctx.layout.files[file].path.clone());
        self.records.line(&csv_line(&[
            path.clone(),
            Field::Int(line as i64),
            text(key),
            Field::Null,
            Field::Int(true_ms),
        ]))?;
        if let Some((kind, detail)) = defect {
            self.defects.line(&csv_line(&[
                path,
                Field::Int(line as i64),
                text(key),
                text(kind),
                text(detail),
            ]))?;
        }
        Ok(line)
    }

    /// Flushes everything.
    pub fn flush(&mut self) -> Result<(), SimError> {
        for s in &mut self.files {
            s.flush()?;
        }
        for s in [
            &mut self.records,
            &mut self.defects,
            &mut self.persons,
            &mut self.journeys,
            &mut self.churn,
            &mut self.optouts,
            &mut self.phone_holders,
        ] {
            s.flush()?;
        }
        Ok(())
    }
}

/// Midnight of local day `day` (days from the common era) in `tz`, as epoch ms.
pub fn local_midnight_ms(day: i64, tz: Tz) -> i64 {
    let Some(date) = i32::try_from(day)
        .ok()
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
    else {
        return 0;
    };
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .map_or(0, |d| d.timestamp_millis())
}
