//! A de-identified table written two ways from the same typed rows: CSV (text, empty = missing)
//! and Apache Parquet (each column typed as its dictionary says, missing = null), so that the
//! two exports cannot disagree. Pure: both are built in memory.

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::sync::Arc;

/// A column's type, as the data dictionary names it and Parquet stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text (Parquet `BYTE_ARRAY` annotated `STRING`).
    Text,
    /// A whole number (Parquet `INT64`).
    Integer,
    /// A real number (Parquet `DOUBLE`).
    Real,
    /// true or false (Parquet `BOOLEAN`).
    Boolean,
}

impl Kind {
    /// The dictionary's word for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Integer => "integer",
            Kind::Real => "double",
            Kind::Boolean => "boolean",
        }
    }
}

/// A column of the data dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// The unit ("" where none applies).
    pub unit: &'static str,
    pub definition: &'static str,
}

/// One cell; `None` is missing (CSV: empty; Parquet: null).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    Integer(Option<i64>),
    Real(Option<f64>),
    Boolean(Option<bool>),
}

impl Value {
    fn kind(&self) -> Kind {
        match self {
            Value::Text(_) => Kind::Text,
            Value::Integer(_) => Kind::Integer,
            Value::Real(_) => Kind::Real,
            Value::Boolean(_) => Kind::Boolean,
        }
    }

