//! Feeds arbitrary bytes to the HL7 parser, the ACK builder, the MLLP deframer and the
//! listener's MLLP reader.
#![no_main]
use ketcare_session::hl7;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hl7::mllp_deframe(data);
    let _ = hl7::MllpReader::new().push(data);
    let text = String::from_utf8_lossy(data);
    match hl7::parse_oru(&text) {
        Ok(m) => {
            let ack = hl7::build_ack(&m.header, hl7::AckCode::AA, "", "1", "20260101");
            assert!(hl7::parse_ack(&ack).is_some());
        }
        Err(_) => {
            if let Ok(h) = hl7::parse_header(&text) {
                let _ = hl7::build_ack(&h, hl7::AckCode::AE, &text, "1", "20260101");
            }
        }
    }
    let _ = hl7::parse_ts(&text);
});
