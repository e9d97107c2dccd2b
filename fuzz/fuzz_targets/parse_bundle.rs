//! Arbitrary bytes into the PEM bundle parser and, when they parse, into chain ordering and
//! splitting with no trust anchors; then through `split_bundle`, which the `split` command
//! runs on user files. Errors are fine (and are rendered, to exercise their messages); a
//! panic, an overflow or a hang is a bug.
#![no_main]

use brokercert::pki::{
    TrustAnchors, dedup_certificates, normalise_pem, order_chain, parse_bundle, split_bundle,
    split_chain,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let anchors = TrustAnchors::empty();
    match parse_bundle(data) {
        Ok(bundle) => {
            let certs = bundle.certificates;
            let _ = normalise_pem(&certs);
            let _ = split_chain(certs.clone(), &anchors).map_err(|e| e.to_string());
            let (unique, _notes) = dedup_certificates(certs);
            match order_chain(unique) {
                Ok(ordered) => {
                    let _ = split_chain(ordered, &anchors).map(|s| s.notes());
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match split_bundle(data, &anchors) {
        Ok(split) => {
            let _ = (split.cert_pem(), split.chain_pem(), split.root_pem());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
