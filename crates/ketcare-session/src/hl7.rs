//! HL7 v2 (2.3–2.6) ORU^R01 parsing, ACK building, and MLLP framing.
//!
//! The parser takes its separators from MSH (field separator MSH-1, encoding characters MSH-2:
//! component, repetition, escape, sub-component), accepts CR, LF or CRLF between segments,
//! decodes escape sequences (\F\ \S\ \T\ \R\ \E\ \Xhh\ \.br\), reads the first repetition of
//! repeated fields, tolerates missing trailing fields, and collects vitals from every OBX
//! group. Observation identifiers are matched by MDC code or reference id (ISO/IEEE 11073-10101,
//! as IHE PCD-01 sends them) or by LOINC. OBX-6 units are converted to the stored unit (kPa →
//! mmHg, °F → °C, with the cited constants of `data/sessions/units.toml`) or refused naming OBX-6
//! and the unit. It never panics: every problem is an error naming the segment and field.

use serde::{Deserialize, Serialize};

use crate::vitals::Vitals;

/// Start and end of an MLLP frame.
pub const MLLP_START: u8 = 0x0b;
pub const MLLP_END: [u8; 2] = [0x1c, 0x0d];

/// Largest message accepted (a monitor's ORU is a few kilobytes).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Wraps a message in an MLLP frame.
pub fn mllp_frame(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(MLLP_START);
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&MLLP_END);
    out
}

/// Result of looking for one frame at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame: its payload and how many bytes of the buffer it used.
    Complete { payload: Vec<u8>, consumed: usize },
    /// Need more bytes.
    Incomplete,
    /// Bytes before a start byte, or a frame over [`MAX_MESSAGE`]: skip `skip` bytes.
    Garbage { skip: usize },
}

/// Finds the first MLLP frame in `buf` (for clients reading ACKs; the listener uses
/// [`MllpReader`]). A start block before the end block means the frame was torn: the torn part
/// is garbage, and the frame that starts again is read on its own.
pub fn mllp_deframe(buf: &[u8]) -> Frame {
    let Some(start) = buf.iter().position(|b| *b == MLLP_START) else {
        return if buf.is_empty() {
            Frame::Incomplete
        } else {
            Frame::Garbage { skip: buf.len() }
        };
    };
    if start > 0 {
        return Frame::Garbage { skip: start };
    }
    let body = &buf[1..];
    let end = body.windows(2).position(|w| w == MLLP_END);
    let restart = body.iter().position(|b| *b == MLLP_START);
    match (end, restart) {
        (Some(end), Some(r)) if r < end => Frame::Garbage { skip: r + 1 },
        (None, Some(r)) => Frame::Garbage { skip: r + 1 },
        (Some(end), _) if end > MAX_MESSAGE => Frame::Garbage { skip: end + 3 },
        (Some(end), _) => Frame::Complete {
            payload: body[..end].to_vec(),
            consumed: end + 3,
        },
        (None, None) if body.len() > MAX_MESSAGE + 1 => Frame::Garbage { skip: buf.len() },
        (None, None) => Frame::Incomplete,
    }
}

/// What the listener reads from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MllpEvent {
    /// A whole message (the payload between the start and end blocks).
    Message(Vec<u8>),
    /// A frame whose payload was over [`MAX_MESSAGE`]: `size` bytes were discarded; `head` is
    /// its beginning (up to [`OVERSIZE_HEAD`] bytes), so the refusal can name its MSH.
    Oversize { head: Vec<u8>, size: usize },
    /// A start block came before the end block: the `discarded` bytes of the torn frame were
    /// dropped, and the new frame is read on its own.
    Torn { discarded: usize },
}

/// How much of an oversize frame is kept to read its MSH.
pub const OVERSIZE_HEAD: usize = 4096;

/// MLLP framing as a byte-by-byte state machine, so the result never depends on how TCP split
/// the stream: the same bytes give the same events whatever the chunk sizes.
///
/// - Bytes outside a frame (before a start block, the CR after an end block) are ignored.
/// - A start block inside a frame discards the torn frame ([`MllpEvent::Torn`]) and starts anew.
/// - A frame whose payload grows over [`MAX_MESSAGE`] is not buffered further: its bytes are
///   counted and dropped up to its end block, which gives one [`MllpEvent::Oversize`]; the
///   connection then reads the next frame normally.
#[derive(Debug, Default)]
pub struct MllpReader {
    in_frame: bool,
    buf: Vec<u8>,
    oversize: Option<usize>,
    head: Vec<u8>,
    last: u8,
}

