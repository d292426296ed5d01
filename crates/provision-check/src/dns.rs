//! A DNS client for one question, the NS records of a name, written out by hand from RFC 1035
//! rather than pulling in a resolver: a query over UDP, and over TCP when the answer comes back
//! truncated. It asks a recursive resolver (the system's, from `/etc/resolv.conf`, or
//! `PROVISION_DNS_SERVER`), which follows the parent's delegation and answers with the NS
//! records of the zone it was delegated to.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Overrides the DNS server: `IP` or `IP:PORT` (tests point it at a responder on loopback).
pub const SERVER_ENV: &str = "PROVISION_DNS_SERVER";

/// RFC 1035 §3.2.2: TYPE NS.
const TYPE_NS: u16 = 2;
/// RFC 1035 §3.2.4: CLASS IN.
const CLASS_IN: u16 = 1;
/// RFC 1035 §2.3.4: a name is at most 255 octets, a label at most 63.
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
/// RFC 1035 §4.2.1: UDP messages are at most 512 octets (we send no EDNS0 option).
const UDP_SIZE: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("`{0}` is not a domain name that can be queried")]
    BadName(String),
    #[error("{SERVER_ENV} is `{0}`, not an IP address or IP:PORT")]
    BadServer(String),
    #[error(
        "no DNS server is configured (no `nameserver` line in /etc/resolv.conf, and {SERVER_ENV} is not set)"
    )]
    NoServer,
    #[error("the DNS server {server} did not answer within {seconds} s")]
    Timeout { server: SocketAddr, seconds: u64 },
    #[error("could not reach the DNS server {server}: {message}")]
    Io { server: SocketAddr, message: String },
    #[error("the DNS server's answer is malformed: {0}")]
    Malformed(String),
}

/// What the server said about the name's NS records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The NS records, lower case, without trailing dots, sorted.
    NameServers(Vec<String>),
    /// RCODE 3, "Name Error": the name does not exist (RFC 1035 §4.1.1).
    NoSuchDomain,
    /// The name exists but has no NS records: it is not a delegated zone.
    NoData,
    /// Another RCODE (2, "Server failure", for example).
    Failed(u8),
}

/// The server to ask: `PROVISION_DNS_SERVER`, else the first `nameserver` of
/// `/etc/resolv.conf`, on port 53.
pub fn server() -> Result<SocketAddr, DnsError> {
    if let Ok(s) = std::env::var(SERVER_ENV)
        && !s.trim().is_empty()
    {
        return parse_server(s.trim());
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|_| DnsError::NoServer)?;
    resolv_conf_server(&text).ok_or(DnsError::NoServer)
}

fn parse_server(s: &str) -> Result<SocketAddr, DnsError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| DnsError::BadServer(s.to_string()))
}

/// The first usable `nameserver` line of a resolv.conf (resolv.conf(5)): an IPv4 or IPv6
/// address; a scoped IPv6 address (`fe80::1%eth0`) is skipped.
pub fn resolv_conf_server(text: &str) -> Option<SocketAddr> {
    text.lines()
        .map(|l| l.split(['#', ';']).next().unwrap_or("").trim())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .find_map(|addr| {
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
}

/// Asks `server` for the NS records of `name`: up to two tries over UDP of `timeout` each,
/// then TCP if the answer was truncated.
pub async fn query_ns(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    let id = query_id();
    let query = encode_query(id, name)?;
    let mut last = DnsError::Timeout {
        server,
        seconds: timeout.as_secs().max(1),
    };
    for _ in 0..2 {
        match tokio::time::timeout(timeout, udp_exchange(server, &query)).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                last = e;
                continue;
            }
            Ok(Ok(reply)) => {
                let parsed = match parse_response(id, name, &reply) {
                    // A reply to another query (or a forged one): keep waiting on a retry.
                    Err(DnsError::Malformed(m)) if m.starts_with("reply to another query") => {
                        last = DnsError::Malformed(m);
                        continue;
                    }
                    other => other?,
                };
                if !parsed.truncated {
                    return Ok(parsed.answer);
                }
                // RFC 1035 §4.2.1: a truncated UDP answer is asked again over TCP.
                let reply = tokio::time::timeout(timeout, tcp_exchange(server, &query))
                    .await
                    .map_err(|_| DnsError::Timeout {
                        server,
                        seconds: timeout.as_secs().max(1),
                    })??;
                return Ok(parse_response(id, name, &reply)?.answer);
            }
        }
    }
    Err(last)
}

fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(16)) as u16
}

async fn udp_exchange(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server,
        message: e.to_string(),
    };
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    // Connected: only datagrams from the server are received.
    socket.connect(server).await.map_err(io)?;
    socket.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; UDP_SIZE * 8];
    let n = socket.recv(&mut buf).await.map_err(io)?;
    buf.truncate(n);
    Ok(buf)
}

/// RFC 1035 §4.2.2: over TCP each message is preceded by its length in two octets.
async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server,
        message: e.to_string(),
    };
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut reply).await.map_err(io)?;
    Ok(reply)
}

