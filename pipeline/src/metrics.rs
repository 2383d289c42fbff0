//! The Prometheus text exposition format, for the `/metrics` of `orderpulse run` (the
//! stream processor, HTTP ingest) and of `orderpulse consume` (consumer lag). Pure text:
//! each endpoint gathers its numbers and writes them here.

use std::fmt::Write;

/// What a metric family is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts aside).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A sample's labels: names and values.
pub type Labels = Vec<(&'static str, String)>;

/// A page of metric families in the text format.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// One family: its help and type lines, then one sample per label set.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                let labels: Vec<String> = labels.iter().map(|(label, value)| format!("{label}=\"{}\"", escape(value))).collect();
                let _ = write!(self.text, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(self.text, " {value}");
        }
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help, [(Labels::new(), value)]);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_in_the_text_format() {
        let mut page = Exposition::default();
        page.single("op_orders", Kind::Gauge, "Orders held.", 3.0);
        let lag = [(vec![("topic", "orders".to_owned()), ("partition", "0".to_owned())], 12.0), (vec![("topic", "a\"b\\c\nd".to_owned())], 0.5)];
        page.family("op_lag", Kind::Counter, "Lag.", lag);
        page.family("op_none", Kind::Gauge, "Nothing yet.", []);
        let expected = "# HELP op_orders Orders held.\n# TYPE op_orders gauge\nop_orders 3\n\
                        # HELP op_lag Lag.\n# TYPE op_lag counter\nop_lag{topic=\"orders\",partition=\"0\"} 12\n\
                        op_lag{topic=\"a\\\"b\\\\c\\nd\"} 0.5\n\
                        # HELP op_none Nothing yet.\n# TYPE op_none gauge\n";
        assert_eq!(page.finish(), expected);
    }
}
