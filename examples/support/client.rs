//! Two small HTTP/1.1 clients built on hyper: a pooled one for tokio
//! (hyper-util's client) and a runtime-agnostic one (one connection per
//! request over any `futures-io` stream, here smol's `TcpStream`).

use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HOST, RETRY_AFTER};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Any error a request can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response, read to the end.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code, e.g. 200 or 429.
    pub status: u16,
    /// The `Retry-After` header in seconds, if the server sent one.
    pub retry_after: Option<Duration>,
    /// The whole body.
    pub body: Bytes,
}

async fn read_answer<B>(response: Response<B>) -> Result<Answer, BoxError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// hyper-util's pooled HTTP/1.1 client on tokio.
pub type TokioClient = Client<HttpConnector, Empty<Bytes>>;

/// A pooled client for tokio.
pub fn tokio_client() -> TokioClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `GET url` with the tokio client, reading the whole body. The future owns
/// what it needs (`'static`), so it can be spawned or stored.
pub fn tokio_get(
    client: &TokioClient,
    url: &str,
) -> impl Future<Output = Result<Answer, BoxError>> + Send + 'static {
    let client = client.clone();
    let uri = url.parse::<Uri>();
    async move {
        let response = client.get(uri?).await?;
        read_answer(response).await
    }
}

/// `GET url` on any runtime: connects with smol's `TcpStream`, speaks
/// HTTP/1.1 with hyper's connection API, and drives the connection inside
/// this future (nothing is spawned). The future is `'static`.
pub fn smol_get(url: &str) -> impl Future<Output = Result<Answer, BoxError>> + Send + 'static {
    let uri = url.parse::<Uri>();
    async move { smol_get_uri(uri?).await }
}

async fn smol_get_uri(uri: Uri) -> Result<Answer, BoxError> {
    let authority = uri.authority().ok_or("url has no host")?.clone();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();

    let stream = smol::net::TcpStream::connect(authority.as_str()).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(smol_hyper::rt::FuturesIo::new(stream)).await?;
    let request = Request::get(path)
        .header(HOST, authority.as_str())
        .body(Empty::<Bytes>::new())?;
    let exchange = async move {
        let response = sender.send_request(request).await?;
        read_answer(response).await
    };
    // The connection future ends when the exchange drops its sender or the
    // connection fails; whichever finishes first decides.
    futures_lite::future::or(exchange, async move {
        connection.await?;
        Err::<Answer, BoxError>("connection closed before the response".into())
    })
    .await
}
