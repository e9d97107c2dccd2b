//! The CONNECT proxy the benchmark points lego at: `route53.amazonaws.com:443` reaches moto
//! through it (TLS with the proxy's CA), and any other target is refused with 403.

use std::time::Duration;

use brokercert_sandbox::{ConnectProxy, MotoServer, moto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_via(proxy: &ConnectProxy) -> reqwest::Client {
    let ca = std::fs::read(proxy.ca_path()).expect("reading the proxy's CA");
    let ca = reqwest::Certificate::from_pem(&ca).expect("the proxy's CA is PEM");
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(proxy.url()).expect("proxy URL"))
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(20))
        .build()
        .expect("building the client")
}

#[tokio::test]
async fn connect_to_route53_reaches_moto_over_tls_and_other_hosts_get_403() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = MotoServer::start(None, dir.path())
        .await
        .expect("starting moto (set BROKERCERT_MOTO_SERVER or run `bash .ci/install`)");
    let r53 = moto::route53_client(&moto.endpoint());
    moto::create_zone(&r53, "proxied.test", false)
        .await
        .expect("creating a zone");
    let proxy = ConnectProxy::start(&moto.endpoint(), dir.path())
        .await
        .expect("starting the proxy");

    // Route 53 by its real name: the zone made directly in moto is listed. moto picks the
    // service from the credential scope of an SDK's (unchecked) signature.
    let rsp = client_via(&proxy)
        .get("https://route53.amazonaws.com/2013-04-01/hostedzone")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/route53/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .send()
        .await
        .expect("ListHostedZones through the proxy");
    let status = rsp.status();
    let body = rsp.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("proxied.test."), "unexpected answer: {body}");

    // Anything else is refused before a byte goes anywhere.
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr())
        .await
        .expect("connecting to the proxy");
    tcp.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .expect("writing CONNECT");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.expect("reading");
    assert!(answer.starts_with("HTTP/1.1 403 "), "got {answer:?}");
    let err = client_via(&proxy)
        .get("https://elsewhere.test/")
        .send()
        .await
        .expect_err("a CONNECT elsewhere must fail");
    assert!(!err.is_status(), "{err}");

    assert_eq!(
        proxy.targets(),
        [
            "route53.amazonaws.com:443",
            "example.com:443",
            "elsewhere.test:443"
        ]
    );
}
