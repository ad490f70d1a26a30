//! The one duration type of every setting: Go's grammar (`500ms`, `90s`, `1m30s`, `2h`), parsed
//! and printed one way by the CRD, the operator, local mode and the sidecar.
//!
//! A [`Bounded`] duration carries its allowed range in its type, so the same bounds are the
//! CRD's admission rule (a CEL rule generated into the schema), the operator's validation
//! and the sidecar's parser: nothing the API server admits can make a sidecar exit 64 or
//! overflow a timer.

use std::fmt;
use std::time::Duration;

/// The grammar, as a regular expression for the CRD schema and CEL's `matches()`.
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Longest duration text the CRD admits.
pub const MAX_LEN: usize = 32;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration like 500ms, 90s, 1m30s or 2h")]
    Syntax(String),
    #[error("{value} is outside the allowed range {min} to {max}")]
    OutOfRange { value: String, min: String, max: String },
}

/// Parses Go's grammar with the units ms, s, m and h; `None` on bad syntax or overflow.
pub fn parse_millis(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = s[start..i].parse().ok()?;
        let (factor, width) = match &bytes[i..] {
            [b'm', b's', ..] => (1, 2),
            [b's', ..] => (1_000, 1),
            [b'm', ..] => (60_000, 1),
            [b'h', ..] => (3_600_000, 1),
            _ => return None,
        };
        i += width;
        total = total.checked_add(n.checked_mul(factor)?)?;
    }
    Some(total)
}

/// Prints milliseconds in the same grammar, shortest form: `1h30m`, `1m30s`, `24h`, `1s500ms`,
/// `500ms`, `0s`. Every printed value parses back to itself.
pub fn format_millis(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let parts = [(ms / 3_600_000, "h"), (ms % 3_600_000 / 60_000, "m"), (ms % 60_000 / 1_000, "s"), (ms % 1_000, "ms")];
    parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect()
}

/// A duration between `MIN_MS` and `MAX_MS` milliseconds (both inclusive).
///
/// Deserializing checks only the grammar: an object the API server stored under an older,
/// looser CRD must still be readable so that the operator can say what is wrong with it
/// ([`Bounded::check`] says it). Parsing a setting ([`Bounded::parse`]) checks the range too.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN_MS: u64, const MAX_MS: u64> {
    millis: u64,
}

impl<const MIN_MS: u64, const MAX_MS: u64> Bounded<MIN_MS, MAX_MS> {
    /// A value known to be in range (defaults); out-of-range values are clamped.
    pub const fn from_millis(ms: u64) -> Self {
        let ms = if ms < MIN_MS {
            MIN_MS
        } else if ms > MAX_MS {
            MAX_MS
        } else {
            ms
        };
        Bounded { millis: ms }
    }

    /// A default given as a `std` duration (clamped like [`Bounded::from_millis`]).
    pub fn from_duration(d: Duration) -> Self {
        Self::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Grammar and range.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let millis = parse_millis(s).ok_or_else(|| DurationError::Syntax(s.to_string()))?;
        let d = Bounded { millis };
        d.check()?;
        Ok(d)
    }

    /// The range, for a value that was only read for its grammar.
    pub fn check(&self) -> Result<(), DurationError> {
        if self.millis < MIN_MS || self.millis > MAX_MS {
            return Err(DurationError::OutOfRange { value: self.to_string(), min: Self::min_text(), max: Self::max_text() });
        }
        Ok(())
    }

    pub fn min_text() -> String {
        format_millis(MIN_MS)
    }

    pub fn max_text() -> String {
        format_millis(MAX_MS)
    }

    pub fn as_duration(&self) -> Duration {
        Duration::from_millis(self.millis)
    }

    pub fn as_millis(&self) -> u64 {
        self.millis
    }

    /// `allowed: from 1s to 24h`, for messages.
    pub fn range_text() -> String {
        format!("from {} to {}", Self::min_text(), Self::max_text())
    }

    /// The CEL rule the CRD carries for a field of this type.
    pub fn cel_rule() -> String {
        format!(
            "self.matches('{PATTERN}') && duration(self) >= duration('{}') && duration(self) <= duration('{}')",
            Self::min_text(),
            Self::max_text()
        )
    }

    pub fn cel_message() -> String {
        format!("must be a duration like 500ms, 90s, 1m30s or 2h, {}", Self::range_text())
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> fmt::Display for Bounded<MIN_MS, MAX_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_millis(self.millis))
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> fmt::Debug for Bounded<MIN_MS, MAX_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> serde::Serialize for Bounded<MIN_MS, MAX_MS> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, const MIN_MS: u64, const MAX_MS: u64> serde::Deserialize<'de> for Bounded<MIN_MS, MAX_MS> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let millis = parse_millis(&s).ok_or_else(|| serde::de::Error::custom(DurationError::Syntax(s.clone())))?;
        Ok(Bounded { millis })
    }
}

