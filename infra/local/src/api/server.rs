//! The local HTTP server: every request through [`Api::handle`], at the time of the stack's clock.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::gateway::Api;
use crate::clock::Clock;

/// Serves `api` on `listener` until the task is dropped; returns the address.
pub fn spawn(
    listener: TcpListener,
    api: Arc<Api>,
    clock: Arc<Clock>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (api, clock) = (Arc::clone(&api), Arc::clone(&clock));
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (api, clock) = (Arc::clone(&api), Arc::clone(&clock));
                    async move {
                        let method = req.method().as_str().to_owned();
                        let path = req.uri().path().to_owned();
                        let query = req.uri().query().unwrap_or_default().to_owned();
                        let headers: Vec<(String, String)> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_owned(),
                                    v.to_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(http_body_util::Collected::to_bytes)
                            .unwrap_or_default();
                        let body = String::from_utf8_lossy(&body).into_owned();
                        let answer = api
                            .handle(&method, &path, &query, &headers, &body, clock.now())
                            .await;
                        let mut response =
                            hyper::Response::new(Full::new(Bytes::from(answer.body)));
                        *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
                            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                        for (k, v) in answer.headers {
                            if let (Ok(k), Ok(v)) = (
                                hyper::header::HeaderName::try_from(k),
                                hyper::header::HeaderValue::try_from(v),
                            ) {
                                response.headers_mut().insert(k, v);
                            }
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}
