//! Latency and throughput accounting of a run.
//!
//! Honest latency: a fixed-rate producer gives every record an *intended* send time
//! from its schedule ([`Schedule`]), and latency is counted from that time, not from
//! when the record was actually handed to the socket. A generator or broker that
//! stalls for a second therefore shows a second of latency on every record that should
//! have gone out during the stall (coordinated-omission correction), where counting
//! from the actual send would show one slow record.
//!
//! Times are nanoseconds since the run's origin. A [`Recorder`] keeps one histogram
//! of the measured window and one per second of the run (its time series); records
//! completed in the warm-up are in the series but not in the totals.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds, in ns (an hour); longer ones are clamped.
const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// Resolution floor of the histograms, in ns.
const LATENCY_NS_MIN: u64 = 1_000;

/// An open-loop send schedule: record `i` is due at `start_ns + i * interval`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
}

impl Schedule {
    /// `records_per_second` (> 0) from `start_ns` on.
    pub fn new(start_ns: u64, records_per_second: f64) -> Schedule {
        Schedule { start_ns, interval_ns: 1e9 / records_per_second }
    }

    /// When record `index` is due.
    pub fn intended_ns(&self, index: u64) -> u64 {
        self.start_ns + (index as f64 * self.interval_ns) as u64
    }

    /// How many records are due by `now_ns` (records `0..n`).
    pub fn due_by(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        ((now_ns - self.start_ns) as f64 / self.interval_ns) as u64 + 1
    }
}

/// Totals and latencies of one second of the run.
#[derive(Debug, Clone)]
struct Second {
    records: u64,
    bytes: u64,
    latency: Option<Histogram<u64>>,
}

/// What one side of a run (producers' acks, or consumers' receipts) saw.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The measured window: completions in `[from_ns, until_ns)` count in the totals,
    /// latencies of records intended in it count in the histogram.
    from_ns: u64,
    until_ns: u64,
    pub records: u64,
    pub bytes: u64,
    /// First and last completion in the window.
    pub first_ns: Option<u64>,
    pub last_ns: u64,
    latency: Histogram<u64>,
    seconds: Vec<Second>,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_NS_MIN, LATENCY_NS_MAX, sigfig).expect("valid histogram bounds")
}

impl Recorder {
    /// A recorder measuring `[from_ns, until_ns)`.
    pub fn new(from_ns: u64, until_ns: u64) -> Recorder {
        Recorder {
            from_ns,
            until_ns,
            records: 0,
            bytes: 0,
            first_ns: None,
            last_ns: 0,
            latency: histogram(3),
            seconds: Vec::new(),
        }
    }

    fn second(&mut self, done_ns: u64) -> &mut Second {
        let index = (done_ns / 1_000_000_000) as usize;
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, Second { records: 0, bytes: 0, latency: None });
        }
        &mut self.seconds[index]
    }

    /// `records` records of `bytes` in all completed at `done_ns`, with no latency
    /// to count (a catch-up read of records produced long before).
    pub fn completed(&mut self, done_ns: u64, records: u64, bytes: u64) {
        let second = self.second(done_ns);
        second.records += records;
        second.bytes += bytes;
        if done_ns >= self.from_ns && done_ns < self.until_ns {
            self.records += records;
            self.bytes += bytes;
            self.first_ns.get_or_insert(done_ns);
            self.last_ns = self.last_ns.max(done_ns);
        }
    }

    /// One record intended at `intended_ns`, completed at `done_ns`.
    pub fn latency(&mut self, intended_ns: u64, done_ns: u64) {
        let latency = done_ns.saturating_sub(intended_ns).clamp(LATENCY_NS_MIN, LATENCY_NS_MAX);
        if intended_ns >= self.from_ns && intended_ns < self.until_ns {
            self.latency.saturating_record(latency);
        }
        self.second(done_ns).latency.get_or_insert_with(|| histogram(2)).saturating_record(latency);
    }

    /// Adds what `other` recorded (another task or core of the same run).
    pub fn merge(&mut self, other: &Recorder) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.first_ns = match (self.first_ns, other.first_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ns = self.last_ns.max(other.last_ns);
        self.latency.add(&other.latency).expect("histograms of equal bounds add");
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize(other.seconds.len(), Second { records: 0, bytes: 0, latency: None });
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.records += theirs.records;
            mine.bytes += theirs.bytes;
            if let Some(latency) = &theirs.latency {
                mine.latency.get_or_insert_with(|| histogram(2)).add(latency).expect("equal bounds");
            }
        }
    }

    /// Latency percentiles of the measured window, if any latency was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        Percentiles::of(&self.latency)
    }

    /// The full latency distribution: (quantile, latency µs, records at or below
    /// it) at logarithmically spaced quantiles, as plots and comparisons use it.
    pub fn distribution(&self) -> Vec<(f64, f64, u64)> {
        if self.latency.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        let mut nines = 0.0f64;
        while nines <= 6.0 {
            let quantile = 1.0 - 10f64.powf(-nines);
            let count = (quantile * self.latency.len() as f64) as u64;
            points.push((quantile, self.latency.value_at_quantile(quantile) as f64 / 1e3, count));
            if quantile * self.latency.len() as f64 >= self.latency.len() as f64 - 1.0 {
                break;
            }
            nines += 0.125;
        }
        points.push((1.0, self.latency.max() as f64 / 1e3, self.latency.len()));
        points
    }

    /// The latency histogram of the measured window in HdrHistogram's compressed V2
    /// encoding, base64: the form HdrHistogram's own tools (and `hdrhistogram`
    /// decoders in other languages) read, values in ns. Empty if no latency.
    pub fn encoded_histogram(&self) -> String {
        use base64::Engine;
        if self.latency.is_empty() {
            return String::new();
        }
        let mut bytes = Vec::new();
        use hdrhistogram::serialization::Serializer;
        match hdrhistogram::serialization::V2DeflateSerializer::new().serialize(&self.latency, &mut bytes) {
            Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
            Err(_) => String::new(),
        }
    }

    /// The per-second series: one point per second from the run's origin.
    pub fn series(&self) -> Vec<SecondPoint> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(second, s)| SecondPoint {
                second: second as u64,
                records: s.records,
                bytes: s.bytes,
                latency: s.latency.as_ref().and_then(Percentiles::of),
            })
            .collect()
    }

    /// Seconds between the window's start and its last completion (how long a
    /// catch-up took), or the whole window if it ran to its end.
    pub fn active_seconds(&self) -> f64 {
        let end = if self.last_ns == 0 { self.until_ns } else { self.last_ns.min(self.until_ns) };
        end.saturating_sub(self.from_ns) as f64 / 1e9
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of nanoseconds, in µs (`None` when empty).
    pub fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        if histogram.is_empty() {
            return None;
        }
        let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1e3;
        Some(Percentiles {
            count: histogram.len(),
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            p9999_us: us(0.9999),
            max_us: histogram.max() as f64 / 1e3,
        })
    }
}

