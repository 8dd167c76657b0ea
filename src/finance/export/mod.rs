//! Booking exports for one tenant and period: every paid, refund and reversal journal with its
//! payment's details, ordered by (posted_at, journal id), as CSV, JSON or camt.054. Pages of
//! [`PAGE_SIZE`] rows are read by keyset and written out one at a time, so an export of any length
//! never sits in memory whole. Same ledger, same request: same bytes.

mod booking;
mod camt;
mod csv;
mod json;

use futures_util::stream::{self, Stream};

pub use self::booking::{amount_text, Booking, BookingType};
pub use self::camt::NAMESPACE as CAMT054_NAMESPACE;
pub use self::csv::{DecimalSeparator, COLUMNS as CSV_COLUMNS};

use self::camt::{CamtEncoder, CamtHeader, ContentHash};
use self::csv::CsvEncoder;
use self::json::JsonEncoder;
use super::period::{ParamError, Period};
use crate::store::ledger::{BookingCursor, BookingQuery};
use crate::store::{Database, StorageError};

/// Rows read from the database per page.
pub const PAGE_SIZE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Camt054,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Camt054 => "xml",
        }
    }
}

/// What an export was asked for, read from the query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub period: Period,
    pub format: Format,
    pub decimal: DecimalSeparator,
    pub bom: bool,
}

impl ExportRequest {
    /// `from`, `to` (required), `format` (`csv` by default, `json`, `camt054`), and for CSV
    /// `decimal` (`comma` by default, `point`) and `bom` (`false` by default, `true`). A parameter
    /// given twice is refused; unknown parameters are ignored.
    pub fn parse(params: &[(String, String)]) -> Result<ExportRequest, ParamError> {
        let value = |name: &'static str| -> Result<Option<&str>, ParamError> {
            let mut values = params.iter().filter(|(key, _)| key == name).map(|(_, v)| v.as_str());
            let first = values.next();
            if values.next().is_some() {
                return Err(ParamError::new(name, "must be given once"));
            }
            Ok(first)
        };
        let period = super::period::parse(value("from")?, value("to")?)?;
        let format = match value("format")? {
            None | Some("csv") => Format::Csv,
            Some("json") => Format::Json,
            Some("camt054") => Format::Camt054,
            Some(_) => return Err(ParamError::new("format", "must be csv, json or camt054")),
        };
        let decimal = match value("decimal")? {
            None | Some("comma") => DecimalSeparator::Comma,
            Some("point") => DecimalSeparator::Point,
            Some(_) => return Err(ParamError::new("decimal", "must be comma or point")),
        };
        let bom = match value("bom")? {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ParamError::new("bom", "must be true or false")),
        };
        Ok(ExportRequest { period, format, decimal, bom })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot write the export: {0}")]
    Write(String),
}

impl From<::csv::Error> for ExportError {
    fn from(e: ::csv::Error) -> Self {
        ExportError::Write(e.to_string())
    }
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Write(e.to_string())
    }
}

enum Encoder {
    Csv(CsvEncoder),
    Json(JsonEncoder),
    Camt(CamtEncoder, CamtHeader),
}

/// An export ready to stream: the state it reads is fixed, its header known.
pub struct BookingExport {
    db: Database,
    query: BookingQuery,
    tenant_id: String,
    tenant_name: String,
    request: ExportRequest,
    encoder: Encoder,
}

impl BookingExport {
    /// Fixes the journals the export covers (those posted so far) and, for camt.054, reads them once
    /// to derive the message id. Failures here come before any byte is sent.
    pub async fn prepare(
        db: &Database,
        tenant_id: &str,
        tenant_name: &str,
        request: ExportRequest,
    ) -> Result<BookingExport, ExportError> {
        let query = BookingQuery {
            tenant_id: tenant_id.to_owned(),
            from_millis: request.period.start_millis(),
            until_millis: request.period.end_millis(),
            last_journal_id: db.ledger_last_journal_id().await?,
        };
        let encoder = match request.format {
            Format::Csv => Encoder::Csv(CsvEncoder::new(request.decimal, request.bom)),
            Format::Json => Encoder::Json(JsonEncoder::new()),
            Format::Camt054 => {
                let mut hash = ContentHash::new(tenant_id, &request.period);
                let mut cursor = BookingCursor::START;
                loop {
                    let page = read_page(db, &query, &mut cursor).await?;
                    if page.is_empty() {
                        break;
                    }
                    page.iter().for_each(|booking| hash.add(booking));
                }
                Encoder::Camt(CamtEncoder::new(), hash.finish(&request.period))
            }
        };
        Ok(BookingExport {
            db: db.clone(),
            query,
            tenant_id: tenant_id.to_owned(),
            tenant_name: tenant_name.to_owned(),
            request,
            encoder,
        })
    }

    /// A file name such as `bookings-09162000-2026-11-01-2026-11-30.csv`.
    pub fn file_name(&self) -> String {
        let period = &self.request.period;
        format!("bookings-{}-{}-{}.{}", self.tenant_id, period.from, period.to, self.request.format.extension())
    }

    /// The export's bytes, page by page.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<u8>, ExportError>> + Send + 'static {
        stream::try_unfold((self, Phase::Header, BookingCursor::START), |(mut export, phase, mut cursor)| async move {
            let bytes = match phase {
                Phase::Header => export.header()?,
                Phase::Rows => {
                    let page = read_page(&export.db, &export.query, &mut cursor).await?;
                    if page.is_empty() {
                        let footer = export.footer()?;
                        return Ok(Some((footer, (export, Phase::Done, cursor))));
                    }
                    export.rows(&page)?
                }
                Phase::Done => return Ok(None),
            };
            Ok(Some((bytes, (export, Phase::Rows, cursor))))
        })
    }

    fn header(&mut self) -> Result<Vec<u8>, ExportError> {
        Ok(match &mut self.encoder {
            Encoder::Csv(csv) => csv.header()?,
            Encoder::Json(json) => json.header(&self.tenant_id, &self.request.period),
            Encoder::Camt(camt, header) => {
                camt.header(header, &self.tenant_id, &self.tenant_name, &self.request.period)?
            }
        })
    }

    fn rows(&mut self, page: &[Booking]) -> Result<Vec<u8>, ExportError> {
        Ok(match &mut self.encoder {
            Encoder::Csv(csv) => csv.rows(page)?,
            Encoder::Json(json) => json.rows(page),
            Encoder::Camt(camt, _) => camt.rows(page)?,
        })
    }

    fn footer(&mut self) -> Result<Vec<u8>, ExportError> {
        Ok(match &mut self.encoder {
            Encoder::Csv(_) => Vec::new(),
            Encoder::Json(json) => json.footer(),
            Encoder::Camt(camt, _) => camt.footer()?,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Header,
    Rows,
    Done,
}

/// The next page after `cursor`, which moves to its last row.
async fn read_page(
    db: &Database,
    query: &BookingQuery,
    cursor: &mut BookingCursor,
) -> Result<Vec<Booking>, ExportError> {
    let rows = db.booking_page(query, *cursor, PAGE_SIZE).await?;
    if let Some(last) = rows.last() {
        *cursor = BookingCursor { posted_at: last.posted_at, journal_id: last.journal_id };
    }
    Ok(rows.into_iter().map(Booking::from_row).collect::<Result<_, _>>()?)
}
