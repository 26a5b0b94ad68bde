//! A self-signed certificate made in the test, and the rustls configs that
//! serve it and trust it.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A server config with a certificate for `host` (through
/// `ServerConfig::tls_config`), and a client config that trusts exactly that
/// certificate (ring provider, safe default versions).
pub fn self_signed(host: &str) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let certified = rcgen::generate_simple_self_signed(vec![host.to_owned()])
        .expect("a self-signed certificate");
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let server = effex::server::ServerConfig::tls_config(vec![cert.clone()], key)
        .expect("a TLS config for the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("the certificate as a root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, Arc::new(client))
}
