//! The contract's closed vocabularies. Each enum's strings are exactly the contract's, and
//! `ALL` lists every value so tests and the simulator can iterate over them.

/// Declares a closed vocabulary: an enum, its contract strings, parsing and `ALL`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in contract order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The contract's string for this value.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the contract's string; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use vocabulary;

vocabulary! {
    /// The contract's `type` field.
    EventType {
        OrderCreated = "order.created",
        OrderPaid = "order.paid",
        OrderFulfillmentStarted = "order.fulfillment_started",
        OrderShipped = "order.shipped",
        OrderCompleted = "order.completed",
        OrderCancelled = "order.cancelled",
        OrderReturnRequested = "order.return_requested",
        CarrierScan = "carrier.scan",
        TicketOpened = "ticket.opened",
        TicketEscalated = "ticket.escalated",
        TicketResolved = "ticket.resolved",
    }
}

impl EventType {
    /// The stream, and so the lake table, that carries this type.
    pub fn stream(self) -> Stream {
        match self {
            EventType::CarrierScan => Stream::Carrier,
            EventType::TicketOpened | EventType::TicketEscalated | EventType::TicketResolved => Stream::Tickets,
            _ => Stream::Orders,
        }
    }
}

vocabulary! {
    /// The three input streams.
    Stream {
        Orders = "orders",
        Carrier = "carrier",
        Tickets = "tickets",
    }
}

vocabulary! {
    /// Canonical parcel status: the lifecycle of a parcel.
    ParcelStatus {
        InfoReceived = "info_received",
        InTransit = "in_transit",
        OutForDelivery = "out_for_delivery",
        FailedAttempt = "failed_attempt",
        AvailableForPickup = "available_for_pickup",
        Delivered = "delivered",
        Exception = "exception",
        ReturnedToSender = "returned_to_sender",
        Unknown = "unknown",
    }
}

vocabulary! {
    /// Canonical sub-status; the contract defines them for `exception` scans.
    SubStatus {
        Delayed = "delayed",
        Weather = "weather",
        AddressIssue = "address_issue",
        Damaged = "damaged",
        Lost = "lost",
        CustomsHold = "customs_hold",
        Refused = "refused",
        HeldByCarrier = "held_by_carrier",
        Other = "other",
    }
}

vocabulary! {
    /// Channels a customer agreed to be notified on.
    NotifyChannel {
        Email = "email",
        Sms = "sms",
        Push = "push",
        InApp = "in_app",
    }
}

vocabulary! {
    /// Why a support ticket was opened.
    TicketCategory {
        WhereIsMyOrder = "where_is_my_order",
        Delay = "delay",
        Damaged = "damaged",
        WrongItem = "wrong_item",
        Return = "return",
        AddressChange = "address_change",
        Other = "other",
    }
}

vocabulary! {
    /// Where a support ticket came in.
    TicketChannel {
        Chat = "chat",
        Email = "email",
        Phone = "phone",
        SelfService = "self_service",
        Bot = "bot",
    }
}

vocabulary! {
    /// Ticket priority.
    Priority {
        Low = "low",
        Normal = "normal",
        High = "high",
        Urgent = "urgent",
    }
}

vocabulary! {
    /// How a ticket was resolved.
    Resolution {
        SelfService = "self_service",
        AutoReply = "auto_reply",
        Agent = "agent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_contract_string() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        for s in ParcelStatus::ALL {
            assert_eq!(ParcelStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(ParcelStatus::parse("In_Transit"), None);
    }

    #[test]
    fn types_map_to_their_streams() {
        let cases = [
            (EventType::OrderCreated, Stream::Orders),
            (EventType::OrderReturnRequested, Stream::Orders),
            (EventType::CarrierScan, Stream::Carrier),
            (EventType::TicketOpened, Stream::Tickets),
            (EventType::TicketResolved, Stream::Tickets),
        ];
        for (event_type, stream) in cases {
            assert_eq!(event_type.stream(), stream, "{event_type}");
        }
    }
}