impl MllpReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes read from the connection; returns the events they complete, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<MllpEvent> {
        let mut out = Vec::new();
        for &b in data {
            if !self.in_frame {
                if b == MLLP_START {
                    self.start();
                }
                continue;
            }
            if b == MLLP_START {
                let discarded = self.oversize.unwrap_or(self.buf.len());
                out.push(MllpEvent::Torn { discarded });
                self.start();
                continue;
            }
            if b == MLLP_END[1] && self.last == MLLP_END[0] {
                self.in_frame = false;
                match self.oversize.take() {
                    Some(n) => out.push(MllpEvent::Oversize {
                        head: std::mem::take(&mut self.head),
                        size: n.saturating_sub(1),
                    }),
                    None => {
                        let mut payload = std::mem::take(&mut self.buf);
                        payload.pop();
                        out.push(MllpEvent::Message(payload));
                    }
                }
                self.last = 0;
                continue;
            }
            self.last = b;
            match &mut self.oversize {
                Some(n) => *n += 1,
                None => {
                    self.buf.push(b);
                    // One more byte than the limit may still be the end block's first byte.
                    if self.buf.len() > MAX_MESSAGE + 1 {
                        self.head = self.buf[..OVERSIZE_HEAD.min(self.buf.len())].to_vec();
                        self.oversize = Some(self.buf.len());
                        self.buf = Vec::new();
                    }
                }
            }
        }
        out
    }

    fn start(&mut self) {
        self.in_frame = true;
        self.buf.clear();
        self.oversize = None;
        self.head.clear();
        self.last = 0;
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Hl7Error {
    /// Not an HL7 message, or MSH unreadable: answered with AR (reject).
    #[error("{0}")]
    Reject(String),
    /// Readable but not acceptable (wrong type or version, no vitals): answered with AE.
    #[error("{0}")]
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Enc {
    field: char,
    component: char,
    repetition: char,
    escape: Option<char>,
    subcomponent: Option<char>,
}

/// The header fields an ACK needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Header {
    pub field_separator: String,
    pub encoding: String,
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    pub message_type: String,
    pub trigger: String,
    pub control_id: String,
    pub processing_id: String,
    pub version: String,
}

/// One observation from an OBX segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub code: String,
    pub text: String,
    pub system: String,
    pub value: String,
    /// OBX-6 identifier (e.g. an MDC code or a UCUM unit).
    pub units: String,
    /// OBX-6 text (e.g. `MDC_DIM_MMHG`).
    #[serde(default)]
    pub units_text: String,
    pub status: String,
    pub time: String,
    /// What it maps to, if recognised.
    pub vital: Option<VitalKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitalKind {
    Systolic,
    Diastolic,
    HeartRate,
    Spo2,
    RespRate,
    Etco2,
    Temperature,
}

/// A parsed ORU^R01.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OruMessage {
    pub header: Header,
    /// PID-3 identifiers (every repetition's ID component).
    pub patient_ids: Vec<String>,
    /// PV1-3 assigned location: point of care, room, bed (non-empty parts).
    pub location: Vec<String>,
    /// OBR-7 or the first OBX-14, as sent (HL7 TS).
    pub observed_at: Option<String>,
    pub observations: Vec<Observation>,
    pub vitals: Vitals,
}

