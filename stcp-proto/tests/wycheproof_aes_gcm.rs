//! Wycheproof AES-GCM vectors (256-bit keys, 96-bit nonces, 128-bit tags)
//! through both crypto backends.

use stcp_proto::crypto::AeadKey;
use stcp_proto::CryptoBackend;
use wycheproof::aead::{TestName, TestSet};
use wycheproof::TestResult;

fn run(backend: CryptoBackend) -> (usize, usize) {
    let set = TestSet::load(TestName::AesGcm).expect("wycheproof AES-GCM vectors");
    let (mut valid, mut invalid) = (0, 0);
    for group in set
        .test_groups
        .iter()
        .filter(|g| g.key_size == 256 && g.nonce_size == 96 && g.tag_size == 128)
    {
        for test in &group.tests {
            let key: [u8; 32] = test.key.as_slice().try_into().unwrap();
            let nonce: [u8; 12] = test.nonce.as_slice().try_into().unwrap();
            let tag: [u8; 16] = test.tag.as_slice().try_into().unwrap();
            let aead: Box<dyn AeadKey> = (backend.provider().aes256gcm)(&key);
            let mut buf = test.ct.to_vec();
            let opened = aead.open_in_place(&nonce, &test.aad, &mut buf, &tag);
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert!(opened.is_ok(), "{backend}: tc {} must open", test.tc_id);
                    assert_eq!(buf, *test.pt, "{backend}: tc {} plaintext", test.tc_id);
                    let mut sealed = test.pt.to_vec();
                    let mut out_tag = [0u8; 16];
                    aead.seal_in_place(&nonce, &test.aad, &mut sealed, &mut out_tag)
                        .unwrap();
                    assert_eq!(sealed, *test.ct, "{backend}: tc {} ciphertext", test.tc_id);
                    assert_eq!(out_tag, tag, "{backend}: tc {} tag", test.tc_id);
                    valid += 1;
                }
                TestResult::Invalid => {
                    assert!(opened.is_err(), "{backend}: tc {} must fail", test.tc_id);
                    invalid += 1;
                }
            }
        }
    }
    (valid, invalid)
}

#[test]
fn aws_lc_passes_wycheproof() {
    let (valid, invalid) = run(CryptoBackend::AwsLc);
    assert!(
        valid > 20 && invalid > 20,
        "ran {valid} valid, {invalid} invalid"
    );
}

#[test]
fn rustcrypto_passes_wycheproof() {
    let (valid, invalid) = run(CryptoBackend::RustCrypto);
    assert!(
        valid > 20 && invalid > 20,
        "ran {valid} valid, {invalid} invalid"
    );
}