/// A standard query (RFC 1035 §4.1.1: QR 0, OPCODE 0, RD 1) with one question: `name` NS IN.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&0x0100u16.to_be_bytes()); // RD: ask the resolver to recurse
    msg.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    msg.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    encode_name(name, &mut msg)?;
    msg.extend_from_slice(&TYPE_NS.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(msg)
}

/// RFC 1035 §3.1: a name is a sequence of length-prefixed labels ending with the empty label.
fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    let bad = || DnsError::BadName(name.to_string());
    let trimmed = name.trim_end_matches('.');
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL || !label.is_ascii() {
                return Err(bad());
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > MAX_NAME {
        return Err(bad());
    }
    Ok(())
}

/// A parsed reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// TC: the answer did not fit in the UDP message.
    pub truncated: bool,
    pub answer: Answer,
}

/// Parses a reply to the query `id` for `name` NS (RFC 1035 §4.1): checks it is a response to
/// that question, and collects the NS records of the answer section owned by `name`.
pub fn parse_response(id: u16, name: &str, msg: &[u8]) -> Result<Parsed, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let reply_id = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    r.u16()?; // NSCOUNT
    r.u16()?; // ARCOUNT
    if reply_id != id || flags & 0x8000 == 0 {
        return Err(DnsError::Malformed("reply to another query".into()));
    }
    let truncated = flags & 0x0200 != 0;
    let rcode = (flags & 0x000f) as u8;
    let wanted = crate::zone::normalize(name);
    for _ in 0..qdcount {
        let qname = r.name()?;
        let qtype = r.u16()?;
        r.u16()?; // QCLASS
        if crate::zone::normalize(&qname) != wanted || qtype != TYPE_NS {
            return Err(DnsError::Malformed(format!(
                "reply to another query (question {qname} type {qtype})"
            )));
        }
    }
    if truncated {
        return Ok(Parsed {
            truncated,
            answer: Answer::NoData,
        });
    }
    let answer = match rcode {
        0 => {
            let mut servers = Vec::new();
            for _ in 0..ancount {
                let owner = r.name()?;
                let rtype = r.u16()?;
                let class = r.u16()?;
                r.take(4)?; // TTL
                let rdlength = r.u16()? as usize;
                let rdata_start = r.pos;
                if rtype == TYPE_NS && class == CLASS_IN && crate::zone::normalize(&owner) == wanted
                {
                    // §3.3.11: NSDNAME, which may be compressed (§4.1.4).
                    let ns = r.name()?;
                    if r.pos > rdata_start + rdlength {
                        return Err(DnsError::Malformed(
                            "an NS record overruns its RDLENGTH".into(),
                        ));
                    }
                    servers.push(crate::zone::normalize(&ns));
                }
                r.pos = rdata_start;
                r.take(rdlength)?;
            }
            if servers.is_empty() {
                Answer::NoData
            } else {
                servers.sort();
                servers.dedup();
                Answer::NameServers(servers)
            }
        }
        3 => Answer::NoSuchDomain,
        other => Answer::Failed(other),
    };
    Ok(Parsed { truncated, answer })
}

