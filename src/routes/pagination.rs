//! What the API routes share: query-string validation (pages, limits, enumerations) that
//! names the offending parameter, UUID path ids, JSON bodies parsed after authentication,
//! the `pagination` object, timestamps, and the HTTP meaning of engine errors.
//!
//! Handlers take their inputs raw (`HttpRequest`, `web::Path<String>`, `web::Bytes`) and
//! validate them here, after the auth extractor ran: an anonymous caller always gets 401,
//! never a hint about which of its parameters were wrong.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use chrono::NaiveDateTime;
use facture_actors::EngineError;
use facture_core::catalog::PageRequest;
use facture_core::mail::MailError;
use facture_core::storage::StorageError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

fn invalid(name: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("query parameter `{name}`: {message}"),
    )
}

/// The query string, decoded. Unknown parameters are ignored; a known one given twice is
/// refused; an empty value counts as absent.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| QueryParams(q.into_inner()))
            .map_err(|e| {
                ApiError::bad_request("invalid_query", format!("invalid query string: {e}"))
            })
    }

    /// The value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid(name, "given more than once"));
        }
        Ok(first.map(|(_, v)| v.trim()).filter(|v| !v.is_empty()))
    }

    fn integer(&self, name: &str, default: u32, min: u32, max: u32) -> Result<u32, ApiError> {
        let Some(raw) = self.get(name)? else {
            return Ok(default);
        };
        let value: u32 = raw
            .parse()
            .map_err(|_| invalid(name, format!("`{raw}` is not an integer in {min}..={max}")))?;
        if !(min..=max).contains(&value) {
            return Err(invalid(
                name,
                format!("must be in {min}..={max}, got {value}"),
            ));
        }
        Ok(value)
    }

    /// `page` (≥ 1, default 1) and `limit` (1..=100, default 20).
    pub fn page_request(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest {
            page: self.integer("page", 1, 1, 1_000_000)?,
            limit: self.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?,
        })
    }

    /// One of `allowed` (case-sensitive), parsed by `parse`.
    pub fn one_of<T>(
        &self,
        name: &str,
        allowed: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        let Some(raw) = self.get(name)? else {
            return Ok(None);
        };
        parse(raw).map(Some).ok_or_else(|| {
            invalid(
                name,
                format!("`{raw}` is not one of {}", allowed.join(", ")),
            )
        })
    }

    /// `true`/`false` (also `1`/`0`).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.one_of(name, &["true", "false"], |v| match v {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        })
    }

    /// Free text of at most `max_chars` characters.
    pub fn text(&self, name: &str, max_chars: usize) -> Result<Option<String>, ApiError> {
        let Some(raw) = self.get(name)? else {
            return Ok(None);
        };
        if raw.chars().count() > max_chars {
            return Err(invalid(name, format!("longer than {max_chars} characters")));
        }
        // A NUL ends a LIKE pattern early on SQLite (matching everything) and cannot be sent
        // to PostgreSQL at all; no search term needs a control character.
        if raw.chars().any(char::is_control) {
            return Err(invalid(name, "contains a control character"));
        }
        Ok(Some(raw.to_owned()))
    }
}

/// A path id: must be a UUID (400 `invalid_id` otherwise); returned in the stored form
/// (lowercase, hyphenated).
pub fn parse_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| {
            ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid id (a UUID)"))
        })
}

/// A JSON body: 400 `invalid_body` when it does not parse or lacks a field.
pub fn parse_json<T: DeserializeOwned>(body: &web::Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the JSON body is invalid: {e}"))
    })
}

/// ISO 8601 UTC with milliseconds: `2026-03-01T09:30:00.123Z`.
pub fn iso(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where a page sits in the whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
    /// Rows matching, over every page.
    pub total: i64,
    /// 0 when nothing matches.
    pub total_pages: i64,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl Pagination {
    pub fn new(request: PageRequest, total: i64) -> Self {
        let limit = i64::from(request.limit.max(1));
        let total_pages = (total + limit - 1) / limit;
        Pagination {
            page: request.page,
            limit: request.limit,
            total,
            total_pages,
            has_next_page: i64::from(request.page) < total_pages,
            has_previous_page: request.page > 1,
        }
    }
}

/// The error body every failure answers with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code (`invalid_query`, `unauthorized`, `file_missing`...).
    pub error: String,
    pub message: String,
}

/// What an engine failure means to the caller.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::NotFound(what) => {
            ApiError::not_found("not_found", format!("{what} not found"))
        }
        EngineError::Storage(StorageError::NotFound(_)) => ApiError::not_found(
            "file_missing",
            "the invoice's PDF file is missing from storage; regenerate it",
        ),
        EngineError::Storage(StorageError::Corrupted { path, .. }) => {
            tracing::warn!(%path, "stored invoice PDF does not match its SHA-256");
            ApiError::new(
                StatusCode::CONFLICT,
                "file_corrupted",
                "the invoice's PDF file no longer matches its recorded SHA-256; regenerate it",
            )
        }
        EngineError::Mail(MailError::NotFound(id)) => {
            ApiError::not_found("not_found", format!("email delivery {id} not found"))
        }
        EngineError::Unsupported(message) => {
            ApiError::new(StatusCode::CONFLICT, "unsupported", message)
        }
        e if e.is_transient() => {
            tracing::warn!(error = %e, "engine temporarily unavailable");
            ApiError::unavailable(format!("temporarily unavailable, retry later: {e}"))
        }
        e => ApiError::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> QueryParams {
        let req = actix_web::test::TestRequest::with_uri(&format!("/x?{q}")).to_http_request();
        QueryParams::parse(&req).unwrap()
    }

    #[test]
    fn pages_and_limits_are_bounded() {
        assert_eq!(
            params("").page_request().unwrap(),
            PageRequest { page: 1, limit: 20 }
        );
        for bad in [
            "limit=0",
            "limit=101",
            "page=0",
            "page=-1",
            "page=x",
            "limit=1&limit=2",
        ] {
            let e = params(bad).page_request().unwrap_err();
            assert_eq!(e.code, "invalid_query", "{bad}");
            let name = bad.split('=').next().unwrap();
            assert!(
                e.message.contains(&format!("`{name}`")),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn pagination_edges() {
        let p = Pagination::new(PageRequest { page: 3, limit: 10 }, 21);
        assert_eq!(
            (p.total_pages, p.has_next_page, p.has_previous_page),
            (3, false, true)
        );
        let p = Pagination::new(PageRequest { page: 1, limit: 10 }, 0);
        assert_eq!(
            (p.total_pages, p.has_next_page, p.has_previous_page),
            (0, false, false)
        );
    }

    #[test]
    fn free_text_refuses_control_characters() {
        assert_eq!(
            params("search=%C3%A9t%C3%A9%20l%27")
                .text("search", 200)
                .unwrap(),
            Some("été l'".to_owned())
        );
        for bad in [
            "search=%00",
            "search=a%00b",
            "search=a%0Ab",
            "search=%1B%5B31m",
        ] {
            let e = params(bad).text("search", 200).unwrap_err();
            assert_eq!(e.code, "invalid_query", "{bad}");
            assert!(e.message.contains("`search`"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(parse_id("nope").unwrap_err().code, "invalid_id");
        let id = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
        assert_eq!(parse_id(id).unwrap(), id.to_lowercase());
    }
}