/// One second of a run's series.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SecondPoint {
    /// Seconds since the run's origin (the warm-up counts).
    pub second: u64,
    pub records: u64,
    pub bytes: u64,
    pub latency: Option<Percentiles>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    /// A sender at 1,000 records/s for 10 s, each record acknowledged 100 µs after it
    /// goes out, that stalls for one whole second at t = 5 s (a GC pause, a full
    /// socket). It wakes every millisecond and sends whatever its schedule says is
    /// due, as the generator's producers do.
    fn stalled_run(count_from_intended: bool) -> Recorder {
        let schedule = Schedule::new(0, 1000.0);
        let mut recorder = Recorder::new(0, 10 * SECOND);
        let mut sent = 0;
        let mut now = 0;
        while now < 10 * SECOND {
            let stalled = (5 * SECOND..6 * SECOND).contains(&now);
            if !stalled {
                let due = schedule.due_by(now).min(10_000);
                while sent < due {
                    let done = now + 100_000;
                    let from = if count_from_intended { schedule.intended_ns(sent) } else { now };
                    recorder.latency(from, done);
                    recorder.completed(done, 1, 100);
                    sent += 1;
                }
            }
            now += MS;
        }
        recorder
    }

    #[test]
    fn a_stall_shows_on_every_record_that_should_have_been_sent_during_it() {
        let honest = stalled_run(true);
        let p = honest.percentiles().unwrap();
        assert_eq!(p.count, 10_000);
        // 1,000 of 10,000 records (10%) were due during the stall and waited on
        // average half a second; the median record did not wait.
        assert!((90.0..=150.0).contains(&p.p50_us), "{p:?}");
        assert!(p.p90_us <= 1_000.0, "{p:?}");
        assert!((890_000.0..=910_000.0).contains(&p.p99_us), "{p:?}");
        assert!((990_000.0..=1_010_000.0).contains(&p.max_us), "{p:?}");
        // Counting from the actual send hides the stall: the worst record looks like
        // 100 µs.
        let naive = stalled_run(false).percentiles().unwrap();
        assert!(naive.max_us < 200.0, "{naive:?}");
        // The series puts the burst in the second after the stall.
        let series = honest.series();
        assert_eq!(series[5].records, 0);
        assert!(series[6].records > 1000, "{:?}", series[6]);
        assert!(series[6].latency.unwrap().max_us > 900_000.0);
    }

    #[test]
    fn the_schedule_counts_due_records() {
        let schedule = Schedule::new(1000, 1e6);
        assert_eq!(schedule.due_by(999), 0);
        assert_eq!(schedule.due_by(1000), 1);
        assert_eq!(schedule.due_by(1000 + 999), 1);
        assert_eq!(schedule.due_by(1000 + 1000), 2);
        assert_eq!(schedule.intended_ns(3), 4000);
    }

    #[test]
    fn the_window_keeps_the_warm_up_out_of_the_totals() {
        let mut recorder = Recorder::new(SECOND, 2 * SECOND);
        recorder.latency(SECOND / 2, SECOND / 2 + 5 * MS);
        recorder.completed(SECOND / 2 + 5 * MS, 1, 10);
        recorder.latency(SECOND + 1, SECOND + 1 + MS);
        recorder.completed(SECOND + 1 + MS, 1, 10);
        assert_eq!((recorder.records, recorder.bytes), (1, 10));
        let p = recorder.percentiles().unwrap();
        assert_eq!(p.count, 1);
        assert!((p.max_us - 1000.0).abs() < 2.0, "{p:?}");
        assert_eq!(recorder.series().len(), 2);
        let mut merged = Recorder::new(SECOND, 2 * SECOND);
        merged.merge(&recorder);
        merged.merge(&recorder);
        assert_eq!(merged.records, 2);
        assert_eq!(merged.percentiles().unwrap().count, 2);
        assert_eq!(merged.series()[0].records, 2);
        let encoded = merged.encoded_histogram();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let decoded: Histogram<u64> =
            hdrhistogram::serialization::Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded.max(), merged.latency.max());
        let distribution = merged.distribution();
        assert_eq!(distribution.first().unwrap().0, 0.0);
        assert_eq!(distribution.last().unwrap().0, 1.0);
    }
}
