//! A minimal RESP2 reader and command encoder for subscribe-only connections.
//!
//! The subscriber layer owns its sockets (see `subscriber.rs` for why), so it needs to read
//! replies and pushes itself. Only the reply types Redis sends in subscribed mode occur.

use bytes::{Bytes, BytesMut};

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(Bytes),
    Error(Bytes),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Resp>>),
}

/// The peer sent bytes that are not RESP.
#[derive(Debug, thiserror::Error)]
#[error("malformed RESP from Redis: {0}")]
pub struct RespError(&'static str);

/// Largest bulk string or array we accept: a guard against a corrupt length.
const MAX_LEN: usize = 512 * 1024 * 1024;

impl Resp {
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Resp::Simple(b) | Resp::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }
}

/// Parses one value from the front of `buf`, consuming it. `Ok(None)` means more bytes are
/// needed and `buf` is left untouched.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Resp>, RespError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos)? {
        Some(_) => {
            let frame = buf.split_to(pos).freeze();
            let mut pos = 0;
            // Second pass over the frozen bytes so values share one allocation.
            Ok(parse_frozen(&frame, &mut pos))
        }
        None => Ok(None),
    }
}

fn line(buf: &[u8], pos: &mut usize) -> Option<(usize, usize)> {
    let start = *pos;
    let end = buf[start..].windows(2).position(|w| w == b"\r\n")? + start;
    *pos = end + 2;
    Some((start, end))
}

fn int(bytes: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or(RespError("bad integer"))
}

/// Validates one value and advances `pos` past it; `Ok(None)` when incomplete.
fn parse_at(buf: &[u8], pos: &mut usize) -> Result<Option<()>, RespError> {
    if *pos >= buf.len() {
        return Ok(None);
    }
    let kind = buf[*pos];
    *pos += 1;
    let Some((s, e)) = line(buf, pos) else { return Ok(None) };
    match kind {
        b'+' | b'-' => Ok(Some(())),
        b':' => int(&buf[s..e]).map(|_| Some(())),
        b'$' => {
            let len = int(&buf[s..e])?;
            if len < 0 {
                return Ok(Some(()));
            }
            let len = usize::try_from(len).map_err(|_| RespError("bad length"))?;
            if len > MAX_LEN {
                return Err(RespError("bulk string too long"));
            }
            if buf.len() < *pos + len + 2 {
                return Ok(None);
            }
            *pos += len + 2;
            Ok(Some(()))
        }
        b'*' => {
            let len = int(&buf[s..e])?;
            if len < 0 {
                return Ok(Some(()));
            }
            let len = usize::try_from(len).map_err(|_| RespError("bad length"))?;
            if len > MAX_LEN {
                return Err(RespError("array too long"));
            }
            for _ in 0..len {
                if parse_at(buf, pos)?.is_none() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
        _ => Err(RespError("unknown type byte")),
    }
}

/// Builds the value from bytes that `parse_at` already validated.
fn parse_frozen(buf: &Bytes, pos: &mut usize) -> Option<Resp> {
    let kind = buf[*pos];
    *pos += 1;
    let (s, e) = line(buf, pos)?;
    Some(match kind {
        b'+' => Resp::Simple(buf.slice(s..e)),
        b'-' => Resp::Error(buf.slice(s..e)),
        b':' => Resp::Int(int(&buf[s..e]).ok()?),
        b'$' => {
            let len = int(&buf[s..e]).ok()?;
            if len < 0 {
                Resp::Bulk(None)
            } else {
                let len = len as usize;
                let v = buf.slice(*pos..*pos + len);
                *pos += len + 2;
                Resp::Bulk(Some(v))
            }
        }
        _ => {
            let len = int(&buf[s..e]).ok()?;
            if len < 0 {
                Resp::Array(None)
            } else {
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(parse_frozen(buf, pos)?);
                }
                Resp::Array(Some(items))
            }
        }
    })
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]], out: &mut BytesMut) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Resp {
        Resp::Bulk(Some(Bytes::copy_from_slice(s.as_bytes())))
    }

    #[test]
    fn parses_a_push_split_across_reads() {
        let wire = b"*3\r\n$8\r\nsmessage\r\n$6\r\nsf:{a}\r\n$5\r\nhello\r\n";
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(parse(&mut buf).expect("valid prefix"), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "incomplete input must not be consumed");
        }
        let mut buf = BytesMut::from(&wire[..]);
        buf.extend_from_slice(b":7\r\n");
        let v = parse(&mut buf).expect("valid").expect("complete");
        assert_eq!(v, Resp::Array(Some(vec![bulk("smessage"), bulk("sf:{a}"), bulk("hello")])));
        assert_eq!(parse(&mut buf).expect("valid"), Some(Resp::Int(7)));
        assert!(buf.is_empty());
    }

    #[test]
    fn parses_errors_nulls_and_binary_payloads() {
        let mut buf = BytesMut::from(&b"-MOVED 3999 127.0.0.1:7001\r\n$-1\r\n*-1\r\n$4\r\na\r\nb\r\n"[..]);
        assert_eq!(parse(&mut buf).expect("valid"), Some(Resp::Error(Bytes::from_static(b"MOVED 3999 127.0.0.1:7001"))));
        assert_eq!(parse(&mut buf).expect("valid"), Some(Resp::Bulk(None)));
        assert_eq!(parse(&mut buf).expect("valid"), Some(Resp::Array(None)));
        assert_eq!(parse(&mut buf).expect("valid"), Some(bulk("a\r\nb")));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(&mut BytesMut::from(&b"?what\r\n"[..])).is_err());
        assert!(parse(&mut BytesMut::from(&b":x\r\n"[..])).is_err());
    }

    #[test]
    fn encodes_commands() {
        let mut out = BytesMut::new();
        encode(&[b"SSUBSCRIBE", b"sf:{a}"], &mut out);
        assert_eq!(&out[..], b"*2\r\n$10\r\nSSUBSCRIBE\r\n$6\r\nsf:{a}\r\n");
    }
}