    /// The CSV text of the cell (empty when missing; reals in their shortest exact form).
    pub fn text(&self) -> String {
        match self {
            Value::Text(v) => v.clone().unwrap_or_default(),
            Value::Integer(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Value::Real(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Value::Boolean(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        }
    }
}

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("row {row}: expected {expected} cells, got {got}")]
    Width {
        row: usize,
        expected: usize,
        got: usize,
    },
    #[error("row {row}, column {column}: expected {expected}, got {got}")]
    Kind {
        row: usize,
        column: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

fn check(columns: &[Column], rows: &[Vec<Value>]) -> Result<(), ExportError> {
    for (i, r) in rows.iter().enumerate() {
        if r.len() != columns.len() {
            return Err(ExportError::Width {
                row: i,
                expected: columns.len(),
                got: r.len(),
            });
        }
        for (c, v) in columns.iter().zip(r) {
            if c.kind != v.kind() {
                return Err(ExportError::Kind {
                    row: i,
                    column: c.name,
                    expected: c.kind.as_str(),
                    got: v.kind().as_str(),
                });
            }
        }
    }
    Ok(())
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// The rows as CSV with a header of the column names (RFC 4180 quoting).
pub fn csv(columns: &[Column], rows: &[Vec<Value>]) -> Result<String, ExportError> {
    check(columns, rows)?;
    let mut out = columns.iter().map(|c| c.name).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in rows {
        out.push_str(
            &r.iter()
                .map(|v| csv_field(&v.text()))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    Ok(out)
}

/// The data dictionary as CSV: column, type, unit, definition.
pub fn dictionary_csv(columns: &[Column]) -> String {
    let mut out = String::from("column,type,unit,definition\n");
    for c in columns {
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(c.name),
            c.kind.as_str(),
            csv_field(c.unit),
            csv_field(c.definition)
        ));
    }
    out
}

fn schema(columns: &[Column]) -> Result<Type, ExportError> {
    let fields = columns
        .iter()
        .map(|c| {
            let b = match c.kind {
                Kind::Text => Type::primitive_type_builder(c.name, Physical::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String)),
                Kind::Integer => Type::primitive_type_builder(c.name, Physical::INT64),
                Kind::Real => Type::primitive_type_builder(c.name, Physical::DOUBLE),
                Kind::Boolean => Type::primitive_type_builder(c.name, Physical::BOOLEAN),
            };
            Ok(Arc::new(b.with_repetition(Repetition::OPTIONAL).build()?))
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    Ok(Type::group_type_builder("registry")
        .with_fields(fields)
        .build()?)
}

/// Present values and definition levels (1 present, 0 null) of one column.
fn split<T>(
    rows: &[Vec<Value>],
    i: usize,
    pick: impl Fn(&Value) -> Option<T>,
) -> (Vec<T>, Vec<i16>) {
    let mut values = Vec::with_capacity(rows.len());
    let mut defs = Vec::with_capacity(rows.len());
    for r in rows {
        match pick(&r[i]) {
            Some(v) => {
                values.push(v);
                defs.push(1);
            }
            None => defs.push(0),
        }
    }
    (values, defs)
}

/// The rows as one Parquet file (one row group, Snappy-compressed), every column nullable and
/// typed as the dictionary says; the dictionary's units and definitions travel in the file's
/// key-value metadata (`ketcare.unit.<column>`, `ketcare.definition.<column>`).
pub fn parquet(columns: &[Column], rows: &[Vec<Value>]) -> Result<Vec<u8>, ExportError> {
    check(columns, rows)?;
    let mut meta = Vec::with_capacity(columns.len() * 2);
    for c in columns {
        meta.push(KeyValue::new(
            format!("ketcare.definition.{}", c.name),
            c.definition.to_owned(),
        ));
        if !c.unit.is_empty() {
            meta.push(KeyValue::new(
                format!("ketcare.unit.{}", c.name),
                c.unit.to_owned(),
            ));
        }
    }
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_key_value_metadata(Some(meta))
        .set_created_by("ketcare".into())
        .build();
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, Arc::new(schema(columns)?), Arc::new(props))?;
    let mut group = writer.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = group.next_column()? {
        match columns[i].kind {
            Kind::Text => {
                let (v, d) = split(rows, i, |v| match v {
                    Value::Text(t) => t.as_deref().map(ByteArray::from),
                    _ => None,
                });
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&d), None)?;
            }
            Kind::Integer => {
                let (v, d) = split(rows, i, |v| match v {
                    Value::Integer(x) => *x,
                    _ => None,
                });
                col.typed::<Int64Type>().write_batch(&v, Some(&d), None)?;
            }
            Kind::Real => {
                let (v, d) = split(rows, i, |v| match v {
                    Value::Real(x) => *x,
                    _ => None,
                });
                col.typed::<DoubleType>().write_batch(&v, Some(&d), None)?;
            }
            Kind::Boolean => {
                let (v, d) = split(rows, i, |v| match v {
                    Value::Boolean(x) => *x,
                    _ => None,
                });
                col.typed::<BoolType>().write_batch(&v, Some(&d), None)?;
            }
        }
        col.close()?;
        i += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    const COLS: [Column; 4] = [
        Column {
            name: "id",
            kind: Kind::Text,
            unit: "",
            definition: "an id",
        },
        Column {
            name: "n",
            kind: Kind::Integer,
            unit: "count",
            definition: "a count",
        },
        Column {
            name: "x",
            kind: Kind::Real,
            unit: "mg",
            definition: "a dose, \"mean\"",
        },
        Column {
            name: "ok",
            kind: Kind::Boolean,
            unit: "",
            definition: "a flag",
        },
    ];

    fn rows() -> Vec<Vec<Value>> {
        vec![
            vec![
                Value::Text(Some("S-1,a".into())),
                Value::Integer(Some(3)),
                Value::Real(Some(0.5)),
                Value::Boolean(Some(true)),
            ],
            vec![
                Value::Text(None),
                Value::Integer(None),
                Value::Real(None),
                Value::Boolean(None),
            ],
        ]
    }

    #[test]
    fn csv_quotes_and_leaves_missing_empty() {
        assert_eq!(
            csv(&COLS, &rows()).unwrap(),
            "id,n,x,ok\n\"S-1,a\",3,0.5,true\n,,,\n"
        );
        assert_eq!(
            dictionary_csv(&COLS).lines().nth(3),
            Some("x,double,mg,\"a dose, \"\"mean\"\"\"")
        );
    }

    #[test]
    fn parquet_reads_back_typed_with_nulls() {
        let bytes = parquet(&COLS, &rows()).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let meta = reader.metadata().file_metadata();
        assert_eq!(meta.num_rows(), 2);
        let kv = meta.key_value_metadata().unwrap();
        assert!(
            kv.iter()
                .any(|k| k.key == "ketcare.unit.x" && k.value.as_deref() == Some("mg"))
        );
        let got: Vec<Vec<Field>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect();
        assert_eq!(
            got[0],
            vec![
                Field::Str("S-1,a".into()),
                Field::Long(3),
                Field::Double(0.5),
                Field::Bool(true)
            ]
        );
        assert_eq!(got[1], vec![Field::Null; 4]);
    }

    #[test]
    fn a_cell_of_the_wrong_type_is_refused_naming_its_column() {
        let mut r = rows();
        r[0][1] = Value::Real(Some(1.0));
        let e = parquet(&COLS, &r).unwrap_err().to_string();
        assert!(e.contains("column n"), "{e}");
        assert!(csv(&COLS, &r[..1]).is_err());
    }
}
