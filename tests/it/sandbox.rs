//! Tests of the local sandbox (moto + DNS server + Pebble on 127.0.0.1): the
//! `brokercert-sandbox` crate in tests/sandbox, a dev-dependency that the shipped binary
//! never compiles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brokercert_sandbox::{
    self, DnsFault, DnsServer, EabKey, Pebble, PebbleOptions, Sandbox, SandboxError,
    SandboxOptions, pid_is_alive,
};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- helpers

/// Sends one query over UDP; `None` if no answer came within `wait`.
async fn try_query_udp(
    addr: SocketAddr,
    name: &str,
    rtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let mut request = Message::query();
    request.add_query(Query::query(
        Name::from_ascii(name).expect("test name"),
        rtype,
    ));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind UDP");
    socket
        .send_to(&request.to_vec().expect("encode query"), addr)
        .await
        .expect("send query");
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .expect("receive answer");
    let response = Message::from_vec(&buf[..len]).expect("decode answer");
    assert_eq!(response.id, request.id, "query id echoed");
    assert_eq!(response.queries, request.queries, "question echoed");
    Some(response)
}

async fn query(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    try_query_udp(addr, name, rtype, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer for {name} {rtype}"))
}

async fn query_tcp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut request = Message::query();
    request.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    let bytes = request.to_vec().expect("encode");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect TCP");
    let len = u16::try_from(bytes.len()).expect("length");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(&bytes).await.expect("write");
    let len = stream.read_u16().await.expect("read length");
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.expect("read answer");
    let response = Message::from_vec(&buf).expect("decode");
    assert_eq!(response.id, request.id);
    response
}

fn txt_strings(record: &Record) -> Vec<String> {
    match &record.data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        other => panic!("not a TXT record: {other:?}"),
    }
}

fn all_txt(response: &Message) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = response
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::TXT)
        .map(txt_strings)
        .collect();
    out.sort();
    out
}

fn assert_soa_authority(response: &Message, zone: &str) {
    assert_eq!(
        response.authorities.len(),
        1,
        "one SOA in authority: {response}"
    );
    let soa = &response.authorities[0];
    assert_eq!(soa.name, Name::from_ascii(zone).expect("zone"));
    match &soa.data {
        RData::SOA(soa) => {
            assert!(soa.serial > 0);
            assert!(soa.minimum > 0);
        }
        other => panic!("not a SOA: {other:?}"),
    }
}

async fn start_sandbox(options: SandboxOptions) -> Sandbox {
    match Sandbox::start(options).await {
        Ok(sb) => sb,
        Err(e) => panic!("sandbox start failed: {e}"),
    }
}

// ---------------------------------------------------------------- DNS server