#[cfg(feature = "crd")]
impl<const MIN_MS: u64, const MAX_MS: u64> schemars::JsonSchema for Bounded<MIN_MS, MAX_MS> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Duration_{MIN_MS}_{MAX_MS}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": PATTERN,
            // A bound on the length keeps the CEL rule's estimated cost within the API
            // server's budget.
            "maxLength": MAX_LEN,
            "x-kubernetes-validations": [{ "rule": Self::cel_rule(), "message": Self::cel_message() }],
        })
    }
}

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// How long a drain may take (the pod's termination grace is derived from it).
pub type DrainTimeout = Bounded<{ 5 * SECOND }, HOUR>;
/// The window over which a drain paces its reconnect instructions; 0s tells everyone at once.
pub type DrainSpread = Bounded<0, { 55 * MINUTE }>;
/// New connections are still taken this long after a drain starts.
pub type DrainAcceptGrace = Bounded<0, MINUTE>;
/// How long a session can be resumed.
pub type ResumeWindow = Bounded<{ 10 * SECOND }, { 24 * HOUR }>;
/// How long a channel's history is kept after its last message.
pub type HistoryTtl = Bounded<SECOND, { 30 * 24 * HOUR }>;
/// How long presence and ephemeral keys live without a refresh.
pub type PresenceTtl = Bounded<SECOND, HOUR>;
/// Every Redis command's own timeout.
pub type RedisTimeout = Bounded<10, MINUTE>;
/// How long a command may keep retrying through a failover.
pub type RedisRetryBudget = Bounded<100, { 10 * MINUTE }>;
/// How often the Redis topology is polled.
pub type TopologyPoll = Bounded<100, { 10 * MINUTE }>;
/// WebSocket pings and the idle limit.
pub type PingInterval = Bounded<SECOND, { 10 * MINUTE }>;
pub type IdleTimeout = Bounded<SECOND, HOUR>;
/// The WebSocket upgrade (and resume) must finish within this.
pub type HandshakeTimeout = Bounded<100, { 5 * MINUTE }>;
/// How often changed sessions are checkpointed.
pub type SessionCheckpoint = Bounded<10, HOUR>;
/// How long load must stay low before the autoscaler drains a pod away.
pub type ScaleDownStabilization = Bounded<0, { 24 * HOUR }>;

#[cfg(test)]
mod tests {
    use super::*;

    type Any = Bounded<0, { u64::MAX }>;

    #[test]
    fn go_grammar_compound_and_single() {
        assert_eq!(parse_millis("500ms"), Some(500));
        assert_eq!(parse_millis("90s"), Some(90_000));
        assert_eq!(parse_millis("1m30s"), Some(90_000));
        assert_eq!(parse_millis("59m57s"), Some(3_597_000));
        assert_eq!(parse_millis("1h0m5s100ms"), Some(3_605_100));
        assert_eq!(parse_millis("0s"), Some(0));
        for bad in ["", "5", "s", "1.5s", "-1s", "1d", "1m30", "ten minutes", "1 s", "18446744073709551615s"] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_values_are_refused_not_wrapped() {
        assert_eq!(parse_millis("18446744073709551615s"), None, "overflows u64 milliseconds");
        assert!(matches!(HistoryTtl::parse("9223372036854775s"), Err(DurationError::OutOfRange { .. })), "fits u64 ms, not the bound");
        assert!(matches!(DrainTimeout::parse("18446744073709551615s"), Err(DurationError::Syntax(_))));
        let err = HistoryTtl::parse("9223372036s").expect_err("beyond 30 days");
        assert_eq!(err.to_string(), "2562047h47m16s is outside the allowed range 1s to 720h");
    }

    #[test]
    fn printing_parses_back_to_the_same_value() {
        for ms in [0, 1, 500, 1_000, 1_500, 59_999, 60_000, 90_000, 3_597_000, 3_600_000, 5_400_000, 86_400_000, 123_456_789] {
            let text = format_millis(ms);
            assert_eq!(parse_millis(&text), Some(ms), "{ms} printed as {text}");
        }
        assert_eq!(format_millis(90_000), "1m30s");
        assert_eq!(format_millis(5_400_000), "1h30m");
        assert_eq!(format_millis(86_400_000), "24h");
        assert_eq!(Any::from_millis(1_500).to_string(), "1s500ms");
    }

    #[test]
    fn bounds_are_checked_on_parse_and_named_in_the_error() {
        assert_eq!(DrainTimeout::parse("1m30s").map(|d| d.as_duration()), Ok(Duration::from_secs(90)));
        let err = DrainTimeout::parse("2s").expect_err("below 5s");
        assert!(err.to_string().contains("allowed range 5s to 1h"), "{err}");
        assert_eq!(DrainSpread::parse("0s").map(|d| d.as_millis()), Ok(0));
        assert!(ResumeWindow::cel_rule().contains("duration('10s')"));
    }

    #[test]
    fn deserializing_reads_grammar_only_so_the_operator_can_explain() {
        let d: DrainTimeout = serde_json::from_str("\"2s\"").expect("grammar is fine");
        assert!(d.check().is_err());
        assert!(serde_json::from_str::<DrainTimeout>("\"2 seconds\"").is_err());
        assert_eq!(serde_json::to_string(&d).expect("json"), "\"2s\"");
    }
}
