//! Telling people: the texts customers and help desks get. Today that is the
//! plain-language order status ([`status_text`]); notification triggers, the outbox and
//! the webhook dispatcher join it here.

pub mod status_text;
