//! The shard server's bounds on connections and requests: idle sockets cannot starve
//! it, a body that never comes cannot hold a request, and a body larger than any
//! valid request is refused before it is read. Raw sockets, since clients are too
//! polite to do any of this.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{start_server, test_server_config};

const LIST_STREAMS: &[u8] = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

/// Sends `request` on a new connection and reads the answer to its end; its status
/// code, or a panic if none comes within 10 s.
async fn status_of(addr: SocketAddr, request: &[u8]) -> u16 {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer within 10 s"))
        .unwrap_or_else(|e| panic!("exchange failed: {e}"));
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

/// With every slot held by idle sockets a new connection is served (an idle one is
/// closed to make room), and the idle sockets are closed after the idle timeout.
#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_at_the_limit_cannot_starve_the_server() {
    let mut config = test_server_config();
    config.max_connections = 8;
    config.idle_timeout = Duration::from_secs(1);
    let server = start_server(config).await;
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(
            TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    // Accepted in order: the ninth finds every slot taken, by idle sockets.
    assert_eq!(status_of(addr, LIST_STREAMS).await, 200);
    for (i, socket) in idle.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut byte))
            .await
            .unwrap_or_else(|_| panic!("idle socket {i} still open after 10 s"));
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "idle socket {i} was sent {read:?}"
        );
    }
    assert_eq!(status_of(addr, LIST_STREAMS).await, 200);
    server.shutdown().await;
}

/// A request whose body stops short of its Content-Length is answered 408 once the
/// body timeout passes, and its connection closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_shorter_than_its_content_length_is_answered_408_after_the_body_timeout() {
    let mut config = test_server_config();
    config.body_timeout = Duration::from_secs(1);
    let server = start_server(config).await;
    let short = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: 1000\r\n\r\n{\"Limit\":";
    assert_eq!(status_of(server.local_addr(), short).await, 408);
    assert_eq!(status_of(server.local_addr(), LIST_STREAMS).await, 200);
    server.shutdown().await;
}

/// A Content-Length over the largest valid request is refused with 413 before any of
/// the body is read (none is sent here).
#[tokio::test(flavor = "multi_thread")]
async fn a_content_length_over_the_largest_request_is_refused_with_413_before_the_body() {
    let server = start_server(test_server_config()).await;
    let huge = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: 1000000000\r\n\r\n";
    assert_eq!(status_of(server.local_addr(), huge).await, 413);
    server.shutdown().await;
}

/// When every slot holds a request in progress (bodies still coming), none can make
/// room: a new connection is answered 503 and closed at once.
#[tokio::test(flavor = "multi_thread")]
async fn busy_connections_at_the_limit_get_a_new_one_answered_503() {
    let mut config = test_server_config();
    config.max_connections = 4;
    let server = start_server(config).await;
    let addr = server.local_addr();
    // `Expect: 100-continue`: the server says "100 Continue" when the request's
    // handler starts reading the body, that is, once the request is in progress.
    let started = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n";
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut socket = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        socket
            .write_all(started)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut answer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("no 100 Continue within 10 s"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            answer[..read].starts_with(b"HTTP/1.1 100 Continue"),
            "{:?}",
            String::from_utf8_lossy(&answer[..read])
        );
        busy.push(socket);
    }
    assert_eq!(status_of(addr, LIST_STREAMS).await, 503);
    drop(busy);
    server.shutdown().await;
}

/// 1,500 idle sockets against the default limit of 1,024: a real request is still
/// answered, and promptly.
#[tokio::test(flavor = "multi_thread")]
async fn fifteen_hundred_idle_connections_do_not_keep_a_request_from_its_answer() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..1500 {
        idle.push(
            TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let began = std::time::Instant::now();
    assert_eq!(status_of(addr, LIST_STREAMS).await, 200);
    println!(
        "answered in {:?} with 1,500 idle connections open",
        began.elapsed()
    );
    drop(idle);
    server.shutdown().await;
}

/// An HTTP/2 connection (prior knowledge, as gRPC-style clients open them) that
/// makes no request is closed after the idle timeout, as an HTTP/1.1 one is.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let mut config = test_server_config();
    config.idle_timeout = Duration::from_secs(1);
    let server = start_server(config).await;
    let mut socket = TcpStream::connect(server.local_addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The client preface and an empty SETTINGS frame.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    socket
        .write_all(&preface)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let began = std::time::Instant::now();
    let mut frames = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut frames)).await;
    assert!(
        read.is_ok(),
        "the idle HTTP/2 connection is still open after 10 s"
    );
    // The server spoke HTTP/2 (its SETTINGS frame first), then closed.
    assert_eq!(frames.get(3), Some(&4), "no SETTINGS frame: {frames:?}");
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout"
    );
    server.shutdown().await;
}

/// The server process's peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// Sends a request head, then `body` while reading the answer; its status code.
async fn status_while_sending(addr: &str, head: &[u8], body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(head)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut reader, mut writer) = stream.into_split();
    let body = body.to_vec();
    // The server may answer and close before the body is through: writing then fails.
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(&body).await;
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 20 s");
    sender.abort();
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

/// A 40 MiB body is refused 413, whether it declares its length (refused unread: the
/// server's peak memory does not move by more than a few MiB) or comes chunked
/// (refused once past the largest valid request).
#[tokio::test(flavor = "multi_thread")]
async fn a_forty_mib_body_gets_413_declared_or_chunked() {
    let server = crate::support::ServerProcess::start(&["--create-delay-ms", "0"]);
    let addr = server.endpoint.trim_start_matches("http://").to_owned();
    let pid = server.child.id();
    let shape = "Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\n";
    let forty_mib = vec![b'x'; 40 << 20];
    let before = peak_rss_kib(pid);
    let declared = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n{shape}Content-Length: {}\r\n\r\n",
        forty_mib.len()
    );
    assert_eq!(
        status_while_sending(&addr, declared.as_bytes(), &forty_mib).await,
        413
    );
    let grown_mib = peak_rss_kib(pid).saturating_sub(before) as f64 / 1024.0;
    println!("peak RSS grew {grown_mib:.1} MiB for a declared 40 MiB body");
    assert!(grown_mib < 4.0, "peak RSS grew {grown_mib:.1} MiB");

    let chunked_head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n{shape}Transfer-Encoding: chunked\r\n\r\n"
    );
    let mut chunked = Vec::with_capacity(forty_mib.len() + 1024);
    for chunk in forty_mib.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(
        status_while_sending(&addr, chunked_head.as_bytes(), &chunked).await,
        413
    );
}
