//! A tiny DNS responder on loopback for tests (UDP only): it answers NS questions for the zones
//! it is given with their name servers, NXDOMAIN for every other name, and counts the
//! questions it was asked. Messages as in RFC 1035 §4.1; names written without compression.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;

/// A responder, stopped when dropped.
pub struct DnsResponder {
    addr: SocketAddr,
    asked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsResponder {
    /// Answers `NS <zone>` with `name_servers` for each zone of `zones` (names compared
    /// without case or trailing dot).
    pub async fn start(zones: &[(&str, &[&str])]) -> std::io::Result<DnsResponder> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let zones: BTreeMap<String, Vec<String>> = zones
            .iter()
            .map(|(z, ns)| (normalize(z), ns.iter().map(|n| n.to_string()).collect()))
            .collect();
        let asked = Arc::new(AtomicU64::new(0));
        let counter = asked.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = answer(&buf[..n], &zones) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Ok(DnsResponder { addr, asked, task })
    }

    /// `127.0.0.1:PORT`, as `PROVISION_DNS_SERVER` takes it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries arrived.
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The reply to one query, or `None` for what is not a query with one question.
fn answer(query: &[u8], zones: &BTreeMap<String, Vec<String>>) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    // The question: labels up to the empty one, then QTYPE and QCLASS.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_string());
        at += len;
    }
    let question_end = at + 4;
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let name = normalize(&labels.join("."));
    let servers = zones.get(&name);
    let mut reply = Vec::with_capacity(512);
    reply.extend_from_slice(&query[..2]); // ID
    let rcode = if servers.is_some() { 0 } else { 3 };
    // QR, RD copied, RA; RCODE 0 or 3 (NXDOMAIN).
    reply.push(0x80 | (query[2] & 0x01));
    reply.push(0x80 | rcode);
    let answers: &[String] = match (servers, qtype) {
        (Some(ns), 2) => ns,
        _ => &[],
    };
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    for ns in answers {
        reply.extend_from_slice(&[0xc0, 12]); // the question's name
        reply.extend_from_slice(&2u16.to_be_bytes()); // NS
        reply.extend_from_slice(&1u16.to_be_bytes()); // IN
        reply.extend_from_slice(&300u32.to_be_bytes());
        let mut rdata = Vec::new();
        for label in ns.trim_end_matches('.').split('.') {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label.as_bytes());
        }
        rdata.push(0);
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    Some(reply)
}