struct Reader<'m> {
    msg: &'m [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DnsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.msg.len())
            .ok_or_else(|| DnsError::Malformed("the message ends early".into()))?;
        let out = &self.msg[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A name at the current position, following compression pointers (RFC 1035 §4.1.4:
    /// two octets whose top bits are 11, then the offset of the rest of the name). Leaves the
    /// position after the name as it appears here (after the first pointer, if any).
    fn name(&mut self) -> Result<String, DnsError> {
        let mut labels: Vec<String> = Vec::new();
        let mut at = self.pos;
        let mut resume: Option<usize> = None;
        let mut length = 1usize;
        // Each pointer must go back to an earlier octet, so following them ends; the bound
        // also stops a loop through pointers that the check below would miss.
        let mut jumps = 0;
        loop {
            let len = *self
                .msg
                .get(at)
                .ok_or_else(|| DnsError::Malformed("a name runs past the message".into()))?;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        at += 1;
                        break;
                    }
                    let start = at + 1;
                    let end = start + len as usize;
                    let label = self.msg.get(start..end).ok_or_else(|| {
                        DnsError::Malformed("a label runs past the message".into())
                    })?;
                    length += label.len() + 1;
                    if length > MAX_NAME {
                        return Err(DnsError::Malformed("a name longer than 255 octets".into()));
                    }
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    at = end;
                }
                0xc0 => {
                    let low = *self.msg.get(at + 1).ok_or_else(|| {
                        DnsError::Malformed("a pointer runs past the message".into())
                    })?;
                    let target = (((len & 0x3f) as usize) << 8) | low as usize;
                    jumps += 1;
                    if target >= at || jumps > MAX_NAME / 2 {
                        return Err(DnsError::Malformed("a compression pointer loops".into()));
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                // 01 and 10 are reserved (§4.1.4; later EDNS label types are not used in replies to us).
                _ => {
                    return Err(DnsError::Malformed(format!(
                        "unknown label type {len:#04x}"
                    )));
                }
            }
        }
        self.pos = resume.unwrap_or(at);
        Ok(labels.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query` with `answers` as NS records, the first one's owner compressed to
    /// point at the question and its NSDNAME's last labels compressed to point at the first.
    fn reply(query: &[u8], rcode: u8, answers: &[&str]) -> Vec<u8> {
        let mut msg = query.to_vec();
        msg[2] = 0x81; // QR, RD
        msg[3] = 0x80 | rcode; // RA, RCODE
        msg[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        let mut first_rdata = None;
        for ns in answers {
            msg.extend_from_slice(&[0xc0, 12]); // owner: the question's name
            msg.extend_from_slice(&TYPE_NS.to_be_bytes());
            msg.extend_from_slice(&CLASS_IN.to_be_bytes());
            msg.extend_from_slice(&300u32.to_be_bytes());
            let mut rdata = Vec::new();
            let (head, tail) = ns.split_once('.').unwrap_or((ns, ""));
            match first_rdata {
                // Later names: the first label, then a pointer to the first name's tail.
                Some(at) if !tail.is_empty() => {
                    rdata.push(head.len() as u8);
                    rdata.extend_from_slice(head.as_bytes());
                    let ptr = at + 1 + answers[0].split('.').next().unwrap_or("").len();
                    rdata.extend_from_slice(&[0xc0 | (ptr >> 8) as u8, ptr as u8]);
                }
                _ => encode_name(ns, &mut rdata).unwrap(),
            }
            msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            first_rdata.get_or_insert(msg.len());
            msg.extend_from_slice(&rdata);
        }
        msg
    }

    #[test]
    fn a_query_asks_one_ns_question_recursively() {
        let q = encode_query(0x1234, "Example.test.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x07Example\x04test\x00\x00\x02\x00\x01");
        assert!(encode_query(1, "a..b").is_err());
        assert!(encode_query(1, &format!("{}.test", "x".repeat(64))).is_err());
        assert!(
            encode_query(1, &vec!["abcdefgh"; 40].join(".")).is_err(),
            "over 255 octets"
        );
    }

    #[test]
    fn ns_records_are_read_through_compression_pointers() {
        let q = encode_query(7, "example.test").unwrap();
        let r = reply(
            &q,
            0,
            &[
                "ns-2048.awsdns-64.com",
                "ns-2049.awsdns-64.com",
                "NS-2050.awsdns-64.com.",
            ],
        );
        let parsed = parse_response(7, "example.test", &r).unwrap();
        assert!(!parsed.truncated);
        assert_eq!(
            parsed.answer,
            Answer::NameServers(vec![
                "ns-2048.awsdns-64.com".into(),
                "ns-2049.awsdns-64.com".into(),
                "ns-2050.awsdns-64.com".into(),
            ])
        );
    }

    #[test]
    fn rcodes_and_empty_answers_are_told_apart() {
        let q = encode_query(9, "example.test").unwrap();
        assert_eq!(
            parse_response(9, "example.test", &reply(&q, 3, &[]))
                .unwrap()
                .answer,
            Answer::NoSuchDomain
        );
        assert_eq!(
            parse_response(9, "example.test", &reply(&q, 0, &[]))
                .unwrap()
                .answer,
            Answer::NoData
        );
        assert_eq!(
            parse_response(9, "example.test", &reply(&q, 2, &[]))
                .unwrap()
                .answer,
            Answer::Failed(2)
        );
    }

    #[test]
    fn replies_to_other_queries_and_broken_messages_are_refused() {
        let q = encode_query(9, "example.test").unwrap();
        let r = reply(&q, 0, &["ns1.example.net"]);
        assert!(
            parse_response(10, "example.test", &r).is_err(),
            "another id"
        );
        assert!(
            parse_response(9, "other.test", &r).is_err(),
            "another question"
        );
        assert!(
            parse_response(9, "example.test", &q).is_err(),
            "a query, not a reply"
        );
        for cut in [5, 20, r.len() - 3] {
            assert!(
                parse_response(9, "example.test", &r[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A pointer to itself.
        let mut looped = r.clone();
        let at = q.len();
        looped[at] = 0xc0;
        looped[at + 1] = at as u8;
        assert!(matches!(
            parse_response(9, "example.test", &looped),
            Err(DnsError::Malformed(_))
        ));
        // A truncated reply says so, whatever it holds.
        let mut tc = r;
        tc[2] |= 0x02;
        assert!(parse_response(9, "example.test", &tc).unwrap().truncated);
    }

    #[test]
    fn resolv_conf_gives_the_first_plain_nameserver() {
        let text = "# generated\nsearch lan\nnameserver fe80::1%eth0\nnameserver 10.0.0.2 # local\nnameserver 1.1.1.1\n";
        assert_eq!(
            resolv_conf_server(text),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(resolv_conf_server("options ndots:1\n"), None);
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_server("localhost").is_err());
    }

    #[tokio::test]
    async fn an_unanswered_query_times_out() {
        // A bound socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let err = query_ns(addr, "example.test", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::Timeout { .. }), "{err}");
    }
}
