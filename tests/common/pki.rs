//! A certificate authority made in the test (rcgen), with a broker certificate for
//! 127.0.0.1 and localhost and client certificates it signs, written as PEM files.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// The PEM files of a test CA, the broker's certificate and key, and clients'.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub broker_cert: PathBuf,
    pub broker_key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A CA named `name` and a broker certificate it signs, in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let certificate = params.self_signed(&key).unwrap();
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, certificate.pem()).unwrap();
        let issuer = Issuer::new(params, key);
        let mut pki =
            Pki { dir: dir.to_path_buf(), ca, broker_cert: PathBuf::new(), broker_key: PathBuf::new(), issuer };
        let (cert, key) = pki.issue(&format!("{name}-broker"), &[("CN", "localhost")], &["localhost", "127.0.0.1"]);
        (pki.broker_cert, pki.broker_key) = (cert, key);
        pki
    }

    /// A certificate for `subject` (attributes most general first, as written in
    /// the certificate), with `names` as its subject alternative names: its PEM
    /// certificate and key files.
    pub fn issue(&self, file: &str, subject: &[(&str, &str)], names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            let kind = match *kind {
                "CN" => DnType::CommonName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "C" => DnType::CountryName,
                other => panic!("no DN type {other}"),
            };
            params.distinguished_name.push(kind, *value);
        }
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}.key")));
        std::fs::write(&cert_path, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}
