//! HL7 v2 ORU^R01 variants seen from real monitors, ACKs and MLLP framing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use ketcare_session::Vitals;
use ketcare_session::hl7::*;
use proptest::prelude::*;

const PCD01: &str = "MSH|^~\\&|AcmeInc^ACDE48234567ABCD^EUI-64|ICU|||20260101090500+0000||ORU^R01^ORU_R01|MSG0001|P|2.6|||NE|AL||8859/1|EN^English^ISO639||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r\
PID|||MRN-12345^^^Hosp^MR~99999^^^Other^PI||Doe^Jane^^^^^L\r\
PV1||I|SUITE^2^Chair 3\r\
OBR|1|AB12^AcmeInc^ACDE48234567ABCD^EUI-64|CD12^AcmeInc^ACDE48234567ABCD^EUI-64|182777000^monitoring of patient^SNOMED-CT|||20260101090500+0000\r\
OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||0123456789ABCDEF^EUI-64\r\
OBX|2|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.9.150021|152|266016^MDC_DIM_MMHG^MDC|||||R|||20260101090500+0000\r\
OBX|3|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.1.9.150022|95|266016^MDC_DIM_MMHG^MDC|||||R|||20260101090500+0000\r\
OBX|4|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1|88|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r\
OBX|5|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.2|96|262688^MDC_DIM_PERCENT^MDC|||||R\r\
OBX|6|NM|151562^MDC_RESP_RATE^MDC|1.5.1|16|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R\r";

#[test]
fn ihe_pcd01_message() {
    let m = parse_oru(PCD01).unwrap();
    assert_eq!(m.header.control_id, "MSG0001");
    assert_eq!(m.header.sending_application, "AcmeInc");
    assert_eq!(m.header.version, "2.6");
    assert_eq!(m.patient_ids, vec!["MRN-12345", "99999"]);
    assert_eq!(m.location, vec!["SUITE", "2", "Chair 3"]);
    assert_eq!(m.observations.len(), 6);
    assert_eq!(
        m.vitals,
        Vitals {
            systolic: Some(152.0),
            diastolic: Some(95.0),
            heart_rate: Some(88.0),
            spo2: Some(96.0),
            resp_rate: Some(16.0),
            ..Vitals::default()
        }
    );
    let at = parse_ts(m.observed_at.as_deref().unwrap()).unwrap();
    assert_eq!(at.to_string(), "2026-01-01T09:05:00Z");
}

#[test]
fn lf_and_crlf_segment_endings() {
    for sep in ["\n", "\r\n"] {
        let m = parse_oru(&PCD01.replace('\r', sep)).unwrap();
        assert_eq!(m.vitals.spo2, Some(96.0));
    }
}

#[test]
fn custom_separators_and_encoding_characters() {
    // Field separator '#', component '$', repetition '*', escape '!', sub-component '%'.
    let msg = "MSH#$*!%#MON#WARD#KC#SITE#20260101090500##ORU$R01#C-77#P#2.4\r\
PID###A1$$$H$MR*B2\r\
OBX#1#NM#8480-6$Systolic blood pressure$LN##130#mm[Hg]#####F\r\
OBX#2#NM#8462-4$Diastolic$LN##85#mm[Hg]#####F\r\
OBX#3#NM#59408-5$SpO2$LN##97#%#####F\r";
    let m = parse_oru(msg).unwrap();
    assert_eq!(m.header.control_id, "C-77");
    assert_eq!(m.patient_ids, vec!["A1", "B2"]);
    assert_eq!(m.vitals.systolic, Some(130.0));
    assert_eq!(m.vitals.diastolic, Some(85.0));
    assert_eq!(m.vitals.spo2, Some(97.0));
    let ack = build_ack(&m.header, AckCode::AA, "", "A1", "20260101090501");
    assert!(ack.starts_with("MSH#$*!%#KETCARE#"), "{ack}");
    let (code, id, _) = parse_ack(&ack).unwrap();
    assert_eq!((code.as_str(), id.as_str()), ("AA", "C-77"));
}

#[test]
fn escape_sequences_are_decoded() {
    let msg = "MSH|^~\\&|MON|WARD|||20260101||ORU^R01|E1|P|2.5\r\
PID|||AB\\F\\12\\S\\X\\T\\Y\r\
OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95|%\r\
OBX|2|ST|0^note\\E\\text\\.br\\line\\X41\\||x\r";
    let m = parse_oru(msg).unwrap();
    assert_eq!(m.patient_ids, vec!["AB|12^X&Y"]);
    assert_eq!(m.observations[1].text, "note\\text\nlineA");
}

