//! "Where is my order?" in plain language: an order's state turned into one or two
//! sentences a help-desk bot can send as they are.
//!
//! The facts (status, carrier, where and when the parcel was last seen, the ETA window)
//! are gathered here, in the customer's local time; the words are in one minijinja
//! template per language (`pipeline/templates/status/<language>.jinja`), so a language is
//! added by adding a template, with no code. Times are told relative to `now` ("this
//! morning", "yesterday evening"), in the offset of the latest scan (the parcel is near
//! the customer), else of the checkout.

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use minijinja::Environment;
use serde::Serialize;

use crate::model::{ParcelStatus, Timestamp, Window};
use crate::stream::order::{OrderStatus, OrderView};

/// The languages built in, with their templates.
const BUILTIN: [(&str, &str); 2] = [("en", include_str!("../../templates/status/en.jinja")), ("de", include_str!("../../templates/status/de.jinja"))];

/// The language used when the caller accepts none of ours.
pub const DEFAULT_LANGUAGE: &str = "en";

/// The status templates, one per language.
pub struct StatusTexts {
    env: Environment<'static>,
    languages: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("status template {language:?}: {message}")]
    Template { language: String, message: String },
    #[error("status templates folder {path}: {message}")]
    Folder { path: String, message: String },
}

impl StatusTexts {
    /// The built-in languages, plus (and overridden by) every `<language>.jinja` in `dir`.
    pub fn load(dir: Option<&std::path::Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        let mut templates: Vec<(String, String)> = BUILTIN.iter().map(|(l, t)| (l.to_string(), t.to_string())).collect();
        if let Some(dir) = dir {
            let folder_error = |e: std::io::Error| TemplateError::Folder { path: dir.display().to_string(), message: e.to_string() };
            for entry in std::fs::read_dir(dir).map_err(folder_error)? {
                let path = entry.map_err(folder_error)?.path();
                let Some(language) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jinja")) else { continue };
                let text = std::fs::read_to_string(&path).map_err(folder_error)?;
                templates.retain(|(l, _)| l != language);
                templates.push((language.to_ascii_lowercase(), text));
            }
        }
        let mut languages = Vec::new();
        for (language, text) in templates {
            env.add_template_owned(language.clone(), text).map_err(|e| TemplateError::Template { language: language.clone(), message: e.to_string() })?;
            languages.push(language);
        }
        languages.sort();
        Ok(StatusTexts { env, languages })
    }

    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// The language to answer in for an `Accept-Language` header.
    pub fn negotiate(&self, accept_language: Option<&str>) -> &str {
        let offered = |tag: &str| self.languages.iter().find(|l| l.eq_ignore_ascii_case(tag)).map(String::as_str);
        accept_language
            .map(preferences)
            .unwrap_or_default()
            .into_iter()
            .find_map(|tag| offered(&tag).or_else(|| offered(tag.split('-').next().unwrap_or(&tag))))
            .unwrap_or(DEFAULT_LANGUAGE)
    }

