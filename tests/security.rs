//! TLS and SASL against the real binary, with a CA made in the test (rcgen): Kafka's
//! clients unchanged (kcat, confluent-kafka, kafka-python) over SASL_SSL with
//! SCRAM-SHA-512 and over SSL with a client certificate; wrong passwords, unknown
//! users and plaintext clients on a TLS port refused while the broker serves the
//! others; credentials kept across a restart; and the bad input of the issue (SASL
//! messages out of order, malformed or forged, TLS garbage, half-open handshakes),
//! each ending in an error or a closed connection.

mod common;

use common::clients::{python, script};
use common::kafka::KafkaConnection;
use common::pki::Pki;
use common::{metric, run_tool, Broker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A broker with a plaintext native listener, a plaintext Kafka listener (to make
/// users), Kafka over SASL_SSL, SSL (client certificates requested) and
/// SASL_PLAINTEXT, and the native protocol over TLS with SASL; the listener ports from
/// `first` up, so a restart finds them again.
fn config(dir: &Path, pki: &Pki, first: u16, extra: &str) -> std::path::PathBuf {
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get()) as u16;
    let kafka = first + shards + 1;
    let text = format!(
        r#"
[[listeners]]
name = "native"
protocol = "native"
port = {first}

[[listeners]]
name = "kafka"
protocol = "kafka"
port = {kafka}

[[listeners]]
name = "sasl-tls"
protocol = "kafka"
port = {sasl_tls}
security = "sasl_tls"

[[listeners]]
name = "tls"
protocol = "kafka"
port = {tls}
security = "tls"

[[listeners]]
name = "sasl"
protocol = "kafka"
port = {sasl}
security = "sasl_plaintext"

[[listeners]]
name = "native-sasl-tls"
protocol = "native"
port = {native_secure}
security = "sasl_tls"

[[listeners]]
name = "native-sasl"
protocol = "native"
port = {native_sasl}
security = "sasl_plaintext"

[[listeners]]
name = "mtls"
protocol = "kafka"
port = {mtls}
security = "tls"
client_auth = "required"

[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{ca}"
client_auth = "requested"
principal_mapping_rules = ["RULE:^CN=([^,]+),.*$/$1/L", "DEFAULT"]
handshake_timeout_ms = 1000

[sasl]
failure_delay_ms = 100
failure_delay_max_ms = 800
{extra}
"#,
        sasl_tls = kafka + 1,
        tls = kafka + 2,
        sasl = kafka + 3,
        native_secure = kafka + 4,
        native_sasl = kafka + 5 + shards,
        mtls = kafka + 6 + 2 * shards,
        cert = pki.broker_cert.display(),
        key = pki.broker_key.display(),
        ca = pki.ca.display(),
    );
    let path = dir.join("strand.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A run of free ports for `config`'s listeners.
fn ports() -> u16 {
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get()) as u16;
    common::free_ports(3 * shards + 8)
}

fn start(data: &Path, config: &Path) -> Broker {
    Broker::start_as_configured(data, &["--config", config.to_str().unwrap(), "--admin-port", "0"])
}

/// `secure.py STEP BOOTSTRAP SETTINGS ARGS…`: its JSON, or its stderr.
fn secure(
    step: &str,
    bootstrap: &str,
    settings: &serde_json::Value,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let path = script("secure.py");
    let settings = settings.to_string();
    let all = [&[path.to_str().unwrap(), step, bootstrap, settings.as_str()][..], args].concat();
    let (ok, stdout, stderr) = run_tool(python().to_str().unwrap(), &all, "");
    if !ok {
        return Err(stderr);
    }
    Ok(serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{step}: {stdout}")))
}

fn scram(pki: &Pki, user: &str, password: &str) -> serde_json::Value {
    serde_json::json!({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": pki.ca.to_str().unwrap(),
    })
}

fn client_certificate(pki: &Pki, cert: &Path, key: &Path) -> serde_json::Value {
    serde_json::json!({
        "security.protocol": "SSL",
        "ssl.ca.location": pki.ca.to_str().unwrap(),
        "ssl.certificate.location": cert.to_str().unwrap(),
        "ssl.key.location": key.to_str().unwrap(),
    })
}

/// Produces `count` records and reads them back in a group: every value, once.
fn roundtrip(client: &str, bootstrap: &str, settings: &serde_json::Value, topic: &str) {
    let result = secure("roundtrip", bootstrap, settings, &[client, topic, &format!("{topic}-group"), "200"])
        .unwrap_or_else(|stderr| panic!("{client} on {topic}: {stderr}"));
    assert_eq!(result["produced"], 200, "{client} {topic}: {result}");
    let mut values: Vec<String> =
        result["consumed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    values.sort();
    let mut expected: Vec<String> = (0..200).map(|i| format!("value-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected, "{client} {topic}: every record read back once");
}

/// kcat's arguments for SASL_SSL with SCRAM-SHA-512.
fn kcat_scram(pki: &Pki, port: u16, user: &str, password: &str) -> Vec<String> {
    [
        "-b".to_string(),
        format!("127.0.0.1:{port}"),
        "-X".into(),
        "security.protocol=SASL_SSL".into(),
        "-X".into(),
        "sasl.mechanisms=SCRAM-SHA-512".into(),
        "-X".into(),
        format!("sasl.username={user}"),
        "-X".into(),
        format!("sasl.password={password}"),
        "-X".into(),
        format!("ssl.ca.location={}", pki.ca.display()),
    ]
    .into()
}

fn kcat(args: &[String], rest: &[&str], stdin: &str) -> (bool, String, String) {
    let all: Vec<&str> = args.iter().map(String::as_str).chain(rest.iter().copied()).collect();
    run_tool("kcat", &all, stdin)
}

#[test]
fn kafka_clients_work_over_sasl_ssl_and_ssl_and_bad_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let (writer_cert, writer_key) = pki.issue("writer", &[("O", "Strand"), ("CN", "Writer")], &[]);
    let first = ports();
    let path = config(dir.path(), &pki, first, "");
    let data = dir.path().join("data");
    let mut broker = start(&data, &path);
    let plain = broker.kafka_bootstrap();
    let user = secure("user", &plain, &serde_json::json!({}), &["alice", "alice-secret", "SCRAM-SHA-512"]).unwrap();
    assert_eq!(user["ok"], true);
    let sasl_tls = format!("localhost:{}", broker.listener_port("sasl-tls"));
    let tls = format!("localhost:{}", broker.listener_port("tls"));

    roundtrip("confluent-kafka", &sasl_tls, &scram(&pki, "alice", "alice-secret"), "confluent-sasl");
    roundtrip("kafka-python", &sasl_tls, &scram(&pki, "alice", "alice-secret"), "python-sasl");
    roundtrip("confluent-kafka", &tls, &client_certificate(&pki, &writer_cert, &writer_key), "confluent-cert");
    roundtrip("kafka-python", &tls, &client_certificate(&pki, &writer_cert, &writer_key), "python-cert");

    let kcat_alice = kcat_scram(&pki, broker.listener_port("sasl-tls"), "alice", "alice-secret");
    let lines: String = (0..100).map(|i| format!("kcat-{i}\n")).collect();
    let (ok, _, stderr) = kcat(&kcat_alice, &["-P", "-t", "kcat-sasl"], &lines);
    assert!(ok, "kcat produces over SASL_SSL: {stderr}");
    let (ok, stdout, stderr) = kcat(&kcat_alice, &["-C", "-t", "kcat-sasl", "-o", "beginning", "-e", "-q"], "");
    assert!(ok, "kcat consumes over SASL_SSL: {stderr}");
    assert_eq!(stdout, lines, "kcat reads back every line");

    // Refusals: each fails, and the broker serves the next client.
    let wrong = secure("produce-fails", &sasl_tls, &scram(&pki, "alice", "not-her-secret"), &["refused"]).unwrap();
    assert_eq!(wrong["delivered"], false, "{wrong}");
    assert!(wrong["errors"].to_string().contains("_AUTHENTICATION"), "a wrong password: {wrong}");
    let unknown = secure("produce-fails", &sasl_tls, &scram(&pki, "mallory", "x"), &["refused"]).unwrap();
    assert!(unknown["errors"].to_string().contains("_AUTHENTICATION"), "an unknown user: {unknown}");
    let plaintext_on_tls = run_tool(
        "kcat",
        &["-b", &tls, "-L", "-m", "5", "-X", "socket.timeout.ms=3000", "-X", "metadata.request.timeout.ms=3000"],
        "",
    );
    assert!(!plaintext_on_tls.0, "a plaintext client on a TLS port gets no metadata: {}", plaintext_on_tls.1);
    let (ok, stdout, stderr) = kcat(&kcat_alice, &["-L", "-t", "kcat-sasl"], "");
    assert!(ok && stdout.contains("kcat-sasl"), "still served after the refusals: {stderr}");
    // A listener of its own that requires client certificates, where [tls] only asks.
    let mtls = format!("localhost:{}", broker.listener_port("mtls"));
    let ssl = |extra: &[String]| {
        let mut args: Vec<String> =
            ["-b", mtls.as_str(), "-L", "-m", "5", "-X", "security.protocol=SSL", "-X"].map(String::from).to_vec();
        args.push(format!("ssl.ca.location={}", pki.ca.display()));
        for setting in extra {
            args.extend(["-X".to_string(), setting.clone()]);
        }
        run_tool("kcat", &args.iter().map(String::as_str).collect::<Vec<_>>(), "")
    };
    let (ok, _, stderr) = ssl(&[]);
    assert!(!ok, "no certificate on a client_auth = \"required\" listener: refused ({stderr})");
    let cert = format!("ssl.certificate.location={}", writer_cert.display());
    let key = format!("ssl.key.location={}", writer_key.display());
    let (ok, stdout, stderr) = ssl(&[cert, key]);
    assert!(ok && stdout.contains("kcat-sasl"), "with one: served ({stderr})");
    let admin = broker.admin.clone().unwrap();
    assert!(metric(&admin, "strand_authentication_failures_total") >= 2.0, "failures counted");
    assert!(metric(&admin, "strand_tls_handshake_failures_total") >= 1.0, "failed handshakes counted");
    assert!(metric(&admin, "strand_authentications_total") >= 4.0, "successes counted");
    let stderr = broker.stderr();
    assert!(
        stderr.contains("SASL authentication failed") && stderr.contains("User:mallory"),
        "logged with the principal: {stderr}"
    );
    assert!(stderr.contains("TLS handshake failed"), "a plaintext client's handshake logged: {stderr}");

    // The credentials are in the metadata log: after a restart, alice still gets in.
    broker.kill();
    let broker = start(&data, &path);
    let (ok, stdout, stderr) = kcat(&kcat_alice, &["-C", "-t", "kcat-sasl", "-o", "beginning", "-e", "-q"], "");
    assert!(ok, "alice authenticates after a restart: {stderr}");
    assert_eq!(stdout, lines);
    drop(broker);
}

/// The native client's settings for alice on the native SASL_SSL listener.
fn native_config(pki: &Pki, user: &str, password: &str) -> strand_client::ClientConfig {
    strand_client::ClientConfig {
        tls: Some(strand_client::TlsConfig { ca_file: pki.ca.clone(), ..Default::default() }),
        credentials: Some(strand_client::Credentials::scram_sha512(user, password)),
        connect_timeout_ms: 3_000,
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// The native protocol over TLS with SCRAM (the Authenticate request), through
/// `strand-client` and the CLI: produce, a consumer group, the user's ACLs applied to
/// it; a wrong password, an unknown user, no credentials and a plaintext client
/// refused while the broker serves the others; and sessions that run out renewed by
/// the client without a failed request.
#[test]
fn the_native_client_and_cli_work_over_tls_with_scram() {
    use strand_client::{
        block_on, Client, ClientError, Consumer, ConsumerConfig, ErrorCode, GroupConfig, Producer, ProducerConfig,
        ProducerRecord, Reset,
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    // Every resource without an ACL is open, so one deny ACL shows that the native
    // connection's requests are alice's; sessions last 4 s.
    let extra = "session_lifetime_ms = 4000\n[authorization]\nenabled = true\nallow_everyone_if_no_acl_found = true\n";
    let broker = start(&dir.path().join("data"), &config(dir.path(), &pki, ports(), extra));
    let plain = broker.kafka_bootstrap();
    let file = dir.path().join("alice.pw");
    std::fs::write(&file, "alice-secret\n").unwrap();
    let new_user = ["user", "create", "alice", "--new-password-file", file.to_str().unwrap(), "--bootstrap", &plain];
    let (ok, _, stderr) = common::strand(&new_user, "");
    assert!(ok, "{stderr}");
    let deny = ["--principal", "User:alice", "--operation", "write", "--topic", "native-forbidden", "--deny"];
    let (ok, stdout, stderr) = common::strand(&[&["acl", "add"][..], &deny, &["--bootstrap", &plain]].concat(), "");
    assert!(ok && stdout.contains("1 entry added"), "{stdout}{stderr}");
    // With an ACL on the topic, what is not allowed is denied: alice may see it.
    let describe = ["--principal", "User:alice", "--operation", "describe", "--topic", "native-forbidden"];
    let (ok, _, stderr) = common::strand(&[&["acl", "add"][..], &describe, &["--bootstrap", &plain]].concat(), "");
    assert!(ok, "{stderr}");
    let port = broker.listener_port("native-sasl-tls");
    let bootstrap = format!("localhost:{port}");

    let client = Client::connect_with(&bootstrap, native_config(&pki, "alice", "alice-secret")).unwrap();
    block_on(client.create_topic("native-orders", 4, &[])).unwrap();
    block_on(client.create_topic("native-forbidden", 1, &[])).unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let values: Vec<String> = (0..1000).map(|i| format!("native-{i}")).collect();
    let deliveries: Vec<_> =
        values.iter().map(|v| producer.send(ProducerRecord::new("native-orders", v.as_bytes())).unwrap()).collect();
    for delivery in deliveries {
        delivery.wait().expect("produced over TLS as alice");
    }
    let denied = producer.send(ProducerRecord::new("native-forbidden", b"x")).unwrap().wait();
    assert!(
        matches!(&denied, Err(ClientError::Broker { code: ErrorCode::TopicAuthorizationFailed, .. })),
        "alice's deny ACL applies on the native listener: {denied:?}"
    );
    let mut consumer = Consumer::new(
        Client::connect_with(&bootstrap, native_config(&pki, "alice", "alice-secret")).unwrap(),
        ConsumerConfig { reset: Reset::Earliest, fetch_max_wait_ms: 100, ..ConsumerConfig::default() },
    );
    let group = GroupConfig { session_timeout: Duration::from_secs(6), ..GroupConfig::default() };
    block_on(consumer.subscribe("native-readers", &["native-orders"], group)).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < values.len() {
        assert!(Instant::now() < deadline, "{} of {} records read back", read.len(), values.len());
        for record in consumer.poll(Duration::from_millis(200)).unwrap() {
            read.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    read.sort();
    let mut want = values.clone();
    want.sort();
    assert_eq!(read, want, "every record read back once by the group over TLS");

    // Sessions of 4 s: the client moves to a new connection before each one ends, so
    // sends over 9 s never meet AuthenticationRequired.
    let admin = broker.admin.clone().unwrap();
    let before = metric(&admin, "strand_authentications_total");
    let until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < until {
        producer.send(ProducerRecord::new("native-orders", b"later")).unwrap().wait().expect("sent across renewals");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        metric(&admin, "strand_authentications_total") >= before + 2.0,
        "the producer's connections authenticated again as their sessions ran out"
    );

    // Refusals, each while the broker serves alice.
    let refused = |config: strand_client::ClientConfig| match Client::connect_with(&bootstrap, config) {
        Ok(_) => panic!("connected"),
        Err(error) => error,
    };
    let wrong = refused(native_config(&pki, "alice", "not-her-secret"));
    assert!(
        matches!(&wrong, ClientError::Authentication { reason, .. } if reason.contains("AuthenticationFailed")),
        "{wrong}"
    );
    let unknown = refused(native_config(&pki, "mallory", "x"));
    assert!(matches!(unknown, ClientError::Authentication { .. }), "{unknown}");
    let anonymous = refused(strand_client::ClientConfig { credentials: None, ..native_config(&pki, "", "") });
    assert!(
        matches!(&anonymous, ClientError::Broker { code: ErrorCode::AuthenticationRequired, .. }),
        "Metadata before Authenticate: {anonymous}"
    );
    let plaintext = refused(strand_client::ClientConfig { tls: None, ..native_config(&pki, "alice", "alice-secret") });
    assert!(!matches!(plaintext, ClientError::Authentication { .. }), "no SASL without TLS first: {plaintext}");
    let stranger = Pki::new(&dir.path().join("other"), "stranger");
    let untrusted = refused(strand_client::ClientConfig {
        tls: Some(strand_client::TlsConfig { ca_file: stranger.ca.clone(), ..Default::default() }),
        ..native_config(&pki, "alice", "alice-secret")
    });
    assert!(matches!(untrusted, ClientError::Tls { .. }), "a broker certificate of another CA: {untrusted}");
    block_on(client.refresh_metadata()).expect("alice still served");
    let stderr = broker.stderr();
    assert!(
        stderr.contains("SASL authentication failed")
            && stderr.contains("listener=\"native\"")
            && stderr.contains("User:mallory"),
        "native failures logged with listener and principal: {stderr}"
    );

    // The CLI: the same listener with --tls-ca, --user and --password-file.
    use common::strand;
    let ca = pki.ca.to_str().unwrap();
    let auth =
        ["--bootstrap", &bootstrap, "--tls-ca", ca, "--user", "alice", "--password-file", file.to_str().unwrap()];
    let (ok, stdout, stderr) = strand(&[&["topic", "list"][..], &auth].concat(), "");
    assert!(ok && stdout.contains("native-orders"), "{stdout}{stderr}");
    let (ok, _, stderr) = strand(&[&["produce", "native-cli"][..], &auth].concat(), "");
    assert!(!ok, "no such topic yet: {stderr}");
    let (ok, _, stderr) = strand(&[&["topic", "create", "native-cli", "--partitions", "1"][..], &auth].concat(), "");
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = strand(&[&["produce", "native-cli"][..], &auth].concat(), "one\ntwo\n");
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) =
        strand(&[&["consume", "native-cli", "--from", "earliest", "--count", "2"][..], &auth].concat(), "");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "one\ntwo\n");
    let (ok, _, stderr) = strand(&["topic", "list", "--bootstrap", &bootstrap, "--tls-ca", ca], "");
    assert!(!ok && stderr.contains("give --user"), "no credentials: {stderr}");
    drop(consumer);
    drop(broker);
}

/// A raw native connection: requests written as frames, one answer read at a time.
struct NativeConnection {
    stream: std::net::TcpStream,
    buf: bytes::BytesMut,
    next: u32,
}

/// An answer: a response, or an error frame's code and message.
type NativeAnswer = Result<strand_protocol::native::Response, (strand_protocol::native::ErrorCode, String)>;

impl NativeConnection {
    fn connect(port: u16) -> NativeConnection {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        NativeConnection { stream, buf: bytes::BytesMut::new(), next: 1 }
    }

    fn call(&mut self, request: strand_protocol::native::Request) -> NativeAnswer {
        use strand_protocol::native::{split_frame, ErrorFrame, Limits, Response};
        let mut out = Vec::new();
        request.encode(self.next, &mut out);
        self.next += 1;
        self.stream.write_all(&out).unwrap();
        loop {
            if let Some((header, payload)) = split_frame(&mut self.buf, &Limits::default()).unwrap() {
                if header.is_error() {
                    let frame = ErrorFrame::decode(&payload, &Limits::default()).unwrap();
                    return Err((frame.error, frame.message));
                }
                return Ok(Response::decode(&header, &payload, &Limits::default()).unwrap());
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).expect("an answer within 10 s");
            assert!(read > 0, "closed before answering {request:?}");
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }

    fn authenticate(
        &mut self,
        mechanism: &str,
        token: &[u8],
    ) -> strand_protocol::native::messages::AuthenticateResponse {
        use strand_protocol::native::messages::AuthenticateRequest;
        let request = AuthenticateRequest { mechanism: mechanism.into(), token: bytes::Bytes::copy_from_slice(token) };
        match self.call(strand_protocol::native::Request::Authenticate(request)) {
            Ok(strand_protocol::native::Response::Authenticate(response)) => response,
            other => panic!("an Authenticate response: {other:?}"),
        }
    }

    fn metadata(&mut self) -> NativeAnswer {
        use strand_protocol::native::messages::MetadataRequest;
        self.call(strand_protocol::native::Request::Metadata(MetadataRequest { all_topics: 1, topics: vec![] }))
    }

    fn api_versions(&mut self) -> NativeAnswer {
        use strand_protocol::native::messages::ApiVersionsRequest;
        self.call(strand_protocol::native::Request::ApiVersions(ApiVersionsRequest {}))
    }

    /// Whether the broker has closed the connection (reads end, within 10 s).
    fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

/// A broker of `config`'s listeners, authorization off, with the user alice
/// (`alice-secret`), made with `strand user create`.
fn with_alice() -> (tempfile::TempDir, Pki, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let broker = start(&dir.path().join("data"), &config(dir.path(), &pki, ports(), ""));
    let file = dir.path().join("alice.pw");
    std::fs::write(&file, "alice-secret\n").unwrap();
    let plain = broker.kafka_bootstrap();
    let new_user = ["user", "create", "alice", "--new-password-file", file.to_str().unwrap(), "--bootstrap", &plain];
    assert!(common::strand(&new_user, "").0);
    (dir, pki, broker)
}

/// Certificates replaced and SIGHUP sent: connections already open keep serving on
/// the old certificate, new ones get the new one (a client trusting only the old CA
/// is refused), and a file that cannot be read keeps the running certificate.
#[test]
fn tls_certificates_are_reloaded_on_sighup_without_dropping_connections() {
    use strand_client::{block_on, Client, ClientError, Producer, ProducerConfig, ProducerRecord};
    let (dir, pki, broker) = with_alice();
    let bootstrap = format!("localhost:{}", broker.listener_port("native-sasl-tls"));
    let before = Client::connect_with(&bootstrap, native_config(&pki, "alice", "alice-secret")).unwrap();
    block_on(before.create_topic("rotation", 1, &[])).unwrap();
    let producer = Producer::new(before.clone(), ProducerConfig::default());
    let send = |value: &[u8]| producer.send(ProducerRecord::new("rotation", value).partition(0)).unwrap().wait();
    send(b"before").expect("served on the first certificate");

    // The same paths, a certificate of another CA.
    let rotated = Pki::new(&dir.path().join("rotated"), "rotated");
    std::fs::copy(&rotated.broker_cert, &pki.broker_cert).unwrap();
    std::fs::copy(&rotated.broker_key, &pki.broker_key).unwrap();
    let hup = || assert_eq!(unsafe { libc::kill(broker.pid() as i32, libc::SIGHUP) }, 0);
    let wait_for = |text: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.stderr().matches(text).count() < count {
            assert!(Instant::now() < deadline, "no {text:?} in the log: {}", broker.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    hup();
    // Read again when a client trusting only the new CA gets in (the success is logged
    // at info, below the tests' log level).
    let trusting_new = || Client::connect_with(&bootstrap, native_config(&rotated, "alice", "alice-secret"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(error) = trusting_new() {
        assert!(Instant::now() < deadline, "the new certificate is not served after SIGHUP: {error}");
        std::thread::sleep(Duration::from_millis(50));
    }
    send(b"after").expect("the open connection is kept");
    let trusting_old = Client::connect_with(&bootstrap, native_config(&pki, "alice", "alice-secret"));
    assert!(matches!(trusting_old, Err(ClientError::Tls { .. })), "a new connection gets the new certificate");

    // A file that cannot be read: refused, logged, the running certificate stays.
    std::fs::write(&pki.broker_cert, "not a certificate").unwrap();
    hup();
    wait_for("SIGHUP: TLS files refused", 1);
    trusting_new().expect("still the new certificate");
    send(b"still").expect("and the first connection still serves");
    drop(producer);
    drop(broker);
}

/// The native Authenticate's bad input, frame by frame: requests before it, an
/// unoffered mechanism, malformed and forged SCRAM messages, a mechanism switched
/// mid-exchange, Authenticate on a listener without SASL. Each ends in the error
/// SPEC.md names, closed where it says; PLAIN then gets in, and the broker serves on.
#[test]
fn native_authenticate_refuses_bad_input_as_the_spec_says() {
    use strand::auth::scram::ScramClient;
    use strand_protocol::native::ErrorCode;
    let (_dir, _pki, broker) = with_alice();
    let port = broker.listener_port("native-sasl");

    let mut early = NativeConnection::connect(port);
    assert!(early.api_versions().is_ok(), "ApiVersions is served before Authenticate");
    match early.metadata() {
        Err((ErrorCode::AuthenticationRequired, message)) => {
            assert!(message.contains("before authentication"), "{message}")
        }
        other => panic!("Metadata before Authenticate: {other:?}"),
    }
    assert!(early.closed(), "closed after AuthenticationRequired");

    let mut unoffered = NativeConnection::connect(port);
    let answer = unoffered.authenticate("GSSAPI", b"");
    assert_eq!(answer.error, ErrorCode::UnsupportedMechanism);
    assert!(answer.message.contains("SCRAM-SHA-512"), "the mechanisms offered: {}", answer.message);
    assert!(unoffered.api_versions().is_ok(), "the connection stays open");

    for garbage in
        [&b"\xff\xfe"[..], b"n,,", b"p=tls-unique,,n=alice,r=x", b"n,,n=alice,r=abc,e=ext", &[b'n'; 5000][..]]
    {
        let mut malformed = NativeConnection::connect(port);
        let answer = malformed.authenticate("SCRAM-SHA-256", garbage);
        assert_eq!(answer.error, ErrorCode::AuthenticationFailed, "{garbage:?}");
        assert!(malformed.closed(), "closed after a malformed message");
    }

    let mut switched = NativeConnection::connect(port);
    let (_, first) = ScramClient::start(strand::metadata::ScramMechanism::Sha256, "alice", "alice-secret");
    assert_eq!(switched.authenticate("SCRAM-SHA-256", &first).error, ErrorCode::None);
    let answer = switched.authenticate("SCRAM-SHA-512", b"c=biws,r=x,p=AAAA");
    assert_eq!(answer.error, ErrorCode::AuthenticationFailed, "another mechanism mid-exchange");
    assert!(switched.closed());

    let mut forged = NativeConnection::connect(port);
    let (client, first) = ScramClient::start(strand::metadata::ScramMechanism::Sha512, "alice", "alice-secret");
    let server_first = forged.authenticate("SCRAM-SHA-512", &first);
    let (last, _) = client.respond(&server_first.token).unwrap();
    let last = String::from_utf8(last).unwrap();
    let nonce = last.split(',').nth(1).unwrap();
    let other = last.replace(nonce, "r=someone-elses-nonce");
    let answer = forged.authenticate("SCRAM-SHA-512", other.as_bytes());
    assert_eq!(answer.error, ErrorCode::AuthenticationFailed, "a forged nonce");
    assert!(forged.closed());

    let mut without_sasl = NativeConnection::connect(broker.listener_port("native"));
    let answer = without_sasl.authenticate("SCRAM-SHA-512", &first);
    assert_eq!(answer.error, ErrorCode::UnsupportedMechanism, "{}", answer.message);
    assert!(without_sasl.metadata().is_ok(), "a plaintext listener serves on");

    let mut alice = NativeConnection::connect(port);
    let answer = alice.authenticate("PLAIN", b"\0alice\0alice-secret");
    assert_eq!((answer.error, answer.authenticated), (ErrorCode::None, 1), "{}", answer.message);
    assert!(alice.metadata().is_ok(), "served once authenticated");
    let admin = broker.admin.clone().unwrap();
    assert!(metric(&admin, "strand_authentication_failures_total") >= 7.0, "failures counted");
    drop(broker);
}

/// A SASL_PLAINTEXT connection that completes SCRAM (the client side is
/// `strand::auth::scram::ScramClient`): the session lifetime, when `lifetime` is set.
fn authenticate(connection: &mut KafkaConnection, user: &str, password: &str) -> SaslAuthenticateResponse {
    authenticate_with(connection, strand::metadata::ScramMechanism::Sha256, user, password)
}

fn authenticate_with(
    connection: &mut KafkaConnection,
    mechanism: strand::metadata::ScramMechanism,
    user: &str,
    password: &str,
) -> SaslAuthenticateResponse {
    use strand::auth::scram::ScramClient;
    handshake(connection, mechanism.name());
    let (client, first) = ScramClient::start(mechanism, user, password);
    let answer = sasl_message(connection, first);
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let (last, signature) = client.respond(&answer.auth_bytes).unwrap();
    let answer = sasl_message(connection, last);
    if answer.error_code == 0 {
        ScramClient::verify(&answer.auth_bytes, &signature).expect("the broker proves it knows the credential");
    }
    answer
}

fn handshake(connection: &mut KafkaConnection, mechanism: &str) -> SaslHandshakeResponse {
    let mut request = SaslHandshakeRequest::default();
    request.mechanism = StrBytes::from_string(mechanism.into());
    connection.call(ApiKey::SaslHandshake, 1, &request)
}

fn sasl_message(connection: &mut KafkaConnection, bytes: Vec<u8>) -> SaslAuthenticateResponse {
    let mut request = SaslAuthenticateRequest::default();
    request.auth_bytes = bytes.into();
    connection.call(ApiKey::SaslAuthenticate, 2, &request)
}

fn metadata(connection: &mut KafkaConnection) -> i32 {
    let mut request = MetadataRequest::default();
    request.topics = None;
    connection.send(ApiKey::Metadata, 12, &request)
}

/// Sends `bytes` to `port` and reads until the broker closes: at most a TLS alert.
fn assert_closed_after_an_alert(port: u16, bytes: &[u8], what: &str) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    assert!(read.is_ok() || answer.is_empty(), "{what}: closed, not left open ({read:?})");
    assert!(
        answer.len() <= 7 && answer.first().is_none_or(|&kind| kind == 0x15),
        "{what}: an alert at most: {answer:?}"
    );
}

#[test]
fn sasl_and_tls_bad_input_ends_in_an_error_or_a_closed_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let path = config(dir.path(), &pki, ports(), "session_lifetime_ms = 2000");
    let broker = start(&dir.path().join("data"), &path);
    let created =
        secure("user", &broker.kafka_bootstrap(), &serde_json::json!({}), &["bob", "bob-secret", "SCRAM-SHA-256"]);
    assert!(created.is_ok(), "{created:?}");
    let sasl = broker.listener_port("sasl");

    // Anything but ApiVersions and the handshake before authentication: closed.
    let mut early = KafkaConnection::connect(sasl);
    let versions: ApiVersionsResponse = early.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(versions.api_keys.iter().any(|k| k.api_key == ApiKey::SaslAuthenticate as i16 && k.max_version == 2));
    metadata(&mut early);
    assert!(early.is_closed_by_broker(), "Metadata before authentication closes the connection");
    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE, then closed.
    let mut out_of_order = KafkaConnection::connect(sasl);
    let answer = sasl_message(&mut out_of_order, b"n,,n=bob,r=abc".to_vec());
    assert_eq!(answer.error_code, 34, "{answer:?}");
    assert!(out_of_order.is_closed_by_broker());
    // A mechanism not offered: UNSUPPORTED_SASL_MECHANISM with the list, then closed.
    let mut gssapi = KafkaConnection::connect(sasl);
    let answer = handshake(&mut gssapi, "GSSAPI");
    assert_eq!(answer.error_code, 33);
    let offered: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]);
    assert!(gssapi.is_closed_by_broker());

    // Failures from one address: answered ever later, each connection closed.
    let mut waits = Vec::new();
    for token in [&b"\xff\xfe not scram"[..], b"n,,n=bob", b"p=tls-unique,,n=bob,r=x"] {
        let mut malformed = KafkaConnection::connect(sasl);
        assert_eq!(handshake(&mut malformed, "SCRAM-SHA-256").error_code, 0);
        let started = Instant::now();
        let answer = sasl_message(&mut malformed, token.to_vec());
        waits.push(started.elapsed());
        assert_eq!(answer.error_code, 58, "{token:?}: SASL_AUTHENTICATION_FAILED");
        assert!(malformed.is_closed_by_broker());
    }
    assert!(
        waits[0] >= Duration::from_millis(100) && waits[2] >= Duration::from_millis(400),
        "the delay grows: {waits:?}"
    );
    // A final message whose nonce is not the exchange's.
    let mut forged = KafkaConnection::connect(sasl);
    handshake(&mut forged, "SCRAM-SHA-256");
    let (client, first) =
        strand::auth::scram::ScramClient::start(strand::metadata::ScramMechanism::Sha256, "bob", "bob-secret");
    let answer = sasl_message(&mut forged, first);
    let (last, _) = client.respond(&answer.auth_bytes).unwrap();
    let last = String::from_utf8(last).unwrap().replacen(",p=", "forged,p=", 1);
    assert_eq!(sasl_message(&mut forged, last.into_bytes()).error_code, 58);
    assert!(forged.is_closed_by_broker());
    // PLAIN with a wrong password, then the right one (the address's delay starts over).
    let mut plain = KafkaConnection::connect(sasl);
    handshake(&mut plain, "PLAIN");
    assert_eq!(sasl_message(&mut plain, b"\0bob\0wrong".to_vec()).error_code, 58);
    let mut plain = KafkaConnection::connect(sasl);
    handshake(&mut plain, "PLAIN");
    assert_eq!(sasl_message(&mut plain, b"\0bob\0bob-secret".to_vec()).error_code, 0);
    let correlation = metadata(&mut plain);
    let (answered, _): (i32, MetadataResponse) = plain.receive(ApiKey::Metadata, 12);
    assert_eq!(answered, correlation, "served once authenticated");

    // KIP-368: the session lasts 2 s; re-authenticating keeps it, letting it run out
    // closes the connection at the next request.
    let mut lapsing = KafkaConnection::connect(sasl);
    let mut renewing = KafkaConnection::connect(sasl);
    for connection in [&mut lapsing, &mut renewing] {
        let answer = authenticate(connection, "bob", "bob-secret");
        assert_eq!((answer.error_code, answer.session_lifetime_ms), (0, 2000), "{answer:?}");
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(authenticate(&mut renewing, "bob", "bob-secret").error_code, 0, "re-authentication");
    std::thread::sleep(Duration::from_millis(1200));
    let correlation = metadata(&mut renewing);
    let (answered, _): (i32, MetadataResponse) = renewing.receive(ApiKey::Metadata, 12);
    assert_eq!(answered, correlation, "a renewed session is served");
    metadata(&mut lapsing);
    assert!(lapsing.is_closed_by_broker(), "an expired session is closed");

    // TLS: garbage, a plaintext Kafka request, and a handshake never begun.
    let tls = broker.listener_port("tls");
    let garbage = [0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7];
    assert_closed_after_an_alert(tls, &garbage, "TLS garbage");
    let (_, request) = KafkaConnection::connect(tls).frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_closed_after_an_alert(tls, &request, "a plaintext Kafka request on a TLS port");
    let started = Instant::now();
    let mut silent = KafkaConnection::connect(tls);
    assert!(silent.is_closed_by_broker(), "a silent client is closed");
    assert!(started.elapsed() >= Duration::from_millis(900), "by the handshake timeout, not before");
    let stderr = broker.stderr();
    assert!(stderr.contains("not finished within 1000 ms"), "{stderr}");
    assert!(stderr.contains("before SASL authentication"), "{stderr}");
}

fn sasl_plain(user: &str, password: &str) -> serde_json::Value {
    serde_json::json!({
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
    })
}

/// ACLs made while authorization is off (as a deployment bootstraps), kept across the
/// restart that turns it on, then enforced on both protocols' Kafka clients: a denied
/// write fails with TOPIC_AUTHORIZATION_FAILED while an allowed topic takes records, a
/// group not allowed fails with GROUP_AUTHORIZATION_FAILED, Metadata lists only the
/// topics the principal may describe, and the ACL APIs need the cluster.
#[test]
fn acls_allow_and_deny_per_topic_and_group_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let first = ports();
    let open = config(dir.path(), &pki, first, "");
    let data = dir.path().join("data");
    let mut broker = start(&data, &open);
    let plain = broker.kafka_bootstrap();
    let anonymous = serde_json::json!({});
    for (user, password) in [("alice", "alice-secret"), ("admin", "admin-secret")] {
        secure("user", &plain, &anonymous, &[user, password, "SCRAM-SHA-512"]).unwrap();
    }
    for topic in ["orders", "ledger", "hidden"] {
        assert_eq!(secure("produce", &plain, &anonymous, &[topic]).unwrap()["error"], serde_json::Value::Null);
    }
    let entries = serde_json::json!([
        ["TOPIC", "orders", "LITERAL", "User:alice", "*", "WRITE", "ALLOW"],
        ["TOPIC", "orders", "LITERAL", "User:alice", "*", "READ", "ALLOW"],
        ["TOPIC", "led", "PREFIXED", "User:alice", "*", "ALL", "ALLOW"],
        ["TOPIC", "ledger", "LITERAL", "User:alice", "*", "WRITE", "DENY"],
        ["GROUP", "readers", "LITERAL", "User:*", "*", "READ", "ALLOW"],
    ]);
    assert_eq!(secure("acls-create", &plain, &anonymous, &[&entries.to_string()]).unwrap()["created"], 5);
    broker.kill();

    // Authorization on, after a restart: the ACLs are still there.
    let enforced = config(dir.path(), &pki, first, "[authorization]\nenabled = true\nsuper_users = [\"User:admin\"]");
    let broker = start(&data, &enforced);
    let sasl = format!("127.0.0.1:{}", broker.listener_port("sasl"));
    let (alice, admin) = (sasl_plain("alice", "alice-secret"), sasl_plain("admin", "admin-secret"));
    let described = secure("acls-describe", &sasl, &admin, &[]).unwrap();
    assert_eq!(described["acls"].as_array().map(Vec::len), Some(5), "kept across the restart: {described}");

    assert_eq!(secure("produce", &sasl, &alice, &["orders"]).unwrap()["error"], serde_json::Value::Null);
    // An idempotent producer's InitProducerId needs write on some topic: alice has it.
    let mut idempotent = alice.clone();
    idempotent["enable.idempotence"] = true.into();
    assert_eq!(secure("produce", &sasl, &idempotent, &["orders"]).unwrap()["error"], serde_json::Value::Null);
    let denied = secure("produce", &sasl, &alice, &["ledger"]).unwrap();
    assert_eq!(denied["error"], "TOPIC_AUTHORIZATION_FAILED", "deny wins over the prefixed allow: {denied}");
    let read = secure("consume", &sasl, &alice, &["orders", "readers"]).unwrap();
    assert_eq!(
        (read["error"].clone(), read["values"].as_array().map(Vec::len)),
        (serde_json::Value::Null, Some(3)),
        "{read}"
    );
    let group = secure("consume", &sasl, &alice, &["orders", "strangers"]).unwrap();
    assert_eq!(group["error"], "GROUP_AUTHORIZATION_FAILED", "{group}");
    assert_eq!(secure("topics", &sasl, &alice, &[]).unwrap()["topics"], serde_json::json!(["ledger", "orders"]));
    assert_eq!(
        secure("topics", &sasl, &admin, &[]).unwrap()["topics"],
        serde_json::json!(["hidden", "ledger", "orders"])
    );
    // The ACL APIs need the cluster (confluent-kafka reports a refused DescribeAcls as an
    // empty list, so this is read off the wire).
    let mut wire = KafkaConnection::connect(broker.listener_port("sasl"));
    let answer = authenticate_with(&mut wire, strand::metadata::ScramMechanism::Sha512, "alice", "alice-secret");
    assert_eq!(answer.error_code, 0);
    let mut request = DescribeAclsRequest::default();
    (request.resource_type_filter, request.pattern_type_filter, request.operation, request.permission_type) =
        (1, 1, 1, 1);
    let refused: DescribeAclsResponse = wire.call(ApiKey::DescribeAcls, 3, &request);
    assert_eq!(refused.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED: {refused:?}");
    let cluster: DescribeClusterResponse = wire.call(ApiKey::DescribeCluster, 0, &DescribeClusterRequest::default());
    assert_eq!(cluster.error_code, 31, "DescribeCluster needs describe on the cluster: {cluster:?}");
    // Offsets: a commit reads each topic, a fetch describes it; alice may read orders
    // and not hidden, in a group she may read.
    let mut commit = OffsetCommitRequest::default();
    (commit.group_id, commit.generation_id_or_member_epoch) = (GroupId(StrBytes::from_static_str("readers")), -1);
    commit.topics = ["orders", "hidden"]
        .iter()
        .map(|topic| {
            let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
            (partition.partition_index, partition.committed_offset) = (0, 1);
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            (t.name, t.partitions) = (common::kafka::name(topic), vec![partition]);
            t
        })
        .collect();
    let committed: OffsetCommitResponse = wire.call(ApiKey::OffsetCommit, 8, &commit);
    let codes: Vec<(String, i16)> =
        committed.topics.iter().map(|t| (t.name.0.to_string(), t.partitions[0].error_code)).collect();
    assert_eq!(codes, [("orders".into(), 0), ("hidden".into(), 29)], "TOPIC_AUTHORIZATION_FAILED for hidden");
    let mut fetch = OffsetFetchRequest::default();
    fetch.group_id = GroupId(StrBytes::from_static_str("readers"));
    fetch.topics = Some(
        ["orders", "hidden"]
            .iter()
            .map(|topic| {
                let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
                (t.name, t.partition_indexes) = (common::kafka::name(topic), vec![0]);
                t
            })
            .collect(),
    );
    let fetched: OffsetFetchResponse = wire.call(ApiKey::OffsetFetch, 7, &fetch);
    let positions: Vec<(String, i64, i16)> = fetched
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions[0].committed_offset, t.partitions[0].error_code))
        .collect();
    assert_eq!(positions, [("orders".into(), 1, 0), ("hidden".into(), -1, 29)], "{fetched:?}");
    // An anonymous client (the plaintext listener) is allowed nothing.
    let plain = broker.kafka_bootstrap();
    assert_eq!(secure("topics", &plain, &anonymous, &[]).unwrap()["topics"], serde_json::json!([]));
    assert_eq!(secure("produce", &plain, &anonymous, &["orders"]).unwrap()["error"], "TOPIC_AUTHORIZATION_FAILED");
    assert!(metric(broker.admin.as_ref().unwrap(), "strand_authorization_denials_total") >= 3.0);
    let stderr = broker.stderr();
    assert!(stderr.contains("authorization denied") && stderr.contains("User:alice"), "{stderr}");
}

/// AlterClientQuotas for a client id, read back with DescribeClientQuotas, on the wire.
fn set_quota(port: u16, client_id: &str, key: &str, value: f64) -> DescribeClientQuotasResponse {
    use kafka_protocol::messages::{alter_client_quotas_request as alter, describe_client_quotas_request as describe};
    let mut wire = KafkaConnection::connect(port);
    let mut entity = alter::EntityData::default();
    (entity.entity_type, entity.entity_name) = ("client-id".into(), Some(StrBytes::from_string(client_id.into())));
    let mut op = alter::OpData::default();
    (op.key, op.value) = (StrBytes::from_string(key.into()), value);
    let mut entry = alter::EntryData::default();
    (entry.entity, entry.ops) = (vec![entity], vec![op]);
    let mut request = AlterClientQuotasRequest::default();
    request.entries = vec![entry];
    let altered: AlterClientQuotasResponse = wire.call(ApiKey::AlterClientQuotas, 1, &request);
    assert_eq!(altered.entries[0].error_code, 0, "{altered:?}");
    let mut component = describe::ComponentData::default();
    (component.entity_type, component.match_type) = ("client-id".into(), 2);
    let mut request = DescribeClientQuotasRequest::default();
    request.components = vec![component];
    wire.call(ApiKey::DescribeClientQuotas, 1, &request)
}

/// A client id with a `request_percentage` of 1 (1% of one shard's time) sending
/// Metadata requests back to back: its answers carry throttle times once it is over,
/// and after each, its connection is not read until the time has passed; a client id
/// without the quota, in the same run, is never throttled.
#[test]
fn a_client_over_its_request_percentage_is_throttled_and_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let port = broker.kafka_port.unwrap();
    let described = set_quota(port, "storm", "request_percentage", 1.0);
    let entries = described.entries.expect("entries");
    assert_eq!((entries[0].values[0].key.as_str(), entries[0].values[0].value), ("request_percentage", 1.0));
    let request = |conn: &mut KafkaConnection| -> (i32, Duration) {
        let started = Instant::now();
        let mut request = MetadataRequest::default();
        request.topics = None;
        let answer: MetadataResponse = conn.call(ApiKey::Metadata, 12, &request);
        (answer.throttle_time_ms, started.elapsed())
    };
    let mut storm = KafkaConnection::connect_as(port, "storm");
    let (mut throttled, mut sent, mut held) = (0, 0, 0);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (throttle, first) = request(&mut storm);
        sent += 1;
        if throttle > 0 {
            throttled += 1;
            // Sent at once: the broker reads it only once the throttle, which began
            // when the first was answered, has passed.
            let (_, second) = request(&mut storm);
            sent += 1;
            assert!(
                first + second >= Duration::from_millis(throttle as u64),
                "the connection rests for the {throttle} ms it was told: both answered in {:?}",
                first + second
            );
            held += 1;
        }
    }
    assert!(throttled > 0 && held > 0, "{sent} requests in 3 s, none throttled");
    let mut calm = KafkaConnection::connect(port);
    for _ in 0..200 {
        assert_eq!(request(&mut calm).0, 0, "a client id without the quota is not throttled");
    }
    eprintln!("request_percentage 1: {sent} Metadata requests in 3 s, {throttled} answers throttled");
    assert!(metric(broker.admin.as_ref().unwrap(), "strand_throttled_requests_total") >= throttled as f64);
}

/// A producer whose client id has a `producer_byte_rate` of 1 MB/s is held within 10%
/// of it over 10 s, told so in throttle times, and never disconnected; a producer with
/// another client id, in the same run, is not held; a consumer with a
/// `consumer_byte_rate` of 2 MB/s is held near it.
#[test]
fn a_producer_over_its_byte_rate_is_held_to_it_and_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let port = broker.kafka_port.unwrap();
    let described = set_quota(port, "loader", "producer_byte_rate", 1_000_000.0);
    let entries = described.entries.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].values[0].key.as_str(), entries[0].values[0].value), ("producer_byte_rate", 1e6));
    let bootstrap = broker.kafka_bootstrap();
    let held = secure("rate", &bootstrap, &serde_json::json!({"client.id": "loader"}), &["quota", "12"]).unwrap();
    let seconds: Vec<f64> = held["per_second"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).collect();
    // The first two seconds find the bucket's start; the next ten are the measure.
    let measured: f64 = seconds[2..12].iter().sum::<f64>() / 10.0;
    assert!((measured - 1e6).abs() <= 1e5, "held to 1 MB/s within 10%: {measured:.0} B/s ({seconds:?})");
    assert!(held["throttles"].as_u64().unwrap() > 0, "told so in throttle_time_ms: {held}");
    let free = secure("rate", &bootstrap, &serde_json::json!({"client.id": "other"}), &["quota", "3"]).unwrap();
    let free_rate: f64 = free["per_second"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).sum::<f64>() / 3.0;
    assert!(free_rate > 2e6, "another client id is not held: {free_rate:.0} B/s");
    eprintln!("held {measured:.0} B/s ({seconds:?}), free {free_rate:.0} B/s, throttles {}", held["throttles"]);
    assert!(metric(broker.admin.as_ref().unwrap(), "strand_throttled_requests_total") > 0.0);
    // A consumer with a consumer_byte_rate of 2 MB/s, reading what is stored.
    set_quota(port, "reader", "consumer_byte_rate", 2_000_000.0);
    let read =
        secure("consume-rate", &bootstrap, &serde_json::json!({"client.id": "reader"}), &["quota", "g", "8"]).unwrap();
    let seconds: Vec<f64> = read["per_second"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).collect();
    let measured: f64 = seconds[2..8].iter().sum::<f64>() / 6.0;
    assert!((measured - 2e6).abs() <= 3e5, "a consumer held to 2 MB/s within 15%: {measured:.0} B/s ({seconds:?})");
    eprintln!("consumer held at {measured:.0} B/s ({seconds:?})");
}

/// `strand user` and `strand acl` against the real binary: users made over the
/// plaintext listener, then listed, ACLs added, listed and removed, and a user deleted,
/// as `admin` authenticated with SCRAM over TLS; passwords come from files, never argv.
#[test]
fn strand_user_and_strand_acl_round_trip() {
    use common::strand;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let broker = start(&dir.path().join("data"), &config(dir.path(), &pki, ports(), ""));
    let plain = broker.kafka_bootstrap();
    let secret = |name: &str, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{password}\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (admin_file, alice_file, wrong_file) =
        (secret("admin.pw", "admin-secret"), secret("alice.pw", "alice-secret"), secret("wrong.pw", "nope"));
    for (user, file) in [("admin", &admin_file), ("alice", &alice_file)] {
        let (ok, stdout, stderr) =
            strand(&["user", "create", user, "--new-password-file", file, "--bootstrap", &plain], "");
        assert!(ok, "{stderr}");
        assert!(stdout.contains(&format!("user {user}: SCRAM-SHA-512 credential set (8192 iterations)")), "{stdout}");
    }
    let (ok, _, stderr) = strand(&["user", "create", "carol", "--bootstrap", &plain], "");
    assert!(!ok && stderr.contains("STRAND_NEW_PASSWORD"), "no password on argv: {stderr}");

    let secure = format!("localhost:{}", broker.listener_port("sasl-tls"));
    let ca = pki.ca.to_str().unwrap();
    let as_admin = |args: &[&str]| {
        let auth = ["--bootstrap", &secure, "--tls-ca", ca, "--user", "admin", "--password-file", &admin_file];
        strand(&[args, &auth[..]].concat(), "")
    };
    let (ok, stdout, stderr) = as_admin(&["user", "list"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "admin\tSCRAM-SHA-512 (8192 iterations)\nalice\tSCRAM-SHA-512 (8192 iterations)\n");
    let (ok, stdout, stderr) = as_admin(&[
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "read,write",
        "--topic",
        "orders",
        "--prefixed",
    ]);
    assert!(ok && stdout.contains("2 entries added"), "{stdout}{stderr}");
    let (ok, stdout, stderr) =
        as_admin(&["acl", "add", "--principal", "User:*", "--operation", "describe", "--group", "g", "--deny"]);
    assert!(ok && stdout.contains("1 entry added"), "{stdout}{stderr}");
    let (ok, stdout, _) = as_admin(&["acl", "list"]);
    assert!(ok);
    assert_eq!(
        stdout,
        "allow\tUser:alice\tread\ttopic:orders (prefixed)\tfrom *\n\
         allow\tUser:alice\twrite\ttopic:orders (prefixed)\tfrom *\n\
         deny\tUser:*\tdescribe\tgroup:g\tfrom *\n"
    );
    let (ok, stdout, _) = as_admin(&[
        "acl",
        "remove",
        "--principal",
        "User:alice",
        "--operation",
        "write",
        "--topic",
        "orders",
        "--prefixed",
    ]);
    assert!(ok && stdout.contains("1 entry removed"), "{stdout}");
    let (_, stdout, _) = as_admin(&["acl", "list", "--topic", "orders", "--prefixed"]);
    assert_eq!(stdout, "allow\tUser:alice\tread\ttopic:orders (prefixed)\tfrom *\n");
    let (ok, stdout, _) = as_admin(&["user", "delete", "alice"]);
    assert!(ok && stdout.contains("user alice: deleted"), "{stdout}");
    let (_, stdout, _) = as_admin(&["user", "list"]);
    assert_eq!(stdout, "admin\tSCRAM-SHA-512 (8192 iterations)\n");
    let wrong =
        ["user", "list", "--bootstrap", &secure, "--tls-ca", ca, "--user", "admin", "--password-file", &wrong_file];
    let (ok, _, stderr) = strand(&wrong, "");
    assert!(!ok && stderr.contains("authentication failed"), "{stderr}");
}

/// The admin endpoint over HTTPS with a bearer token: /metrics refused without the
/// token (401) and with a wrong one, served with it; /healthz and /readyz open.
#[test]
fn the_admin_endpoint_takes_tls_and_a_bearer_token_for_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "strand");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "s3cret-token-of-some-length\n").unwrap();
    let extra = format!("[admin]\ntls = true\ntoken_file = \"{}\"", token_file.display());
    let broker = start(&dir.path().join("data"), &config(dir.path(), &pki, ports(), &extra));
    let port = broker.admin_https.as_ref().expect("an https admin endpoint").rsplit(':').next().unwrap().to_string();
    let curl = |path: &str, token: Option<&str>| {
        let url = format!("https://localhost:{port}{path}");
        let header = token.map(|t| format!("Authorization: Bearer {t}")).unwrap_or_default();
        let mut args = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", pki.ca.to_str().unwrap(), &url];
        if token.is_some() {
            args.extend(["-H", &header]);
        }
        let (_, status, stderr) = run_tool("curl", &args, "");
        assert!(!status.is_empty(), "{stderr}");
        status
    };
    assert_eq!(curl("/metrics", None), "401");
    assert_eq!(curl("/metrics", Some("wrong-token-of-some-length")), "401");
    assert_eq!(curl("/metrics", Some("s3cret-token-of-some-length")), "200");
    assert_eq!(curl("/healthz", None), "200");
    assert_eq!(curl("/readyz", None), "200");
    let (ok, _, _) = run_tool("curl", &["-s", "-f", &format!("http://127.0.0.1:{port}/healthz")], "");
    assert!(!ok, "plain HTTP is not served on the HTTPS port");
}
