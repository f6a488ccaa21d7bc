//! SQLSTATE classification, in one place, so services decide about retries
//! and error codes without matching on driver error text.

/// What kind of database failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// 23505: a unique constraint said no.
    UniqueViolation,
    /// 23503.
    ForeignKeyViolation,
    /// 23514 / 23502: a check or not-null constraint.
    ConstraintViolation,
    /// 40001: retry the transaction.
    SerializationFailure,
    /// 40P01: retry the transaction.
    Deadlock,
    /// 57014: the statement was cancelled (timeout or caller gone).
    QueryCanceled,
    /// Class 08, 57P01..03, I/O: the server or the network went away.
    ConnectionLost,
    /// No pooled connection became free in time.
    PoolExhausted,
    /// 53xxx: the server ran out of a resource.
    InsufficientResources,
    /// Class 22 (data exception: a NUL or invalid byte sequence, a value out of range) or 54
    /// (a program limit, such as an over-long index row): this record can never be stored
    /// as it is, so it is set aside with a reason instead of being retried.
    DataException,
    /// Anything else: a bug or a schema mismatch.
    Other,
}

impl DbErrorKind {
    /// Whether retrying the same transaction may succeed.
    pub fn is_transient(self) -> bool {
        match self {
            DbErrorKind::SerializationFailure
            | DbErrorKind::Deadlock
            | DbErrorKind::ConnectionLost
            | DbErrorKind::PoolExhausted
            | DbErrorKind::InsufficientResources => true,
            DbErrorKind::UniqueViolation
            | DbErrorKind::ForeignKeyViolation
            | DbErrorKind::ConstraintViolation
            | DbErrorKind::QueryCanceled
            | DbErrorKind::DataException
            | DbErrorKind::Other => false,
        }
    }
}

impl DbErrorKind {
    /// Whether the failure is about the records written, not the database: the same records
    /// fail again however often they are retried, and the others may pass without them.
    pub fn is_about_the_record(self) -> bool {
        matches!(
            self,
            DbErrorKind::DataException | DbErrorKind::ConstraintViolation
        )
    }
}

/// Classifies a sqlx error by SQLSTATE or by driver error kind.
pub fn classify(err: &sqlx::Error) -> DbErrorKind {
    match err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23505") => DbErrorKind::UniqueViolation,
            Some("23503") => DbErrorKind::ForeignKeyViolation,
            Some("23514" | "23502") => DbErrorKind::ConstraintViolation,
            Some("40001") => DbErrorKind::SerializationFailure,
            Some("40P01") => DbErrorKind::Deadlock,
            Some("57014") => DbErrorKind::QueryCanceled,
            Some("57P01" | "57P02" | "57P03") => DbErrorKind::ConnectionLost,
            Some(code) if code.starts_with("08") => DbErrorKind::ConnectionLost,
            Some(code) if code.starts_with("53") => DbErrorKind::InsufficientResources,
            Some(code) if code.starts_with("22") || code.starts_with("54") => {
                DbErrorKind::DataException
            }
            _ => DbErrorKind::Other,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbErrorKind::ConnectionLost,
        sqlx::Error::PoolTimedOut => DbErrorKind::PoolExhausted,
        _ => DbErrorKind::Other,
    }
}
