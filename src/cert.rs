//! `keel cert`: the certificates of a cluster's mutual TLS. A cluster CA signs one certificate
//! per node; a node's certificate names its node id (a URI SAN, [`NODE_ID_URI_PREFIX`]`N`)
//! and the hosts it is reached at, and serves both ends of a connection (a node is the
//! client of its peers as often as their server).
//!
//! Peers check the chain to the cluster CA and the node id, not the host name: a node's
//! address may change (it is in the membership, not the certificate), its id may not.

use std::net::IpAddr;
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// How a node certificate names its node id: this prefix, then the id in decimal.
pub const NODE_ID_URI_PREFIX: &str = "urn:keel:node:";

/// How long the certificates `keel cert` makes are valid: a CA ten years, a node two.
const CA_VALID_DAYS: i64 = 3650;
const NODE_VALID_DAYS: i64 = 730;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0:?} is not a host name or IP address")]
    BadHost(String),
    #[error("node ids start at 1")]
    BadNodeId,
}

/// A new cluster CA, valid from now for ten years.
pub fn create_ca() -> Result<Pair, CertError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "Keel cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_VALID_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate for node `node_id`, reached at `hosts` (names or IP addresses), signed by
/// the CA `ca`.
pub fn create_node(ca: &Pair, node_id: u64, hosts: &[String]) -> Result<Pair, CertError> {
    if node_id == 0 {
        return Err(CertError::BadNodeId);
    }
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("keel node {node_id}"));
    let uri = format!("{NODE_ID_URI_PREFIX}{node_id}");
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    for host in hosts {
        let san = match IpAddr::from_str(host) {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if is_dns_name(host) => SanType::DnsName(host.clone().try_into()?),
            Err(_) => return Err(CertError::BadHost(host.clone())),
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, NODE_VALID_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Whether `host` is a DNS name: labels of letters, digits and hyphens, separated by dots.
fn is_dns_name(host: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.len() <= 253 && host.split('.').all(label)
}

/// Valid from a day ago (clocks of a cluster's machines differ a little) for `days`.
fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// The node id a DER certificate names ([`NODE_ID_URI_PREFIX`]), if it names exactly one.
pub fn node_id_of(der: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    let mut ids = names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(NODE_ID_URI_PREFIX),
            _ => None,
        });
    let id = ids.next()?.parse().ok().filter(|id| *id > 0)?;
    ids.next().is_none().then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_of(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("one certificate")
            .to_vec()
    }

    #[test]
    fn a_node_certificate_names_its_id_and_its_ca_does_not() {
        let ca = create_ca().unwrap();
        let node = create_node(&ca, 7, &["127.0.0.1".into(), "node7.example".into()]).unwrap();
        assert_eq!(node_id_of(&der_of(&node.cert_pem)), Some(7));
        assert_eq!(node_id_of(&der_of(&ca.cert_pem)), None);
        assert!(create_node(&ca, 0, &[]).is_err());
        assert!(create_node(&ca, 1, &["bad host".into()]).is_err());
    }
}
