//! `socketfleet-bench loopback <frame-bytes> <seconds>`: this machine's loopback limit for
//! small frames, the ceiling every WebSocket server here shares. One thread writes frames
//! over a loopback TCP connection, another reads and discards; measured once with one
//! `write` per frame (what a server does without batching) and once with 64 frames per
//! `write`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn measure(frame: usize, seconds: u64, batch: usize) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> anyhow::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut out = TcpStream::connect(addr)?;
    out.set_nodelay(true)?;
    let chunk = vec![b'x'; frame * batch];
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut writes = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            out.write_all(&chunk)?;
            writes += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(out);
    let bytes = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
    anyhow::ensure!(bytes == writes * chunk.len() as u64, "reader saw {bytes} bytes of {}", writes * chunk.len() as u64);
    Ok(writes as f64 * batch as f64 / elapsed)
}

pub fn run(frame: usize, seconds: u64) -> anyhow::Result<Value> {
    let single = measure(frame, seconds, 1)?;
    let batched = measure(frame, seconds, 64)?;
    Ok(json!({"frame_bytes": frame, "one_write_per_frame_per_s": single.round(), "batched_64_per_write_per_s": batched.round()}))
}
