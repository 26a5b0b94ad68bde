//! A minimal HTTP/1.1 keep-alive client for the REST side of a workload
//! (POST /keys, POST /items, PUT /items/{id}): one request at a time per
//! connection, bodies framed by Content-Length. Lean on purpose, so the load
//! generator's own cost stays small and equal for every server.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Http {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
    line: String,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> Result<Http, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("REST connection to {addr}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("REST connection to {addr}: {e}"))?;
        Ok(Http {
            addr,
            stream: BufReader::new(tcp),
            line: String::new(),
        })
    }

    /// Sends one request and returns (status, body). A connection the server
    /// closed is opened again once.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        match self.request_once(method, path, key, body).await {
            Ok(reply) => Ok(reply),
            Err(_) => {
                *self = Http::connect(self.addr).await?;
                self.request_once(method, path, key, body).await
            }
        }
    }

    async fn request_once(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());
        let what = |e: std::io::Error| format!("{method} {path}: {e}");
        self.stream
            .get_mut()
            .write_all(&request)
            .await
            .map_err(what)?;
        self.line.clear();
        if self.stream.read_line(&mut self.line).await.map_err(what)? == 0 {
            return Err(format!("{method} {path}: the server closed the connection"));
        }
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{method} {path}: bad status line {:?}", self.line))?;
        let mut length: Option<usize> = None;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await.map_err(what)? == 0 {
                return Err(format!("{method} {path}: connection closed in the headers"));
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let name = name.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(format!(
                        "{method} {path}: chunked replies are not supported (the server must send Content-Length)"
                    ));
                }
            }
        }
        let length = length.unwrap_or(0);
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.map_err(what)?;
        let body =
            String::from_utf8(body).map_err(|_| format!("{method} {path}: body not UTF-8"))?;
        Ok((status, body))
    }
}