#[test]
fn missing_fields_and_short_segments() {
    let msg = "MSH|^~\\&|||||||ORU^R01|X9||2.3\rPID\rOBX|1|NM|150456^^MDC||99\r";
    let m = parse_oru(msg).unwrap();
    assert!(m.patient_ids.is_empty());
    assert!(m.location.is_empty());
    assert!(m.observed_at.is_none());
    assert_eq!(m.vitals.spo2, Some(99.0));
}

#[test]
fn mnemonic_only_codes_and_fahrenheit() {
    let msg = "MSH|^~\\&|M|W|||20260101||ORU^R01|T1|P|2.5.1\rOBX|1|NM|^MDC_TEMP^MDC||98.6|268160^MDC_DIM_FAHR^MDC\rOBX|2|NM|x^MDC_PULS_RATE_NON_INV||72\r";
    let m = parse_oru(msg).unwrap();
    assert_eq!(m.vitals.temperature_c, Some(37.0));
    assert_eq!(m.vitals.heart_rate, Some(72.0));
}

#[test]
fn unavailable_values_are_skipped() {
    let msg = "MSH|^~\\&|M|W|||20260101||ORU^R01|U1|P|2.6\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||8388607|%|||||X\rOBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC||70\r";
    let m = parse_oru(msg).unwrap();
    assert_eq!(m.vitals.spo2, None);
    assert_eq!(m.vitals.heart_rate, Some(70.0));
}

#[test]
fn several_obx_groups_first_value_wins() {
    let msg = "MSH|^~\\&|M|W|||20260101||ORU^R01|G1|P|2.6\rOBR|1\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97\rOBR|2\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95\rOBX|2|NM|151562^MDC_RESP_RATE^MDC||12\r";
    let m = parse_oru(msg).unwrap();
    assert_eq!(m.vitals.spo2, Some(97.0));
    assert_eq!(m.vitals.resp_rate, Some(12.0));
    assert_eq!(m.observations.len(), 3);
}

#[test]
fn wrong_message_types_and_versions() {
    let adt = "MSH|^~\\&|M|W|||20260101||ADT^A01|Z1|P|2.5\rPID|||1\r";
    match parse_oru(adt) {
        Err(Hl7Error::Error(e)) => assert!(e.contains("ADT^A01") && e.contains("MSH-9"), "{e}"),
        other => panic!("{other:?}"),
    }
    let v27 = "MSH|^~\\&|M|W|||20260101||ORU^R01|Z2|P|2.7\rOBX|1|NM|150456^^MDC||99\r";
    assert!(matches!(parse_oru(v27), Err(Hl7Error::Error(e)) if e.contains("MSH-12")));
    assert!(matches!(parse_oru("PID|||1\r"), Err(Hl7Error::Reject(_))));
    assert!(matches!(parse_oru(""), Err(Hl7Error::Reject(_))));
    assert!(
        matches!(parse_oru("MSH|^~\\&|M|W|||20260101||ORU^R01||P|2.5\r"), Err(Hl7Error::Reject(e)) if e.contains("MSH-10"))
    );
    assert!(matches!(parse_oru("MSH|^"), Err(Hl7Error::Reject(_))));
    let no_vitals = "MSH|^~\\&|M|W|||20260101||ORU^R01|Z3|P|2.5\rOBX|1|NM|12345^OTHER^L||1\r";
    assert!(
        matches!(parse_oru(no_vitals), Err(Hl7Error::Error(e)) if e.contains("no recognised vital"))
    );
    let text_value = "MSH|^~\\&|M|W|||20260101||ORU^R01|Z4|P|2.5\rOBX|1|NM|150456^^MDC||high\r";
    assert!(matches!(parse_oru(text_value), Err(Hl7Error::Error(e)) if e.contains("OBX-5")));
    let implausible = "MSH|^~\\&|M|W|||20260101||ORU^R01|Z5|P|2.5\rOBX|1|NM|150456^^MDC||140\r";
    assert!(matches!(parse_oru(implausible), Err(Hl7Error::Error(e)) if e.contains("spo2")));
}

