//! The delivery invariant as a property: over random interleavings of publications, their
//! live copies arriving (or being lost in an outage), members joining, reading history
//! (with or without `since`), going live (and re-reading after an overflow), and backfills
//! after re-subscription (read and applied as separate steps, as the real one awaits Redis
//! between them), every member receives every publication after its start exactly once, in
//! order. It drives the real merge code (`ChannelState`); only Redis is modelled: a stream
//! of seqs and a FIFO of live copies.

use std::collections::VecDeque;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::store::channels::HistoryPage;

#[derive(Debug, Clone)]
enum Step {
    Publish,
    /// The oldest live copy in flight reaches the pod.
    Deliver,
    Join,
    /// A joined member reads the stream: with `since` (a position it had), or from the end.
    Read {
        who: u8,
        since: Option<u8>,
    },
    GoLive {
        who: u8,
    },
    /// The pod's subscription broke and came back: copies in flight are lost.
    Interrupt,
    /// The running backfill reads the stream from its floor.
    BackfillRead,
    /// ... and applies what it read.
    BackfillApply,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Publish),
        4 => Just(Step::Deliver),
        1 => Just(Step::Join),
        2 => (any::<u8>(), proptest::option::of(any::<u8>())).prop_map(|(who, since)| Step::Read { who, since }),
        2 => any::<u8>().prop_map(|who| Step::GoLive { who }),
        1 => Just(Step::Interrupt),
        1 => Just(Step::BackfillRead),
        1 => Just(Step::BackfillApply),
    ]
}

enum Phase {
    Joined,
    Read { cursor: u64, stream_last: u64 },
    Live,
}

struct SimMember {
    id: ConnId,
    rx: Arc<SendQueue>,
    outbox: Outbox,
    phase: Phase,
    /// Everything after this seq must reach it.
    start: u64,
}

struct Sim {
    state: ChannelState,
    metrics: Metrics,
    published: u64,
    in_flight: VecDeque<u64>,
    subscribed: bool,
    members: Vec<SimMember>,
    /// A backfill's read, waiting to be applied.
    read: Option<((Arc<str>, Offset), HistoryPage)>,
}

const MAX_MEMBERS: usize = 4;

fn at(seq: u64) -> Offset {
    Offset { ms: 1, seq }
}

fn live_copy(seq: u64) -> Arc<Delivery> {
    Arc::new(Delivery { offset: at(seq), epoch: Arc::from("e"), frame: Utf8Bytes::from(format!("m{seq}")) })
}

impl Sim {
    fn new() -> Sim {
        Sim {
            state: ChannelState::default(),
            metrics: Metrics::new(),
            published: 0,
            in_flight: VecDeque::new(),
            subscribed: false,
            members: Vec::new(),
            read: None,
        }
    }

    fn page_after(&self, after: u64) -> HistoryPage {
        HistoryPage {
            epoch: "e".into(),
            last: at(self.published),
            first: (self.published > 0).then(|| at(1)),
            entries: (after + 1..=self.published).map(|seq| (at(seq), seq.to_string())).collect(),
        }
    }

    /// What a member's own history read sends it: entries after `from`, in its queue.
    fn send_history(&self, m: &SimMember, from: u64) {
        for seq in from + 1..=self.published {
            assert!(m.outbox.offer(Utf8Bytes::from(format!("m{seq}"))));
        }
    }

