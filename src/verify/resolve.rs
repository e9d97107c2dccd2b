//! Where to connect: the [`Resolver`] seam that turns the broker's name into
//! socket addresses, its production adapter [`SystemResolver`], and
//! [`connect_addresses`], which honours a connect-address override without
//! asking any resolver at all.
//!
//! Owns: the choice between the override and the resolver.
//! Does not own: opening connections (see `connection`) or TLS names (the
//! override never changes the name used for SNI and verification).

use std::io;
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;

/// Turns a host name and port into socket addresses to try, in order.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Resolves `host` for `port`.
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (`tokio::net::lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A resolver answering from a closure (handy for tests and fixed tables).
pub struct FnResolver<F>(pub F);

#[async_trait]
impl<F> Resolver for FnResolver<F>
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync,
{
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        (self.0)(host, port)
    }
}

/// The addresses to try for `host:port`: the override alone when given (no
/// lookup of any kind), else whatever `resolver` answers. An IP-literal `host`
/// is used as is.
pub async fn connect_addresses(
    resolver: &dyn Resolver,
    host: &str,
    port: u16,
    connect_addr: Option<IpAddr>,
) -> io::Result<Vec<SocketAddr>> {
    if let Some(ip) = connect_addr {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = resolver.resolve(host, port).await?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name has no A or AAAA records",
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn refusing() -> FnResolver<impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>>> {
        FnResolver(|host: &str, _port: u16| -> io::Result<Vec<SocketAddr>> {
            panic!("the resolver must not be asked for {host}")
        })
    }

    #[tokio::test]
    async fn the_override_skips_the_resolver() {
        let addrs = connect_addresses(
            &refusing(),
            "mqtt.example.test",
            8883,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        )
        .await
        .expect("override");
        assert_eq!(addrs, vec!["127.0.0.1:8883".parse().expect("addr")]);
    }

    #[tokio::test]
    async fn ip_literals_skip_the_resolver() {
        let addrs = connect_addresses(&refusing(), "[::1]", 8084, None)
            .await
            .expect("literal");
        assert_eq!(addrs, vec!["[::1]:8084".parse().expect("addr")]);
    }

    #[tokio::test]
    async fn names_go_to_the_resolver_and_empty_answers_are_errors() {
        let table = FnResolver(|host: &str, port: u16| {
            assert_eq!(host, "mqtt.example.test");
            Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)])
        });
        let addrs = connect_addresses(&table, "mqtt.example.test", 1, None)
            .await
            .expect("resolved");
        assert_eq!(addrs.len(), 1);
        let empty = FnResolver(|_: &str, _: u16| Ok(Vec::new()));
        let err = connect_addresses(&empty, "mqtt.example.test", 1, None)
            .await
            .expect_err("empty");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