/// MDC codes and reference ids (ISO/IEEE 11073-10101) and LOINC codes for the vitals ketcare
/// records. Systolic/diastolic: non-invasive and arterial; heart rate: ECG, pulse oximeter or
/// NIBP pulse.
const CODES: &[(&str, VitalKind)] = &[
    ("150021", VitalKind::Systolic),
    ("MDC_PRESS_BLD_NONINV_SYS", VitalKind::Systolic),
    ("150033", VitalKind::Systolic),
    ("MDC_PRESS_BLD_ART_SYS", VitalKind::Systolic),
    ("MDC_PRESS_BLD_ART_ABP_SYS", VitalKind::Systolic),
    ("MDC_PRESS_CUFF_SYS", VitalKind::Systolic),
    ("8480-6", VitalKind::Systolic),
    ("150022", VitalKind::Diastolic),
    ("MDC_PRESS_BLD_NONINV_DIA", VitalKind::Diastolic),
    ("150034", VitalKind::Diastolic),
    ("MDC_PRESS_BLD_ART_DIA", VitalKind::Diastolic),
    ("MDC_PRESS_BLD_ART_ABP_DIA", VitalKind::Diastolic),
    ("MDC_PRESS_CUFF_DIA", VitalKind::Diastolic),
    ("8462-4", VitalKind::Diastolic),
    ("147842", VitalKind::HeartRate),
    ("MDC_ECG_HEART_RATE", VitalKind::HeartRate),
    ("149530", VitalKind::HeartRate),
    ("MDC_PULS_OXIM_PULS_RATE", VitalKind::HeartRate),
    ("149546", VitalKind::HeartRate),
    ("MDC_PULS_RATE_NON_INV", VitalKind::HeartRate),
    ("8867-4", VitalKind::HeartRate),
    ("150456", VitalKind::Spo2),
    ("MDC_PULS_OXIM_SAT_O2", VitalKind::Spo2),
    ("59408-5", VitalKind::Spo2),
    ("2708-6", VitalKind::Spo2),
    ("151562", VitalKind::RespRate),
    ("MDC_RESP_RATE", VitalKind::RespRate),
    ("MDC_TTHOR_RESP_RATE", VitalKind::RespRate),
    ("MDC_CO2_RESP_RATE", VitalKind::RespRate),
    ("9279-1", VitalKind::RespRate),
    ("151708", VitalKind::Etco2),
    ("MDC_AWAY_CO2_ET", VitalKind::Etco2),
    ("MDC_CONC_AWAY_CO2_ET", VitalKind::Etco2),
    ("MDC_CONC_AWAY_CO2_EXP", VitalKind::Etco2),
    ("19935-6", VitalKind::Etco2),
    ("150344", VitalKind::Temperature),
    ("MDC_TEMP", VitalKind::Temperature),
    ("MDC_TEMP_BODY", VitalKind::Temperature),
    ("8310-5", VitalKind::Temperature),
];

/// The 11073 "value not available" sentinel some monitors send.
const NOT_AVAILABLE: &str = "8388607";

fn kind_of(code: &str, text: &str) -> Option<VitalKind> {
    let find = |s: &str| {
        let s = s.trim();
        CODES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(s))
            .map(|(_, k)| *k)
    };
    find(code).or_else(|| find(text))
}

impl Enc {
    fn from_msh(seg: &str) -> Result<Enc, Hl7Error> {
        let mut chars = seg.chars().skip(3);
        let field = chars
            .next()
            .ok_or_else(|| Hl7Error::Reject("MSH-1: no field separator".into()))?;
        let enc: Vec<char> = chars.take_while(|c| *c != field).collect();
        if enc.len() < 2 {
            return Err(Hl7Error::Reject(
                "MSH-2: expected at least component and repetition characters".into(),
            ));
        }
        let mut seen = vec![field];
        for c in &enc {
            if seen.contains(c) || c.is_alphanumeric() || *c == '\r' || *c == '\n' {
                return Err(Hl7Error::Reject(format!(
                    "MSH-2: encoding character {c:?} repeated or not allowed"
                )));
            }
            seen.push(*c);
        }
        if field.is_alphanumeric() || field == '\r' || field == '\n' {
            return Err(Hl7Error::Reject(format!(
                "MSH-1: {field:?} cannot be the field separator"
            )));
        }
        Ok(Enc {
            field,
            component: enc[0],
            repetition: enc[1],
            escape: enc.get(2).copied(),
            subcomponent: enc.get(3).copied(),
        })
    }