#[tokio::test]
async fn dns_server_answers_from_moto_record_sets() {
    let started = Instant::now();
    let sb = start_sandbox(
        SandboxOptions::new()
            .zone("example.test")
            .zone("delegate.test")
            .private_zone("example.test"),
    )
    .await;
    eprintln!("sandbox started in {:?}", started.elapsed());
    let dns = sb.dns_addr();
    let zone = sb.zone_id("example.test").expect("public zone id");
    let delegate = sb.zone_id("delegate.test").expect("delegate zone id");
    let private = sb
        .zones()
        .iter()
        .find(|(spec, _)| spec.private)
        .map(|(_, id)| id.clone())
        .expect("private zone id");

    // Two TXT values at one name.
    sb.upsert(
        &zone,
        "_acme-challenge.example.test",
        "TXT",
        60,
        &["\"first\"", "\"second\""],
    )
    .await
    .expect("upsert TXT");
    let r = query(dns, "_acme-challenge.example.test.", RecordType::TXT).await;
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.authoritative, "AA bit");
    assert_eq!(
        all_txt(&r),
        vec![vec!["first".to_owned()], vec!["second".to_owned()]]
    );

    // Quoted value with spaces, several strings, escapes, and an unquoted value.
    sb.upsert(
        &zone,
        "quoted.example.test",
        "TXT",
        60,
        &[
            "\"hello world\"",
            "\"part1\" \"part 2\"",
            r#""say \"hi\" \\ \052""#,
            "unquoted value",
        ],
    )
    .await
    .expect("upsert quoted TXT");
    let r = query(dns, "quoted.example.test.", RecordType::TXT).await;
    let mut expected = vec![
        vec!["hello world".to_owned()],
        vec!["part1".to_owned(), "part 2".to_owned()],
        vec![r#"say "hi" \ *"#.to_owned()],
        vec!["unquoted value".to_owned()],
    ];
    expected.sort();
    assert_eq!(all_txt(&r), expected);

    // CNAME into a second zone: the target's TXT comes in the same answer.
    sb.upsert(
        &zone,
        "_acme-challenge.www.example.test",
        "CNAME",
        60,
        &["_acme-challenge.www.delegate.test"],
    )
    .await
    .expect("upsert CNAME");
    sb.upsert(
        &delegate,
        "_acme-challenge.www.delegate.test",
        "TXT",
        60,
        &["\"delegated\""],
    )
    .await
    .expect("upsert delegated TXT");
    let r = query(dns, "_acme-challenge.www.example.test.", RecordType::TXT).await;
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 2, "CNAME + TXT: {r}");
    assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(
        r.answers[1].name,
        Name::from_ascii("_acme-challenge.www.delegate.test.").expect("name")
    );
    assert_eq!(txt_strings(&r.answers[1]), vec!["delegated".to_owned()]);
    // Asked for the CNAME itself: only the CNAME.
    let r = query(dns, "_acme-challenge.www.example.test.", RecordType::CNAME).await;
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].record_type(), RecordType::CNAME);

    // A record; names are case-insensitive; the public zone wins over the private one.
    sb.upsert(&zone, "www.example.test", "A", 300, &["192.0.2.10"])
        .await
        .expect("upsert A");
    sb.upsert(&private, "www.example.test", "A", 300, &["10.1.2.3"])
        .await
        .expect("upsert private A");
    let r = query(dns, "WWW.Example.TEST.", RecordType::A).await;
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(
        r.answers[0].data,
        RData::A("192.0.2.10".parse().expect("ip"))
    );
    assert_eq!(r.answers[0].ttl, 300);
    // Same over TCP.
    let r = query_tcp(dns, "www.example.test.", RecordType::A).await;
    assert_eq!(r.answers.len(), 1);

    // NODATA (name exists with other types) vs NXDOMAIN, both with the zone's SOA.
    let r = query(dns, "www.example.test.", RecordType::TXT).await;
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r, "example.test.");
    let r = query(dns, "nope.example.test.", RecordType::TXT).await;
    assert_eq!(r.response_code, ResponseCode::NXDomain);
    assert!(r.authoritative);
    assert_soa_authority(&r, "example.test.");
    // Empty non-terminal: `www` exists under `_acme-challenge`, so the latter is NODATA
    // for A, and so is `b.example.test` with `a.b.example.test` below it.
    sb.upsert(&zone, "a.b.example.test", "A", 60, &["192.0.2.11"])
        .await
        .expect("upsert deep A");
    let r = query(dns, "b.example.test.", RecordType::A).await;
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_soa_authority(&r, "example.test.");

    // SOA and NS at the apex: a synthesized SOA (moto's value is a Python dict).
    let r = query(dns, "example.test.", RecordType::SOA).await;
    assert_eq!(r.answers.len(), 1);
    let RData::SOA(soa) = &r.answers[0].data else {
        panic!("SOA expected: {r}");
    };
    let ns = query(dns, "example.test.", RecordType::NS).await;
    assert!(!ns.answers.is_empty());
    let RData::NS(first_ns) = &ns.answers[0].data else {
        panic!("NS expected: {ns}");
    };
    assert_eq!(soa.mname, first_ns.0);
    assert_eq!(
        soa.rname,
        Name::from_ascii("hostmaster.example.test.").expect("name")
    );

    // A name in no zone: REFUSED, not authoritative.
    let r = query(dns, "example.org.", RecordType::A).await;
    assert_eq!(r.response_code, ResponseCode::Refused);
    assert!(!r.authoritative);
    assert!(r.answers.is_empty());

    // A record written to moto is visible on the very next query, and so is a change.
    sb.upsert(&zone, "fresh.example.test", "TXT", 60, &["\"v1\""])
        .await
        .expect("upsert fresh");
    let r = query(dns, "fresh.example.test.", RecordType::TXT).await;
    assert_eq!(all_txt(&r), vec![vec!["v1".to_owned()]]);
    sb.upsert(&zone, "fresh.example.test", "TXT", 60, &["\"v2\""])
        .await
        .expect("upsert fresh again");
    let r = query(dns, "fresh.example.test.", RecordType::TXT).await;
    assert_eq!(all_txt(&r), vec![vec!["v2".to_owned()]]);

    // An answer too big for 512 bytes of UDP is truncated (TC); TCP carries it whole.
    let big: Vec<String> = (0..8)
        .map(|i| format!("\"{i}{}\"", "x".repeat(150)))
        .collect();
    let big_refs: Vec<&str> = big.iter().map(String::as_str).collect();
    sb.upsert(&zone, "big.example.test", "TXT", 60, &big_refs)
        .await
        .expect("upsert big TXT");
    let r = query(dns, "big.example.test.", RecordType::TXT).await;
    assert!(r.truncation, "TC bit set: {r}");
    assert!(r.answers.is_empty());
    let r = query_tcp(dns, "big.example.test.", RecordType::TXT).await;
    assert!(!r.truncation);
    assert_eq!(r.answers.len(), 8);

    // The query log saw the questions.
    assert!(
        sb.dns_queries()
            .iter()
            .any(|q| q.name == "fresh.example.test." && q.qtype == RecordType::TXT)
    );
}