    /// The order's status in `language`, as of `now`.
    pub fn render(&self, language: &str, order: &OrderView<'_>, now: DateTime<Utc>) -> Result<String, TemplateError> {
        let facts = StatusFacts::of(order, now);
        let template = self.env.get_template(language).map_err(|e| TemplateError::Template { language: language.to_owned(), message: e.to_string() })?;
        let text =
            template.render(minijinja::value::Serde(&facts)).map_err(|e| TemplateError::Template { language: language.to_owned(), message: e.to_string() })?;
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// The language tags of an `Accept-Language` header, most wanted first (`q=0` dropped).
fn preferences(header: &str) -> Vec<String> {
    let mut tags: Vec<(f32, usize, String)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (!tag.is_empty() && tag != "*" && q > 0.0).then(|| (q, i, tag.to_ascii_lowercase()))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|(_, _, tag)| tag).collect()
}

/// A moment as the templates tell it.
#[derive(Debug, Serialize, PartialEq)]
struct Moment {
    /// `today`, `yesterday`, `earlier` or `later`, relative to now in the same offset.
    day: &'static str,
    /// `morning` (5-12), `afternoon` (12-17), `evening` (17-22), `night`.
    part: &'static str,
    /// 0 = Monday.
    weekday: u32,
    mday: u32,
    month: u32,
    /// `HH:MM`.
    time: String,
}

impl Moment {
    fn at(micros: i64, offset: FixedOffset, now: DateTime<Utc>) -> Self {
        let local = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().with_timezone(&offset);
        let today = now.with_timezone(&offset).date_naive();
        let days = (local.date_naive() - today).num_days();
        let day = match days {
            0 => "today",
            -1 => "yesterday",
            d if d < 0 => "earlier",
            _ => "later",
        };
        let part = match local.hour() {
            5..=11 => "morning",
            12..=16 => "afternoon",
            17..=21 => "evening",
            _ => "night",
        };
        Moment {
            day,
            part,
            weekday: local.weekday().num_days_from_monday(),
            mday: local.day(),
            month: local.month(),
            time: format!("{:02}:{:02}", local.hour(), local.minute()),
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
struct EtaFacts {
    from: Moment,
    to: Moment,
    same_day: bool,
}

/// Everything a status template may use.
#[derive(Debug, Serialize)]
struct StatusFacts {
    order_id: String,
    status: &'static str,
    carrier: Option<String>,
    city: Option<String>,
    sub_status: Option<&'static str>,
    scan: Option<Moment>,
    delivered: Option<Moment>,
    eta: Option<EtaFacts>,
    ship_by: Option<Moment>,
}

/// How people write a carrier's name.
pub fn carrier_name(code: &str) -> String {
    match code {
        "ups" => "UPS".into(),
        "fedex" => "FedEx".into(),
        "usps" => "USPS".into(),
        "dhl" => "DHL".into(),
        "sf_express" => "SF Express".into(),
        "cainiao" => "Cainiao".into(),
        other => {
            let mut words: Vec<String> = other
                .split(['_', '-'])
                .map(|w| {
                    let mut chars = w.chars();
                    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
                })
                .collect();
            words.retain(|w| !w.is_empty());
            words.join(" ")
        }
    }
}

impl StatusFacts {
    fn of(view: &OrderView<'_>, now: DateTime<Utc>) -> Self {
        let status = view.status();
        // The parcel the answer is about: the most recently scanned one still on its
        // way, else the most recently scanned one.
        let latest = |open_only: bool| {
            view.parcels
                .iter()
                .filter(|p| !open_only || !matches!(p.status(), Some(ParcelStatus::Delivered | ParcelStatus::ReturnedToSender)))
                .filter_map(|p| Some((p, p.scans.last()?)))
                .max_by_key(|(_, s)| (s.at.micros, s.id))
        };
        let focus = latest(true).or_else(|| latest(false));
        let parcel = focus.map(|(p, _)| *p).or_else(|| view.parcels.first().copied());
        let scan = focus.map(|(_, s)| s);
        let offset_minutes = scan.map(|s| s.at.offset_minutes).or(view.order.checkout.as_ref().map(|c| c.at.offset_minutes)).unwrap_or(0);
        let offset = FixedOffset::east_opt(i32::from(offset_minutes) * 60).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
        let moment = |t: Timestamp| Moment::at(t.micros, offset, now);
        let delivered = view.parcels.iter().filter_map(|p| p.first(ParcelStatus::Delivered)).max_by_key(|s| s.at.micros);
        let eta = view.current_eta().filter(|_| !status.is_final()).map(|w: Window| {
            let (from, to) = (moment(w.from), moment(w.to));
            let same_day = (from.mday, from.month) == (to.mday, to.month);
            EtaFacts { from, to, same_day }
        });
        StatusFacts {
            order_id: view.order.order_id.to_string(),
            status: status.as_str(),
            carrier: parcel.map(|p| carrier_name(&p.carrier)),
            city: scan.and_then(|s| s.texts.city.as_deref()).or_else(|| delivered.and_then(|s| s.texts.city.as_deref())).map(str::to_owned),
            sub_status: scan.and_then(|s| s.sub_status).map(|s| s.as_str()),
            scan: scan.map(|s| moment(s.at)),
            delivered: delivered.map(|s| moment(s.at)),
            eta,
            ship_by: view
                .order
                .checkout
                .as_ref()
                .and_then(|c| c.ship_by)
                .filter(|_| matches!(status, OrderStatus::Created | OrderStatus::Paid | OrderStatus::Fulfilling))
                .map(moment),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::SubStatus;
    use crate::stream::order::{parcel_key, Checkout, Mark, OrderState, ParcelState, Scan, ScanTexts};

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn scan(time: &str, status: ParcelStatus, city: &str) -> Scan {
        Scan {
            at: at(time),
            id: time.len() as u64 + status as u64,
            status,
            sub_status: None,
            texts: Arc::new(ScanTexts { city: Some(city.into()), country: Some("DE".into()), ..ScanTexts::default() }),
            estimated_delivery: None,
        }
    }

    fn order(scans: Vec<Scan>) -> (OrderState, ParcelState) {
        let mut order = OrderState::new("12345");
        order.set_checkout(Checkout {
            at: at("2026-11-23T09:00:00+01:00"),
            id: 1,
            channel: None,
            customer_country: Some("DE".into()),
            customer_region: Some("BE".into()),
            customer_postal_code: None,
            notify: vec![],
            items: None,
            total: None,
            ship_by: Some(at("2026-11-24T18:00:00+01:00")),
            promised_delivery: Some(Window { from: at("2026-11-26T10:00:00+01:00"), to: at("2026-11-26T14:00:00+01:00") }),
        });
        let mut parcel = ParcelState::new("dhl", "JD014600006281");
        parcel.ship(Mark { at: at("2026-11-24T08:00:00+01:00"), id: 2, detail: Some("express".into()) }, "12345");
        for s in scans {
            parcel.add_scan(s);
        }
        order.own_parcel(&parcel_key("dhl", "JD014600006281"));
        (order, parcel)
    }

    fn say(language: &str, order: &OrderState, parcels: &[&ParcelState], now: &str) -> String {
        let texts = StatusTexts::load(None).unwrap();
        let now = DateTime::parse_from_rfc3339(now).unwrap().to_utc();
        texts.render(language, &OrderView { order, parcels }, now).unwrap()
    }

    #[test]
    fn the_status_reads_like_a_person_wrote_it() {
        let now = "2026-11-24T15:00:00+01:00";
        let (o, p) = order(vec![scan("2026-11-24T09:30:00+01:00", ParcelStatus::InTransit, "Leipzig")]);
        assert_eq!(
            say("en", &o, &[&p], now),
            "Your order 12345 left the DHL hub in Leipzig this morning and is expected Thursday, 26 November, between 10:00 and 14:00."
        );
        assert_eq!(
            say("de", &o, &[&p], now),
            "Ihre Bestellung 12345 hat heute Morgen das DHL-Zentrum in Leipzig verlassen und wird am Donnerstag, 26. November zwischen 10:00 und 14:00 Uhr erwartet."
        );
        let (o, p) = order(vec![
            scan("2026-11-24T09:30:00+01:00", ParcelStatus::InTransit, "Leipzig"),
            scan("2026-11-25T19:10:00+01:00", ParcelStatus::Delivered, "Berlin"),
        ]);
        assert_eq!(say("en", &o, &[&p], "2026-11-26T08:00:00+01:00"), "Your order 12345 was delivered yesterday evening in Berlin.");
        let (o, _) = order(vec![]);
        assert_eq!(
            say("en", &o, &[], now),
            "We have your order 12345 and are getting it ready to ship; it is due to leave our warehouse by Tuesday, 24 November."
        );
        let mut exception = scan("2026-11-24T09:30:00+01:00", ParcelStatus::Exception, "Leipzig");
        exception.sub_status = Some(SubStatus::Weather);
        let (o, p) = order(vec![exception]);
        assert_eq!(say("en", &o, &[&p], now), "Your order 12345 is delayed by weather. We are on it and will keep you posted.");
    }

    #[test]
    fn every_status_has_words_in_every_language() {
        let texts = StatusTexts::load(None).unwrap();
        let now = Utc::now();
        for status in ParcelStatus::ALL {
            let (o, p) = order(vec![scan("2026-11-24T09:30:00+01:00", *status, "Leipzig")]);
            for language in texts.languages() {
                let text = texts.render(language, &OrderView { order: &o, parcels: &[&p] }, now).unwrap();
                assert!(text.contains("12345") && text.ends_with('.'), "{language} {status}: {text}");
            }
        }
    }

    #[test]
    fn the_language_is_the_most_wanted_one_we_have() {
        let texts = StatusTexts::load(None).unwrap();
        let cases = [
            (None, "en"),
            (Some("de-DE,de;q=0.9,en;q=0.8"), "de"),
            (Some("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7"), "en"),
            (Some("en;q=0.5, de"), "de"),
            (Some("de;q=0, *;q=0.5"), "en"),
            (Some("garbage;;q=x"), "en"),
        ];
        for (header, expected) in cases {
            assert_eq!(texts.negotiate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn carrier_codes_become_names() {
        for (code, name) in [("dhl", "DHL"), ("sf_express", "SF Express"), ("royal_mail", "Royal Mail"), ("acme", "Acme")] {
            assert_eq!(carrier_name(code), name);
        }
    }
}
