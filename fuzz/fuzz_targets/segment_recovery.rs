//! A partition's log recovered from arbitrary file bytes: the input is written as its
//! only segment and opened, as at start. Recovery keeps a valid prefix and cuts the
//! rest, or refuses with a typed error; it never panics, and what it keeps reads back.
//!
//! glommio needs an executor: one lives for the whole run on a thread of its own, and
//! each input is handed to it over a channel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use strand::storage::{BatchCache, IoOptions, Log, TopicConfig};

type Job = (Vec<u8>, mpsc::SyncSender<()>);

fn executor() -> &'static Mutex<mpsc::Sender<Job>> {
    static SENDER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            strand::runtime::run_local("fuzz-recovery", move || async move {
                let root = tempfile::tempdir().expect("a temporary directory");
                let cache = Rc::new(BatchCache::new(1 << 20));
                let io = IoOptions { disk_reserve_bytes: 0, ..IoOptions::default() };
                let config = TopicConfig { segment_bytes: 1 << 20, ..TopicConfig::default() };
                // Blocking on the channel is fine: this executor runs nothing else.
                while let Ok((bytes, done)) = jobs.recv() {
                    recover(root.path().join("p"), &bytes, &config, &io, &cache).await;
                    let _ = done.send(());
                }
            });
        });
        Mutex::new(sender)
    })
}

async fn recover(dir: PathBuf, bytes: &[u8], config: &TopicConfig, io: &IoOptions, cache: &Rc<BatchCache>) {
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("00000000000000000000.log"), bytes).unwrap();
    if let Ok((log, _)) = Log::open(&dir, "fuzz-0", config.clone(), io.clone(), cache.clone()).await {
        let offsets = log.offsets();
        let mut next = offsets.start;
        while next < offsets.high_watermark {
            let read = log.read(next, 1 << 20).await.expect("what recovery kept reads back");
            assert!(read.next_offset > next, "reads make progress");
            next = read.next_offset;
        }
        log.close().await.expect("a recovered log closes");
    }
}

fuzz_target!(|data: &[u8]| {
    let (done, finished) = mpsc::sync_channel(1);
    executor().lock().unwrap().send((data.to_vec(), done)).unwrap();
    finished.recv().expect("the recovery executor panicked on this input");
});