#[tokio::test]
async fn dns_fault_knobs_servfail_and_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = brokercert_sandbox::MotoServer::start(None, dir.path())
        .await
        .expect("moto starts");
    let client = moto.client();
    let zone = brokercert_sandbox::moto::create_zone(&client, "faults.test", false)
        .await
        .expect("zone");
    brokercert_sandbox::moto::upsert(&client, &zone, "x.faults.test", "A", 60, &["192.0.2.1"])
        .await
        .expect("upsert");
    let dns = DnsServer::start(&moto.endpoint()).expect("DNS server starts");
    let addr = dns.addr();
    let faults = dns.faults();

    assert_eq!(
        query(addr, "x.faults.test.", RecordType::A)
            .await
            .response_code,
        ResponseCode::NoError
    );

    faults.servfail_until_reset();
    assert_eq!(faults.active(), Some(DnsFault::ServFail));
    let r = query(addr, "x.faults.test.", RecordType::A).await;
    assert_eq!(r.response_code, ResponseCode::ServFail);
    assert!(r.answers.is_empty());
    faults.reset();
    assert_eq!(
        query(addr, "x.faults.test.", RecordType::A)
            .await
            .response_code,
        ResponseCode::NoError
    );

    faults.drop_until_reset();
    let none = try_query_udp(
        addr,
        "x.faults.test.",
        RecordType::A,
        Duration::from_millis(300),
    )
    .await;
    assert!(none.is_none(), "no answer while dropping");
    faults.reset();

    // Timed faults end by themselves.
    faults.servfail_for(Duration::from_millis(300));
    assert_eq!(
        query(addr, "x.faults.test.", RecordType::A)
            .await
            .response_code,
        ResponseCode::ServFail
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(faults.active(), None);
    assert_eq!(
        query(addr, "x.faults.test.", RecordType::A)
            .await
            .response_code,
        ResponseCode::NoError
    );

    let log = dns.queries();
    assert!(
        log.iter().any(|q| q.rcode.is_none()),
        "the dropped query is logged"
    );
    assert!(log.iter().any(|q| q.rcode == Some(ResponseCode::ServFail)));
}

