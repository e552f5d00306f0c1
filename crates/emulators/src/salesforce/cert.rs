//! The connected app's JWT key: Salesforce takes an X.509 certificate; tests may also hand over
//! a bare public key. Only the RSA public key is needed, so a minimal DER walk finds it.

use base64::Engine;
use jsonwebtoken::DecodingKey;

/// A decoding key from a PEM `CERTIFICATE`, `PUBLIC KEY` or `RSA PUBLIC KEY`.
pub fn decoding_key(pem: &str) -> Option<DecodingKey> {
    if pem.contains("PUBLIC KEY-----") {
        return DecodingKey::from_rsa_pem(pem.as_bytes()).ok();
    }
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    let pkcs1 = rsa_key_of_certificate(&der)?;
    Some(DecodingKey::from_rsa_der(pkcs1))
}

/// One DER element: (tag, content, rest).
fn element(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let first = *d.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let content = d.get(header..header.checked_add(len)?)?;
    Some((tag, content, &d[header + len..]))
}

/// Certificate → tbsCertificate → subjectPublicKeyInfo → BIT STRING → PKCS#1 RSAPublicKey.
fn rsa_key_of_certificate(der: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // Optional [0] version.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = element(rest)?.2;
    }
    let (0x30, spki, _) = element(rest)? else {
        return None;
    };
    let (0x30, _alg, after_alg) = element(spki)? else {
        return None;
    };
    let (0x03, bits, _) = element(after_alg)? else {
        return None;
    };
    // The first byte of a BIT STRING counts unused bits; a key has none.
    match bits.split_first() {
        Some((0, key)) => Some(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert!(
            decoding_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_none()
        );
        assert!(
            decoding_key("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----").is_none()
        );
        assert!(decoding_key("").is_none());
        assert!(element(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_none());
        assert!(element(&[0x30, 0x05, 1]).is_none());
    }
}
