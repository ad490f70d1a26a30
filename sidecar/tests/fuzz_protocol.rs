//! Bounded fuzzing of everything a client sends that the sidecar parses: client frames
//! (`parse_request`) and the resume's `?since=` positions (`parse_positions`). No nightly
//! toolchain here, so no libFuzzer: the committed corpus (`tests/fuzz-corpus/`, seeded with
//! the malformed inputs an outside test tried and the shapes of every op) is run as is, then
//! mutated by a seeded generator (byte flips, JSON tokens spliced in, cuts, crossovers
//! between seeds) for a bounded number of inputs, each checked for what a parse promises:
//! no panic; an error names a code and says why; an accepted frame holds only valid names,
//! JSON data and offsets within range. A failing input is printed so it can join the corpus.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use socketfleet_sidecar::delivery::offset::Offset;
use socketfleet_sidecar::edge::protocol::{Op, ProtocolError, parse_positions, parse_request, valid_channel, valid_pid};

/// Inputs generated per run, and a time bound in case the machine is slow.
const MUTATIONS: usize = 40_000;
const TIME_BOUND: Duration = Duration::from_secs(20);

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"op\"",
    "\"subscribe\"",
    "\"publish\"",
    "\"history\"",
    "\"refresh\"",
    "\"channel\"",
    "\"since\"",
    "\"offset\"",
    "\"epoch\"",
    "\"data\"",
    "\"pid\"",
    "\"id\"",
    "\"limit\"",
    "\"ttlMs\"",
    "\"key\"",
    "\"token\"",
    "\"1-1\"",
    "\"a{b}\"",
    "\u{1F600}",
    " ",
    "\n",
];

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the corpus folder")
        .map(|e| e.expect("an entry").path())
        .map(|p| (p.file_name().expect("a name").to_string_lossy().into_owned(), std::fs::read_to_string(&p).expect("a text seed")))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 20, "the corpus is there");
    seeds
}

fn offset_in_range(o: &Offset) -> bool {
    o.ms <= Offset::MAX_PART && o.seq <= Offset::MAX_PART
}

/// What parsing one input promises, whatever the input.
fn check(input: &str) {
    match parse_request(input) {
        Err(ProtocolError { code, message, .. }) => {
            assert!(!message.is_empty(), "{input:?}: an error without a message");
            assert!(!code.as_str().is_empty());
        }
        Ok(req) => {
            let channel_ok = |c: &str| assert!(valid_channel(c), "{input:?}: accepted channel {c:?}");
            match &req.op {
                Op::Subscribe { channel, since } | Op::History { channel, since, .. } => {
                    channel_ok(channel);
                    if let Some(p) = since {
                        assert!(offset_in_range(&p.offset), "{input:?}: offset {}", p.offset);
                    }
                }
                Op::Publish { channel, data, pid } => {
                    channel_ok(channel);
                    assert!(serde_json::from_str::<serde_json::Value>(data.get()).is_ok(), "{input:?}: data is JSON");
                    assert!(pid.as_deref().is_none_or(valid_pid), "{input:?}: pid {pid:?}");
                }
                Op::Unsubscribe { channel } | Op::Presence { channel } | Op::Ephemeral { channel, .. } => channel_ok(channel),
                Op::Refresh { token } => assert!(!token.is_empty()),
                Op::Ping => {}
            }
        }
    }
    if let Ok(positions) = parse_positions(input, 8) {
        assert!(positions.len() <= 8, "{input:?}");
        for (channel, p) in &positions {
            assert!(valid_channel(channel) && offset_in_range(&p.offset), "{input:?}: {channel} {}", p.offset);
        }
    }
}

/// xorshift64*: a fixed seed, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[(String, String)]) -> String {
    let mut s: Vec<u8> = seeds[rng.below(seeds.len())].1.clone().into_bytes();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                s.splice(at..at, token.iter().copied());
            }
            2 if at < s.len() => {
                let end = (at + 1 + rng.below(8)).min(s.len());
                s.drain(at..end);
            }
            3 => {
                let other = seeds[rng.below(seeds.len())].1.as_bytes();
                let from = rng.below(other.len() + 1);
                s.truncate(at);
                s.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.below(s.len() + 1);
                s.insert(i, rng.next() as u8);
            }
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

#[test]
fn the_corpus_and_its_mutations_parse_without_breaking_a_promise() {
    let seeds = corpus();
    for (name, text) in &seeds {
        let result = std::panic::catch_unwind(|| check(text));
        assert!(result.is_ok(), "corpus seed {name} broke a promise");
    }
    let mut rng = Rng(0x5EED_F1EE_7000_0017);
    let started = Instant::now();
    let mut tried = 0;
    while tried < MUTATIONS && started.elapsed() < TIME_BOUND {
        let input = mutate(&mut rng, &seeds);
        if std::panic::catch_unwind(|| check(&input)).is_err() {
            panic!("input #{tried} broke a promise; add it to tests/fuzz-corpus/: {input:?}");
        }
        tried += 1;
    }
    eprintln!("MEASURE fuzz: {} corpus seeds and {tried} mutations parsed in {:.1}s", seeds.len(), started.elapsed().as_secs_f64());
}

/// Structured inputs: objects of the protocol's keys with values of every JSON type.
fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        "[0-9]{1,21}-[0-9]{1,21}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("offset|epoch|[a-z:]{1,6}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn frames_of_protocol_keys_with_any_values_keep_the_promises(
        op in prop_oneof![Just("subscribe"), Just("unsubscribe"), Just("publish"), Just("presence"), Just("ephemeral"), Just("history"), Just("refresh"), Just("ping")],
        fields in proptest::collection::btree_map(
            prop_oneof![Just("id"), Just("channel"), Just("since"), Just("data"), Just("pid"), Just("limit"), Just("ttlMs"), Just("key"), Just("token")],
            value(),
            0..6,
        ),
    ) {
        let mut frame: serde_json::Map<String, serde_json::Value> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        frame.insert("op".into(), op.into());
        check(&serde_json::Value::Object(frame).to_string());
    }
}