#[test]
fn ack_echoes_and_escapes() {
    let m = parse_oru(PCD01).unwrap();
    let ack = build_ack(
        &m.header,
        AckCode::AE,
        "unknown patient MRN-12345|x",
        "K1",
        "20260101090501",
    );
    assert!(
        ack.contains("\rMSA|AE|MSG0001|unknown patient MRN-12345\\F\\x\r"),
        "{ack}"
    );
    assert!(ack.contains("\rERR|"), "{ack}");
    assert!(ack.contains("|ACK^R01^ACK|K1|P|2.6\r"), "{ack}");
    let (code, id, text) = parse_ack(&ack).unwrap();
    assert_eq!(
        (code.as_str(), id.as_str(), text.as_str()),
        ("AE", "MSG0001", "unknown patient MRN-12345|x")
    );
    let reject = build_ack(
        &Header::default(),
        AckCode::AR,
        "first segment must be MSH",
        "K2",
        "20260101",
    );
    assert!(reject.starts_with("MSH|^~\\&|KETCARE|"), "{reject}");
    assert_eq!(parse_ack(&reject).unwrap().0, "AR");
}

#[test]
fn mllp_framing() {
    let f = mllp_frame("MSH|x");
    assert_eq!(f[0], 0x0b);
    assert_eq!(&f[f.len() - 2..], &[0x1c, 0x0d]);
    let mut two = f.clone();
    two.extend(mllp_frame("MSH|y"));
    match mllp_deframe(&two) {
        Frame::Complete { payload, consumed } => {
            assert_eq!(payload, b"MSH|x");
            assert_eq!(consumed, f.len());
            assert!(
                matches!(mllp_deframe(&two[consumed..]), Frame::Complete { payload, .. } if payload == b"MSH|y")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mllp_deframe(&f[..4]), Frame::Incomplete);
    assert_eq!(mllp_deframe(b""), Frame::Incomplete);
    assert_eq!(mllp_deframe(b"junk\x0bMSH"), Frame::Garbage { skip: 4 });
    assert_eq!(mllp_deframe(b"junk"), Frame::Garbage { skip: 4 });
}

#[test]
fn obx6_units_are_converted_or_refused() {
    // 16.0/10.7 kPa is 120.0/80.3 mmHg (1 kPa = 1000/133.322387415 mmHg, data/sessions/units.toml).
    let kpa = "MSH|^~\\&|M|W|||20260101||ORU^R01|K1|P|2.6\r\
OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||16.0|kPa^kilopascal^UCUM\r\
OBX|2|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC||10.7|^MDC_DIM_KILO_PASCAL^MDC\r\
OBX|3|NM|151708^MDC_AWAY_CO2_ET^MDC||5.3|kPa\r";
    let m = parse_oru(kpa).unwrap();
    assert_eq!(m.vitals.systolic, Some(120.0));
    assert_eq!(m.vitals.diastolic, Some(80.3));
    assert_eq!(m.vitals.etco2, Some(39.8));
    // °F → °C.
    let f = "MSH|^~\\&|M|W|||20260101||ORU^R01|F1|P|2.6\rOBX|1|NM|8310-5^Body temperature^LN||100.4|[degF]\r";
    assert_eq!(parse_oru(f).unwrap().vitals.temperature_c, Some(38.0));
    // mmHg, °C, % and /min spelled as UCUM, MDC or text are the stored units: unchanged.
    let same = "MSH|^~\\&|M|W|||20260101||ORU^R01|S1|P|2.6\r\
OBX|1|NM|8480-6^SBP^LN||121|mm[Hg]\rOBX|2|NM|8462-4^DBP^LN||79|mmHg\r\
OBX|3|NM|8310-5^T^LN||36.8|Cel\rOBX|4|NM|8867-4^HR^LN||64|{beats}/min\r\
OBX|5|NM|9279-1^RR^LN||14|/min\rOBX|6|NM|59408-5^SpO2^LN||98|%\r";
    let v = parse_oru(same).unwrap().vitals;
    assert_eq!(
        (
            v.systolic,
            v.diastolic,
            v.temperature_c,
            v.heart_rate,
            v.resp_rate,
            v.spo2
        ),
        (
            Some(121.0),
            Some(79.0),
            Some(36.8),
            Some(64.0),
            Some(14.0),
            Some(98.0)
        )
    );
    // No OBX-6: the code's own unit, as before.
    let none = "MSH|^~\\&|M|W|||20260101||ORU^R01|N1|P|2.6\rOBX|1|NM|150021^^MDC||130\rOBX|2|NM|150022^^MDC||85\r";
    assert_eq!(parse_oru(none).unwrap().vitals.systolic, Some(130.0));
    // An unknown unit, or a unit of another quantity, is refused naming OBX-6, the unit and the field.
    for (unit, field) in [
        ("mbar", "systolic"),
        ("cmH2O", "systolic"),
        ("Hz", "heart_rate"),
        ("K", "temperature_c"),
        ("kPa", "spo2"),
        ("1", "spo2"),
    ] {
        let code = match field {
            "systolic" => "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            "heart_rate" => "147842^MDC_ECG_HEART_RATE^MDC",
            "temperature_c" => "150344^MDC_TEMP^MDC",
            _ => "150456^MDC_PULS_OXIM_SAT_O2^MDC",
        };
        let msg =
            format!("MSH|^~\\&|M|W|||20260101||ORU^R01|U1|P|2.6\rOBX|1|NM|{code}||1|{unit}\r");
        match parse_oru(&msg) {
            Err(Hl7Error::Error(e)) => assert!(
                e.starts_with("OBX-6") && e.contains(&format!("{unit:?}")) && e.contains(field),
                "{unit}: {e}"
            ),
            other => panic!("{unit}: {other:?}"),
        }
    }
}

#[test]
fn impossible_values_are_refused_naming_the_field() {
    for (obx, field) in [
        ("150456^MDC_PULS_OXIM_SAT_O2^MDC||150|%", "spo2"),
        ("147842^MDC_ECG_HEART_RATE^MDC||700|/min", "heart_rate"),
        ("150344^MDC_TEMP^MDC||50|Cel", "temperature_c"),
    ] {
        let msg = format!("MSH|^~\\&|M|W|||20260101||ORU^R01|I1|P|2.6\rOBX|1|NM|{obx}\r");
        match parse_oru(&msg) {
            Err(Hl7Error::Error(e)) => assert!(
                e.contains(field) && e.contains("physiologically impossible"),
                "{field}: {e}"
            ),
            other => panic!("{field}: {other:?}"),
        }
    }
}

fn events(bytes: &[u8], chunk: usize) -> Vec<MllpEvent> {
    let mut r = MllpReader::new();
    bytes.chunks(chunk.max(1)).flat_map(|c| r.push(c)).collect()
}

#[test]
fn a_torn_frame_is_discarded_not_merged_into_the_next() {
    let torn = "MSH|^~\\&|MON|W|||20260101||ORU^R01|T1|P|2.6\rOBX|1|NM|150456^^MDC||91";
    let whole = "MSH|^~\\&|MON|W|||20260101||ORU^R01|T2|P|2.6\rOBX|1|NM|150456^^MDC||97\r";
    let mut bytes = vec![MLLP_START];
    bytes.extend_from_slice(torn.as_bytes());
    bytes.extend(mllp_frame(whole));
    for chunk in [1, 2, 5, 64, bytes.len()] {
        let ev = events(&bytes, chunk);
        assert_eq!(
            ev,
            vec![
                MllpEvent::Torn {
                    discarded: torn.len()
                },
                MllpEvent::Message(whole.as_bytes().to_vec())
            ],
            "chunk {chunk}"
        );
    }
    // The client-side deframer skips the torn part too.
    match mllp_deframe(&bytes) {
        Frame::Garbage { skip } => {
            assert_eq!(skip, torn.len() + 1);
            assert!(
                matches!(mllp_deframe(&bytes[skip..]), Frame::Complete { payload, .. } if payload == whole.as_bytes())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_oversize_frame_is_refused_the_same_way_whatever_the_chunking() {
    let big = format!(
        "MSH|^~\\&|MON|W|||20260101||ORU^R01|BIG1|P|2.6\rNTE|1||{}\r",
        "x".repeat(MAX_MESSAGE)
    );
    let next = "MSH|^~\\&|MON|W|||20260101||ORU^R01|N2|P|2.6\rOBX|1|NM|150456^^MDC||97\r";
    let mut bytes = mllp_frame(&big);
    bytes.extend(mllp_frame(next));
    let mut seen = Vec::new();
    for chunk in [1, 3, 1000, 4096, 65_536, bytes.len()] {
        let ev = events(&bytes, chunk);
        assert_eq!(
            ev.len(),
            2,
            "chunk {chunk}: {:?}",
            ev.iter().map(std::mem::discriminant).collect::<Vec<_>>()
        );
        match &ev[0] {
            MllpEvent::Oversize { head, size } => {
                assert_eq!(*size, big.len(), "chunk {chunk}");
                assert_eq!(head.len(), OVERSIZE_HEAD);
                assert_eq!(
                    parse_header(&String::from_utf8_lossy(head))
                        .unwrap()
                        .control_id,
                    "BIG1"
                );
            }
            other => panic!("chunk {chunk}: {other:?}"),
        }
        assert_eq!(
            ev[1],
            MllpEvent::Message(next.as_bytes().to_vec()),
            "chunk {chunk}"
        );
        seen.push(ev);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
    // Exactly at the limit is accepted; one byte over is not.
    let at_limit = "M".repeat(MAX_MESSAGE);
    assert_eq!(
        events(&mllp_frame(&at_limit), 4096),
        vec![MllpEvent::Message(at_limit.as_bytes().to_vec())]
    );
    let over = "M".repeat(MAX_MESSAGE + 1);
    assert!(matches!(
        events(&mllp_frame(&over), 4096).as_slice(),
        [MllpEvent::Oversize { size, .. }] if *size == MAX_MESSAGE + 1
    ));
}

#[test]
fn built_oru_round_trips() {
    let v = Vitals {
        systolic: Some(131.0),
        diastolic: Some(82.0),
        heart_rate: Some(77.0),
        spo2: Some(97.0),
        resp_rate: Some(15.0),
        etco2: Some(38.0),
        temperature_c: Some(36.6),
    };
    let m = parse_oru(&build_oru("B1", "MRN1", "Chair 4", "20260101090000", &v)).unwrap();
    assert_eq!(m.vitals, v);
    assert_eq!(m.patient_ids, vec!["MRN1"]);
    assert_eq!(m.location.last().map(String::as_str), Some("Chair 4"));
}

#[test]
fn timestamps() {
    assert_eq!(
        parse_ts("20260101090500-0500").unwrap().to_string(),
        "2026-01-01T14:05:00Z"
    );
    assert_eq!(
        parse_ts("20260101090500.1234+0100").unwrap().to_string(),
        "2026-01-01T08:05:00Z"
    );
    assert_eq!(
        parse_ts("202601010905").unwrap().to_string(),
        "2026-01-01T09:05:00Z"
    );
    assert!(parse_ts("2026").is_none());
    assert!(parse_ts("20261301").is_none());
    assert!(parse_ts("20260101+01").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn parser_never_panics(s in "\\PC{0,300}") {
        let _ = parse_oru(&s);
        let _ = parse_header(&s);
        let _ = parse_ack(&s);
        let _ = parse_ts(&s);
        let _ = mllp_deframe(s.as_bytes());
    }

    #[test]
    fn mllp_reader_does_not_depend_on_chunking(
        parts in prop::collection::vec(prop::sample::select(vec![
            "\u{0b}".to_owned(), "\u{1c}".to_owned(), "\r".to_owned(), "MSH|x".to_owned(), "\u{1c}\r".to_owned(),
        ]), 0..40),
        cut in 1usize..17,
    ) {
        let bytes = parts.concat().into_bytes();
        prop_assert_eq!(events(&bytes, bytes.len().max(1)), events(&bytes, cut));
    }

    #[test]
    fn parser_never_panics_on_hl7_shaped_input(
        sep in prop::sample::select(vec!['|', '#', '^', '\\', '~', '&', 'é']),
        enc in "[\\^~\\\\&#$!%é]{0,5}",
        body in prop::collection::vec("[A-Z0-9|^~\\\\&.\\-+ \r\n]{0,40}", 0..8),
    ) {
        let msg = format!("MSH{sep}{enc}{sep}{}", body.join("\r"));
        let _ = parse_oru(&msg);
        let obx = format!("MSH|^~\\&|M|W|||2026||ORU^R01|1|P|2.5\rOBX|1|NM|150456^^MDC||{}\r", body.join(""));
        let _ = parse_oru(&obx);
    }
}