#[test]
fn txt_values_parse_like_route53() {
    use brokercert_sandbox::dns_server::parse_txt_value;
    let s = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    assert_eq!(parse_txt_value("\"token\""), s(&["token"]));
    assert_eq!(parse_txt_value("\"a b\" \"c\""), s(&["a b", "c"]));
    assert_eq!(parse_txt_value(r#""q\"uote\\d""#), s(&["q\"uote\\d"]));
    assert_eq!(parse_txt_value(r#""star\052""#), s(&["star*"]));
    assert_eq!(parse_txt_value("plain text"), s(&["plain text"]));
    assert_eq!(parse_txt_value("\"unterminated"), s(&["\"unterminated"]));
    assert_eq!(parse_txt_value("\"\""), s(&[""]));
    let long = "x".repeat(300);
    let parts = parse_txt_value(&long);
    assert_eq!(
        parts.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![255, 45]
    );
}

// ---------------------------------------------------------------- Pebble

#[tokio::test]
async fn pebble_directory_and_issuing_roots() {
    let sb = start_sandbox(SandboxOptions::new()).await;
    assert!(sb.acme_directory_url().starts_with("https://127.0.0.1:"));
    assert!(sb.acme_directory_url().ends_with("/dir"));
    assert!(sb.route53_endpoint().starts_with("http://127.0.0.1:"));
    assert!(sb.dns_addr().ip().is_loopback());

    let directory = sb.pebble().directory().await.expect("directory");
    assert!(
        directory["newOrder"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://127.0.0.1:")),
        "newOrder in {directory}"
    );

    let roots = sb.issuing_roots().await.expect("roots");
    assert!(!roots.is_empty());
    assert!(roots[0].contains("-----BEGIN CERTIFICATE-----"));
    let roots_file = std::fs::read_to_string(sb.pebble_roots_path()).expect("roots file");
    assert!(roots_file.contains(roots[0].trim()));
    let tls_ca = std::fs::read_to_string(sb.pebble_tls_ca_path()).expect("TLS CA file");
    assert!(tls_ca.contains("-----BEGIN CERTIFICATE-----"));
    assert_eq!(sb.pebble_tls_ca_path(), sb.dir().join("pebble-tls-ca.pem"));
    assert!(
        !sb.pebble()
            .intermediates()
            .await
            .expect("intermediates")
            .is_empty()
    );

    // A second Pebble has another root.
    let second_dir = sb.dir().join("second");
    std::fs::create_dir(&second_dir).expect("mkdir");
    let second = Pebble::start(&second_dir, sb.dns_addr(), &PebbleOptions::new())
        .await
        .expect("second pebble");
    let second_roots = second.issuing_roots().await.expect("second roots");
    assert_ne!(roots[0], second_roots[0], "roots change at every start");

    // The AWS environment for a child process.
    let env = sb.aws_env();
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("AWS_ENDPOINT_URL_ROUTE_53"),
        Some(sb.route53_endpoint())
    );
    assert_eq!(get("AWS_EC2_METADATA_DISABLED").as_deref(), Some("true"));
    let creds = get("AWS_SHARED_CREDENTIALS_FILE").expect("credentials file");
    assert!(creds.starts_with(&sb.dir().display().to_string()));
    assert_eq!(
        std::fs::read_to_string(&creds).expect("empty credentials file"),
        ""
    );
}

#[tokio::test]
async fn pebble_env_overrides_alternate_roots_and_eab() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No DNS server is needed to start Pebble: it is only asked during validation.
    let dns: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let eab = EabKey::random("kid-1");
    let options = PebbleOptions::new()
        .env("PEBBLE_ALTERNATE_ROOTS", "1")
        .env("PEBBLE_CHAIN_LENGTH", "3")
        .external_account_binding(eab.clone());
    assert!(
        options
            .effective_env()
            .contains(&("PEBBLE_VA_NOSLEEP".to_owned(), "1".to_owned()))
    );
    let pebble = Pebble::start(dir.path(), dns, &options)
        .await
        .expect("pebble starts");
    let roots = pebble.issuing_roots().await.expect("roots");
    assert_eq!(roots.len(), 2, "PEBBLE_ALTERNATE_ROOTS=1 gives two roots");
    let directory = pebble.directory().await.expect("directory");
    assert_eq!(
        directory["meta"]["externalAccountRequired"],
        serde_json::json!(true)
    );
    assert_eq!(pebble.eab(), Some(&eab));
}

#[tokio::test]
async fn refuses_always_valid_and_reports_missing_moto() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = PebbleOptions::new().env(brokercert_sandbox::pebble::FORBIDDEN_ENV, "1");
    let err = Pebble::start(dir.path(), "127.0.0.1:9".parse().expect("addr"), &options)
        .await
        .expect_err("the always-valid switch must be refused");
    assert!(matches!(err, SandboxError::InvalidOption(_)), "{err}");

    let err =
        Sandbox::start(SandboxOptions::new().moto_server(dir.path().join("nope/moto_server")))
            .await
            .expect_err("missing moto_server");
    assert!(matches!(err, SandboxError::MotoMissing { .. }), "{err}");
    assert!(err.to_string().contains(".ci/install"), "{err}");
}

// ---------------------------------------------------------------- lifecycle

#[tokio::test]
async fn everything_stops_on_drop() {
    let sb = start_sandbox(SandboxOptions::new().zone("stop.test")).await;
    let pids = sb.pids();
    let dir = sb.dir().to_owned();
    let dns = sb.dns_addr();
    assert!(pids.iter().all(|&pid| pid_is_alive(pid)), "{pids:?} alive");
    let r = query(dns, "stop.test.", RecordType::SOA).await;
    assert_eq!(r.response_code, ResponseCode::NoError);

    let stopping = Instant::now();
    drop(sb);
    eprintln!("sandbox stopped in {:?}", stopping.elapsed());
    for pid in pids {
        assert!(!pid_is_alive(pid), "PID {pid} still alive after drop");
    }
    assert!(!dir.exists(), "sandbox dir removed");
    // The DNS port is free again (UDP and TCP).
    std::net::UdpSocket::bind(dns).expect("DNS UDP port released");
    std::net::TcpListener::bind(dns).expect("DNS TCP port released");
}

// ---------------------------------------------------------------- end to end

/// Pebble really validates DNS-01 through the sandbox DNS server: one name with its TXT
/// in its own zone, one delegated by CNAME to another zone.
#[tokio::test]
async fn pebble_validates_dns01_through_the_sandbox_dns() {
    use instant_acme::{
        Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
        RetryPolicy,
    };

    let sb = start_sandbox(
        SandboxOptions::new()
            .zone("example.test")
            .zone("acme-delegate.test"),
    )
    .await;
    let zone = sb.zone_id("example.test").expect("zone");
    let delegate = sb.zone_id("acme-delegate.test").expect("delegate zone");
    sb.upsert(
        &zone,
        "_acme-challenge.delegated.example.test",
        "CNAME",
        60,
        &["delegated.acme-delegate.test"],
    )
    .await
    .expect("CNAME");

    let http = brokercert::acme::http::AcmeHttp::new(&[sb.pebble_tls_ca_path().to_path_buf()])
        .expect("HTTPS client trusting Pebble");
    let (account, _credentials) = Account::builder_with_http(Box::new(http))
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            sb.acme_directory_url(),
            None,
        )
        .await
        .expect("account");
    let names = ["direct.example.test", "delegated.example.test"];
    let identifiers: Vec<Identifier> = names
        .iter()
        .map(|n| Identifier::Dns((*n).to_owned()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .expect("order");
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.expect("authorization");
        assert_eq!(authz.status, AuthorizationStatus::Pending);
        let mut challenge = authz
            .challenge(ChallengeType::Dns01)
            .expect("dns-01 challenge");
        let name = challenge.identifier().to_string();
        let value = format!("\"{}\"", challenge.key_authorization().dns_value());
        if name == "delegated.example.test" {
            sb.upsert(
                &delegate,
                "delegated.acme-delegate.test",
                "TXT",
                60,
                &[&value],
            )
            .await
            .expect("delegated TXT");
        } else {
            sb.upsert(
                &zone,
                &format!("_acme-challenge.{name}"),
                "TXT",
                60,
                &[&value],
            )
            .await
            .expect("TXT");
        }
        challenge.set_ready().await.expect("set ready");
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(100))
        .backoff(1.5)
        .timeout(Duration::from_secs(20));
    let status = order.poll_ready(&retry).await.expect("poll ready");
    assert_eq!(
        status,
        OrderStatus::Ready,
        "pebble log: {}",
        sb.pebble().log_path().display()
    );

    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    let csr = params.serialize_request(&key).expect("CSR");
    order.finalize_csr(csr.der()).await.expect("finalize");
    let chain = order.poll_certificate(&retry).await.expect("certificate");
    assert!(
        chain.matches("-----BEGIN CERTIFICATE-----").count() >= 2,
        "leaf + intermediate"
    );

    let queries = sb.dns_queries();
    for name in [
        "_acme-challenge.direct.example.test.",
        "_acme-challenge.delegated.example.test.",
    ] {
        assert!(
            queries
                .iter()
                .any(|q| q.name.eq_ignore_ascii_case(name) && q.qtype == RecordType::TXT),
            "Pebble asked for {name}: {queries:?}"
        );
    }
}

/// Between `free_port` and moto's bind another server may take the port (seen in a fresh
/// network namespace under load): an answer from it must not count as moto being ready.
#[tokio::test(flavor = "multi_thread")]
async fn moto_is_not_ready_when_its_port_answers_for_another_server() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = squatter.local_addr().unwrap().port();
    let answering = tokio::spawn(async move {
        while let Ok((mut s, _)) = squatter.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let mut moto = brokercert_sandbox::MotoServer::spawn_on(None, dir.path(), port).expect("spawn");
    let ready = moto.wait_ready(Duration::from_secs(60)).await;
    answering.abort();
    assert!(
        ready.is_err(),
        "a server on moto's port that is not moto was taken for moto"
    );
}

/// `free_port` never hands out one port twice in a process.
#[test]
fn free_ports_are_not_handed_out_twice() {
    let ports: Vec<u16> = (0..200)
        .map(|_| brokercert_sandbox::free_port().expect("a free port"))
        .collect();
    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "{ports:?}");
}