    /// Decodes escape sequences in a leaf value.
    fn unescape(&self, s: &str) -> String {
        let Some(esc) = self.escape else {
            return s.to_owned();
        };
        if !s.contains(esc) {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find(esc) {
            out.push_str(&rest[..i]);
            let after = &rest[i + esc.len_utf8()..];
            match after.find(esc) {
                Some(j) => {
                    let seq = &after[..j];
                    match seq {
                        "F" => out.push(self.field),
                        "S" => out.push(self.component),
                        "T" => out.push(self.subcomponent.unwrap_or('&')),
                        "R" => out.push(self.repetition),
                        "E" => out.push(esc),
                        ".br" => out.push('\n'),
                        _ if seq.starts_with('X') => {
                            let hex = &seq[1..];
                            let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
                                .map(|k| {
                                    hex.get(2 * k..2 * k + 2)
                                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                                })
                                .collect();
                            match bytes {
                                Some(b) if hex.len().is_multiple_of(2) => {
                                    out.push_str(&String::from_utf8_lossy(&b))
                                }
                                _ => {}
                            }
                        }
                        // Highlighting (\H\ \N\) and unknown sequences are dropped.
                        _ => {}
                    }
                    rest = &after[j + esc.len_utf8()..];
                }
                None => {
                    // A lone escape character: keep it literally.
                    out.push(esc);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// One segment split into fields (index 0 is the segment name; for MSH, index 1 is MSH-1).
struct Segment<'a> {
    name: &'a str,
    fields: Vec<&'a str>,
}

impl<'a> Segment<'a> {
    fn parse(line: &'a str, enc: &Enc) -> Segment<'a> {
        let mut fields: Vec<&str> = line.split(enc.field).collect();
        let name = fields.first().copied().unwrap_or("");
        if name == "MSH" {
            // MSH-1 is the separator itself: shift so that fields[n] is MSH-n.
            fields.insert(1, "");
        }
        Segment { name, fields }
    }

    /// Field `n` (1-based), empty when missing.
    fn field(&self, n: usize) -> &'a str {
        self.fields.get(n).copied().unwrap_or("")
    }

    /// Component `c` (1-based) of the first repetition of field `n`, unescaped.
    fn comp(&self, n: usize, c: usize, enc: &Enc) -> String {
        let f = self.field(n);
        let first = f.split(enc.repetition).next().unwrap_or("");
        let comp = first.split(enc.component).nth(c - 1).unwrap_or("");
        let sub = match enc.subcomponent {
            Some(s) => comp.split(s).next().unwrap_or(""),
            None => comp,
        };
        enc.unescape(sub)
    }

    /// Component `c` of every repetition of field `n`.
    fn comps_all(&self, n: usize, c: usize, enc: &Enc) -> Vec<String> {
        self.field(n)
            .split(enc.repetition)
            .map(|rep| {
                let comp = rep.split(enc.component).nth(c - 1).unwrap_or("");
                let sub = match enc.subcomponent {
                    Some(s) => comp.split(s).next().unwrap_or(""),
                    None => comp,
                };
                enc.unescape(sub)
            })
            .filter(|s| !s.is_empty())
            .collect()
    }
}

fn segments(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\r', '\n'])
        .map(|s| s.trim_start_matches(['\u{0b}', '\u{1c}']))
        .filter(|s| !s.trim().is_empty())
}

/// Reads the MSH header only (so a refusal can still be acknowledged to its sender).
pub fn parse_header(text: &str) -> Result<Header, Hl7Error> {
    let msh = segments(text)
        .next()
        .ok_or_else(|| Hl7Error::Reject("empty message".into()))?;
    if !msh.starts_with("MSH") {
        return Err(Hl7Error::Reject("first segment must be MSH".into()));
    }
    let enc = Enc::from_msh(msh)?;
    let seg = Segment::parse(msh, &enc);
    let h = Header {
        field_separator: enc.field.to_string(),
        encoding: seg.field(2).to_owned(),
        sending_application: seg.comp(3, 1, &enc),
        sending_facility: seg.comp(4, 1, &enc),
        receiving_application: seg.comp(5, 1, &enc),
        receiving_facility: seg.comp(6, 1, &enc),
        message_type: seg.comp(9, 1, &enc),
        trigger: seg.comp(9, 2, &enc),
        control_id: seg.comp(10, 1, &enc),
        processing_id: seg.comp(11, 1, &enc),
        version: seg.comp(12, 1, &enc),
    };
    Ok(h)
}

/// Versions accepted.
pub const VERSIONS: [&str; 5] = ["2.3", "2.3.1", "2.4", "2.5", "2.6"];

/// Parses an ORU^R01 carrying vitals.
pub fn parse_oru(text: &str) -> Result<OruMessage, Hl7Error> {
    let header = parse_header(text)?;
    let first = segments(text).next().unwrap_or("");
    let enc = Enc::from_msh(first)?;
    if header.control_id.is_empty() {
        return Err(Hl7Error::Reject(
            "MSH-10: message control id is empty".into(),
        ));
    }
    if header.message_type != "ORU" || (header.trigger != "R01" && !header.trigger.is_empty()) {
        return Err(Hl7Error::Error(format!(
            "MSH-9: message type {}^{} is not accepted; expected ORU^R01",
            header.message_type, header.trigger
        )));
    }
    let v = header.version.as_str();
    if !v.is_empty()
        && !VERSIONS.contains(&v)
        && !VERSIONS.iter().any(|a| v.starts_with(&format!("{a}.")))
    {
        return Err(Hl7Error::Error(format!(
            "MSH-12: version {v} is not accepted; expected one of {}",
            VERSIONS.join(", ")
        )));
    }
    let mut patient_ids = Vec::new();
    let mut location = Vec::new();
    let mut observed_at = None;
    let mut observations = Vec::new();
    for line in segments(text).skip(1) {
        let seg = Segment::parse(line, &enc);
        match seg.name {
            "PID" => {
                patient_ids.extend(seg.comps_all(3, 1, &enc));
                // v2.3 monitors sometimes send the MRN in PID-2 (external id) only.
                if patient_ids.is_empty() {
                    patient_ids.extend(seg.comps_all(2, 1, &enc));
                }
            }
            "PV1" => {
                for c in 1..=3 {
                    let part = seg.comp(3, c, &enc);
                    if !part.is_empty() {
                        location.push(part);
                    }
                }
            }
            "OBR" => {
                let t = seg.comp(7, 1, &enc);
                if !t.is_empty() && observed_at.is_none() {
                    observed_at = Some(t);
                }
            }
            "OBX" => {
                let code = seg.comp(3, 1, &enc);
                let text = seg.comp(3, 2, &enc);
                let obs = Observation {
                    vital: kind_of(&code, &text),
                    code,
                    text,
                    system: seg.comp(3, 3, &enc),
                    value: seg.comp(5, 1, &enc),
                    units: seg.comp(6, 1, &enc),
                    units_text: seg.comp(6, 2, &enc),
                    status: seg.comp(11, 1, &enc),
                    time: seg.comp(14, 1, &enc),
                };
                observations.push(obs);
            }
            _ => {}
        }
    }
    if observed_at.is_none() {
        observed_at = observations
            .iter()
            .find(|o| !o.time.is_empty())
            .map(|o| o.time.clone());
    }
    let mut vitals = Vitals::default();
    for o in &observations {
        let Some(kind) = o.vital else { continue };
        // X = cannot be obtained, D = delete, W = wrong: not a value.
        if matches!(o.status.as_str(), "X" | "D" | "W") || o.value == NOT_AVAILABLE {
            continue;
        }
        let Ok(mut value) = o.value.trim().parse::<f64>() else {
            return Err(Hl7Error::Error(format!(
                "OBX-5: value {:?} of {} is not a number",
                o.value,
                if o.text.is_empty() { &o.code } else { &o.text }
            )));
        };
        if !value.is_finite() {
            return Err(Hl7Error::Error(format!(
                "OBX-5: value of {} is not finite",
                o.code
            )));
        }
        value = to_canonical_unit(kind, value, o)?;
        let slot = match kind {
            VitalKind::Systolic => &mut vitals.systolic,
            VitalKind::Diastolic => &mut vitals.diastolic,
            VitalKind::HeartRate => &mut vitals.heart_rate,
            VitalKind::Spo2 => &mut vitals.spo2,
            VitalKind::RespRate => &mut vitals.resp_rate,
            VitalKind::Etco2 => &mut vitals.etco2,
            VitalKind::Temperature => &mut vitals.temperature_c,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    if vitals.is_empty() {
        return Err(Hl7Error::Error(
            "OBX: no recognised vital sign (MDC or LOINC code) with a value".into(),
        ));
    }
    if let Err(errs) = vitals.validate() {
        return Err(Hl7Error::Error(format!(
            "OBX: {}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(OruMessage {
        header,
        patient_ids,
        location,
        observed_at,
        observations,
        vitals,
    })
}

/// The unit a vital is stored in, and the other units ketcare converts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    MmHg,
    KPa,
    Celsius,
    Fahrenheit,
    PerMinute,
    Percent,
}

/// Spellings of OBX-6 (identifier or text, compared without case): UCUM, MDC (ISO/IEEE
/// 11073-10101 reference ids and the codes the IHE PCD-01 examples use) and common text.
const UNIT_NAMES: &[(&str, Unit)] = &[
    ("mmHg", Unit::MmHg),
    ("mm[Hg]", Unit::MmHg),
    ("mm Hg", Unit::MmHg),
    ("266016", Unit::MmHg),
    ("MDC_DIM_MMHG", Unit::MmHg),
    ("kPa", Unit::KPa),
    ("MDC_DIM_KILO_PASCAL", Unit::KPa),
    ("Cel", Unit::Celsius),
    ("°C", Unit::Celsius),
    ("degC", Unit::Celsius),
    ("C", Unit::Celsius),
    ("268192", Unit::Celsius),
    ("MDC_DIM_DEGC", Unit::Celsius),
    ("[degF]", Unit::Fahrenheit),
    ("°F", Unit::Fahrenheit),
    ("degF", Unit::Fahrenheit),
    ("F", Unit::Fahrenheit),
    ("MDC_DIM_FAHR", Unit::Fahrenheit),
    ("/min", Unit::PerMinute),
    ("1/min", Unit::PerMinute),
    ("bpm", Unit::PerMinute),
    ("{beats}/min", Unit::PerMinute),
    ("{beat}/min", Unit::PerMinute),
    ("beats/min", Unit::PerMinute),
    ("{breaths}/min", Unit::PerMinute),
    ("breaths/min", Unit::PerMinute),
    ("264864", Unit::PerMinute),
    ("MDC_DIM_BEAT_PER_MIN", Unit::PerMinute),
    ("264928", Unit::PerMinute),
    ("MDC_DIM_RESP_PER_MIN", Unit::PerMinute),
    ("%", Unit::Percent),
    ("262688", Unit::Percent),
    ("MDC_DIM_PERCENT", Unit::Percent),
];

fn unit_of(id: &str, text: &str) -> Option<Unit> {
    let find = |s: &str| {
        let s = s.trim();
        UNIT_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, u)| *u)
    };
    find(id).or_else(|| find(text))
}

impl VitalKind {
    /// The field name ketcare uses for this vital (as in the API and the page forms).
    pub fn field(self) -> &'static str {
        match self {
            VitalKind::Systolic => "systolic",
            VitalKind::Diastolic => "diastolic",
            VitalKind::HeartRate => "heart_rate",
            VitalKind::Spo2 => "spo2",
            VitalKind::RespRate => "resp_rate",
            VitalKind::Etco2 => "etco2",
            VitalKind::Temperature => "temperature_c",
        }
    }

    /// The stored unit and the units accepted for conversion, as named to a sender.
    fn units(self) -> (Unit, &'static [Unit], &'static str) {
        match self {
            VitalKind::Systolic | VitalKind::Diastolic | VitalKind::Etco2 => {
                (Unit::MmHg, &[Unit::MmHg, Unit::KPa], "mmHg or kPa")
            }
            VitalKind::Temperature => (
                Unit::Celsius,
                &[Unit::Celsius, Unit::Fahrenheit],
                "Cel (°C) or [degF] (°F)",
            ),
            VitalKind::HeartRate | VitalKind::RespRate => {
                (Unit::PerMinute, &[Unit::PerMinute], "/min")
            }
            VitalKind::Spo2 => (Unit::Percent, &[Unit::Percent], "%"),
        }
    }
}

/// Converts an observation's value to the unit ketcare stores (kPa → mmHg, °F → °C, with the
/// cited constants of `data/sessions/units.toml`; rounded to 0.1). A missing OBX-6 means the
/// stored unit; a unit that is not known for this vital is refused naming OBX-6 and the unit.
fn to_canonical_unit(kind: VitalKind, value: f64, o: &Observation) -> Result<f64, Hl7Error> {
    if o.units.trim().is_empty() && o.units_text.trim().is_empty() {
        return Ok(value);
    }
    let (stored, accepted, names) = kind.units();
    let shown = if o.units_text.is_empty() {
        o.units.clone()
    } else if o.units.is_empty() {
        o.units_text.clone()
    } else {
        format!("{}^{}", o.units, o.units_text)
    };
    let unit = unit_of(&o.units, &o.units_text)
        .filter(|u| accepted.contains(u))
        .ok_or_else(|| {
            Hl7Error::Error(format!(
                "OBX-6: unit {shown:?} is not known for {} ({}); expected {names}",
                kind.field(),
                if o.text.is_empty() { &o.code } else { &o.text }
            ))
        })?;
    if unit == stored {
        return Ok(value);
    }
    let units = crate::limits::Units::builtin()
        .map_err(|e| Hl7Error::Error(format!("unit conversions unavailable: {e}")))?;
    let converted = match unit {
        Unit::KPa => units.kpa_to_mmhg(value),
        Unit::Fahrenheit => units.fahrenheit_to_celsius(value),
        _ => value,
    };
    Ok((converted * 10.0).round() / 10.0)
}

/// Parses an HL7 TS (YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]) to a timestamp; a time without an
/// offset is read as UTC.
pub fn parse_ts(ts: &str) -> Option<jiff::Timestamp> {
    let ts = ts.trim();
    let (main, offset) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i..])),
        None => (ts, None),
    };
    let main = main.split('.').next().unwrap_or("");
    if main.len() < 8 || !main.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let num = |a: usize, b: usize| main.get(a..b).and_then(|s| s.parse::<i32>().ok());
    let y = num(0, 4)?;
    let mo = num(4, 6)?;
    let d = num(6, 8)?;
    let h = num(8, 10).unwrap_or(0);
    let mi = num(10, 12).unwrap_or(0);
    let s = num(12, 14).unwrap_or(0);
    let off_secs = match offset {
        Some(o) if o.len() == 5 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hh: i32 = o.get(1..3)?.parse().ok()?;
            let mm: i32 = o.get(3..5)?.parse().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
        Some(_) => return None,
        None => 0,
    };
    let dt = jiff::civil::DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(mo).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(mi).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()?;
    let off = jiff::tz::Offset::from_seconds(off_secs).ok()?;
    off.to_timestamp(dt).ok()
}

/// ACK codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckCode {
    /// Application accept: stored.
    AA,
    /// Application error: understood but not processed (reason given).
    AE,
    /// Application reject: unreadable or unacceptable message.
    AR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

fn escape_text(s: &str, h: &Header) -> String {
    let sep = h.field_separator.chars().next().unwrap_or('|');
    let enc: Vec<char> = h.encoding.chars().collect();
    let comp = enc.first().copied().unwrap_or('^');
    let rep = enc.get(1).copied().unwrap_or('~');
    let esc = enc.get(2).copied().unwrap_or('\\');
    let sub = enc.get(3).copied().unwrap_or('&');
    let mut out = String::new();
    for c in s.chars() {
        if c == esc {
            out.push_str(&format!("{esc}E{esc}"));
        } else if c == sep {
            out.push_str(&format!("{esc}F{esc}"));
        } else if c == comp {
            out.push_str(&format!("{esc}S{esc}"));
        } else if c == rep {
            out.push_str(&format!("{esc}R{esc}"));
        } else if c == sub {
            out.push_str(&format!("{esc}T{esc}"));
        } else if c == '\r' || c == '\n' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// Builds an ACK for a message (echoing its separators, version and control id). `header` may
/// be a default one when the MSH could not be read.
pub fn build_ack(
    header: &Header,
    code: AckCode,
    text: &str,
    ack_control_id: &str,
    now: &str,
) -> String {
    let mut h = header.clone();
    if h.field_separator.is_empty() {
        h.field_separator = "|".into();
    }
    if h.encoding.len() < 2 {
        h.encoding = "^~\\&".into();
    }
    let f = h.field_separator.clone();
    let comp = h.encoding.chars().next().unwrap_or('^');
    let version = if h.version.is_empty() {
        "2.6".to_owned()
    } else {
        h.version.clone()
    };
    let processing = if h.processing_id.is_empty() {
        "P".to_owned()
    } else {
        h.processing_id.clone()
    };
    let e = |s: &str| escape_text(s, &h);
    let mut msg = format!(
        "MSH{f}{enc}{f}KETCARE{f}{fac}{f}{ra}{f}{rf}{f}{now}{f}{f}ACK{comp}{trig}{comp}ACK{f}{id}{f}{proc}{f}{ver}\rMSA{f}{code}{f}{ctrl}",
        enc = h.encoding,
        fac = e(&h.receiving_facility),
        ra = e(&h.sending_application),
        rf = e(&h.sending_facility),
        trig = if h.trigger.is_empty() {
            "R01".to_owned()
        } else {
            e(&h.trigger)
        },
        id = e(ack_control_id),
        proc = e(&processing),
        ver = e(&version),
        code = code.as_str(),
        ctrl = e(&h.control_id),
    );
    if !text.is_empty() {
        msg.push_str(&format!("{f}{}", e(text)));
    }
    msg.push('\r');
    if code != AckCode::AA {
        // ERR-3 HL7 error code (207 application internal error / 100 segment sequence … kept
        // generic), ERR-4 severity E, ERR-8 user message.
        let err_code = if code == AckCode::AR { "200" } else { "207" };
        msg.push_str(&format!(
            "ERR{f}{f}{f}{err_code}{f}E{f}{f}{f}{f}{}\r",
            e(text)
        ));
    }
    msg
}

/// Reads the MSA of an ACK: (code, acknowledged control id, text).
pub fn parse_ack(text: &str) -> Option<(String, String, String)> {
    let first = segments(text).next()?;
    let enc = Enc::from_msh(first).ok()?;
    let msa = segments(text).find(|s| s.starts_with("MSA"))?;
    let seg = Segment::parse(msa, &enc);
    Some((
        seg.comp(1, 1, &enc),
        seg.comp(2, 1, &enc),
        seg.comp(3, 1, &enc),
    ))
}

/// Builds an ORU^R01 with the given vitals (for the simulator, the benchmark and tests).
pub fn build_oru(control_id: &str, mrn: &str, bed: &str, ts: &str, v: &Vitals) -> String {
    let mut m = format!(
        "MSH|^~\\&|MONITOR|SUITE|KETCARE|SITE|{ts}||ORU^R01^ORU_R01|{control_id}|P|2.6\rPID|||{mrn}^^^HOSP^MR\rPV1||O|SUITE^^{bed}\rOBR|1|||182777000^monitoring of patient^SNOMED-CT|||{ts}\r"
    );
    let mut n = 0;
    let mut obx = |code: &str, name: &str, value: Option<f64>, unit: &str| {
        if let Some(v) = value {
            n += 1;
            m.push_str(&format!(
                "OBX|{n}|NM|{code}^{name}^MDC|1.1.{n}|{v}|{unit}|||||F|||{ts}\r"
            ));
        }
    };
    obx(
        "150021",
        "MDC_PRESS_BLD_NONINV_SYS",
        v.systolic,
        "266016^MDC_DIM_MMHG^MDC",
    );
    obx(
        "150022",
        "MDC_PRESS_BLD_NONINV_DIA",
        v.diastolic,
        "266016^MDC_DIM_MMHG^MDC",
    );
    obx(
        "147842",
        "MDC_ECG_HEART_RATE",
        v.heart_rate,
        "264864^MDC_DIM_BEAT_PER_MIN^MDC",
    );
    obx(
        "150456",
        "MDC_PULS_OXIM_SAT_O2",
        v.spo2,
        "262688^MDC_DIM_PERCENT^MDC",
    );
    obx(
        "151562",
        "MDC_RESP_RATE",
        v.resp_rate,
        "264928^MDC_DIM_RESP_PER_MIN^MDC",
    );
    obx(
        "151708",
        "MDC_AWAY_CO2_ET",
        v.etco2,
        "266016^MDC_DIM_MMHG^MDC",
    );
    obx(
        "150344",
        "MDC_TEMP",
        v.temperature_c,
        "268192^MDC_DIM_DEGC^MDC",
    );
    m
}