    fn pick(&self, who: u8, phase: fn(&Phase) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.members.len()).filter(|i| phase(&self.members[*i].phase)).collect();
        (!candidates.is_empty()).then(|| candidates[who as usize % candidates.len()])
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Publish => {
                self.published += 1;
                if self.subscribed {
                    self.in_flight.push_back(self.published);
                }
            }
            Step::Deliver => {
                if let Some(seq) = self.in_flight.pop_front() {
                    self.state.on_live(live_copy(seq), &self.metrics);
                }
            }
            Step::Join if self.members.len() < MAX_MEMBERS => {
                let id = self.members.len() as ConnId + 1;
                let rx = Arc::new(SendQueue::new(100_000, false));
                let outbox = Outbox { id, queue: rx.clone(), signals: Arc::default() };
                let mode = Mode::Buffering { items: Vec::new(), overflowed: false };
                self.state.members.insert(id, Member { outbox: outbox.clone(), mode, sent_up_to: None });
                self.subscribed = true;
                self.members.push(SimMember { id, rx, outbox, phase: Phase::Joined, start: 0 });
            }
            Step::Join => {}
            Step::Read { who, since } => {
                let Some(i) = self.pick(who, |p| matches!(p, Phase::Joined)) else { return };
                let n = self.published;
                let start = since.map_or(n, |s| u64::from(s) % (n + 1));
                self.send_history(&self.members[i], start);
                let m = &mut self.members[i];
                m.start = start;
                m.phase = Phase::Read { cursor: n, stream_last: n };
            }
            Step::GoLive { who } => {
                let Some(i) = self.pick(who, |p| matches!(p, Phase::Read { .. })) else { return };
                let Phase::Read { cursor, stream_last } = self.members[i].phase else { return };
                let position = Position { offset: at(cursor), epoch: "e".into() };
                match self.state.go_live(self.members[i].id, &position, at(stream_last), &self.metrics) {
                    GoLive::Live | GoLive::Gone => self.members[i].phase = Phase::Live,
                    GoLive::Overflowed => {
                        // Recovery reads history again from where it got to.
                        self.send_history(&self.members[i], cursor);
                        self.members[i].phase = Phase::Read { cursor: self.published, stream_last: self.published };
                    }
                }
            }
            Step::Interrupt if self.subscribed => {
                self.in_flight.clear();
                self.state.begin_backfill();
            }
            Step::Interrupt => {}
            Step::BackfillRead if self.state.backfill.is_some() && self.read.is_none() => {
                if let Some((epoch, after)) = self.state.backfill_from(&self.metrics) {
                    self.read = Some(((epoch, after), self.page_after(after.seq)));
                }
            }
            Step::BackfillRead => {}
            Step::BackfillApply => {
                if let Some(((epoch, after), page)) = self.read.take() {
                    self.state.apply_backfill("ch", (&epoch, after), &page, &self.metrics);
                }
            }
        }
    }

    /// Lets everything settle: copies arrive, backfills finish, every member goes live.
    fn settle(&mut self) {
        for _ in 0..100 {
            while !self.in_flight.is_empty() {
                self.apply(&Step::Deliver);
            }
            self.apply(&Step::BackfillApply);
            self.apply(&Step::BackfillRead);
            self.apply(&Step::BackfillApply);
            for who in 0..MAX_MEMBERS as u8 {
                self.apply(&Step::Read { who, since: None });
                self.apply(&Step::GoLive { who });
            }
            let settled = self.in_flight.is_empty()
                && self.state.backfill.is_none()
                && self.read.is_none()
                && self.members.iter().all(|m| matches!(m.phase, Phase::Live));
            if settled {
                return;
            }
        }
        panic!("the model did not settle");
    }
}

fn seq_of_frame(frame: &str) -> u64 {
    if let Some(seq) = frame.strip_prefix('m') {
        return seq.parse().expect("m<seq>");
    }
    let v: serde_json::Value = serde_json::from_str(frame).expect("a JSON frame");
    v["offset"].as_str().and_then(|o| o.split_once('-')).and_then(|(_, s)| s.parse().ok()).expect("a message frame")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_member_gets_every_publication_after_its_start_exactly_once_in_order(steps in proptest::collection::vec(step(), 1..80)) {
        let mut sim = Sim::new();
        for s in &steps {
            sim.apply(s);
        }
        sim.settle();
        let published = sim.published;
        for m in &mut sim.members {
            let got: Vec<u64> = std::iter::from_fn(|| m.rx.try_recv()).map(|f| seq_of_frame(&f)).collect();
            let want: Vec<u64> = (m.start + 1..=published).collect();
            prop_assert_eq!(got, want, "member {} (start {}) after {:?}", m.id, m.start, steps);
        }
    }
}
