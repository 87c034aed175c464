//! The server side of a minimal HTTP/1.1 exchange, for the stand-in OpenAI-compatible servers of
//! the tests (`sim/tests/llm.rs`, and `tests/run.rs`, which includes this file by path): read
//! one request's body, write one JSON reply and close.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// The body of the request on `conn` (by its Content-Length); `None` when the client closed the
/// connection before the headers ended.
pub fn read_body(conn: &TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    Some(body)
}

/// Writes a JSON reply with HTTP status `status` and closes the exchange.
pub fn reply(conn: &mut TcpStream, status: u16, body: &str) {
    let reason = if status == 200 { "OK" } else { "Error" };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
