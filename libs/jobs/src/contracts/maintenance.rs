//! The scheduled maintenance jobs: the worker's scheduler publishes them
//! ([`crate::schedule`]), the service that owns the data runs them — family `catalog` in
//! catalog-order, family `auth` in auth. The kinds are shared because both sides name them; what
//! each job does is its service's.

use std::time::Duration;

use crate::Family;

/// catalog-order's maintenance: one at a time, a minute each.
pub const CATALOG_FAMILY: Family = Family {
    name: "catalog",
    ack_wait: Duration::from_secs(15),
    timeout: Duration::from_secs(60),
    max_deliver: 3,
    max_ack_pending: 4,
};

/// auth's maintenance: as [`CATALOG_FAMILY`].
pub const AUTH_FAMILY: Family = Family {
    name: "auth",
    ..CATALOG_FAMILY
};

/// The kinds of family `catalog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogJob {
    /// Cancel pending orders past their payment window.
    ExpireOrders,
    /// Delete finished jobs and applied-event (inbox) rows past their retention.
    PurgeJobs,
    /// Forget `Idempotency-Key`s past their retention.
    PurgeIdempotencyKeys,
    /// Delete image objects that no image row refers to: the original of an upload whose
    /// transaction never committed.
    SweepImages,
}

impl CatalogJob {
    pub const ALL: [CatalogJob; 4] = [
        CatalogJob::ExpireOrders,
        CatalogJob::PurgeJobs,
        CatalogJob::PurgeIdempotencyKeys,
        CatalogJob::SweepImages,
    ];

    /// The job kind on the wire.
    pub const fn kind(self) -> &'static str {
        match self {
            CatalogJob::ExpireOrders => "catalog.expire_orders",
            CatalogJob::PurgeJobs => "catalog.purge_jobs",
            CatalogJob::PurgeIdempotencyKeys => "catalog.purge_idempotency_keys",
            CatalogJob::SweepImages => "catalog.sweep_images",
        }
    }

    /// `None` for a kind this version does not know (a newer scheduler's).
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.kind() == kind)
    }
}

/// The kinds of family `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthJob {
    /// Delete expired and revoked sessions, idle login counters and published outbox events
    /// past their retention.
    PurgeSessions,
}

impl AuthJob {
    pub const ALL: [AuthJob; 1] = [AuthJob::PurgeSessions];

    /// The job kind on the wire.
    pub const fn kind(self) -> &'static str {
        match self {
            AuthJob::PurgeSessions => "auth.purge_sessions",
        }
    }

    /// `None` for a kind this version does not know (a newer scheduler's).
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.kind() == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_and_a_foreign_one_does_not() {
        for job in CatalogJob::ALL {
            assert_eq!(CatalogJob::from_kind(job.kind()), Some(job));
        }
        for job in AuthJob::ALL {
            assert_eq!(AuthJob::from_kind(job.kind()), Some(job));
        }
        assert_eq!(CatalogJob::from_kind("catalog.newer_job"), None);
        assert_eq!(AuthJob::from_kind(CatalogJob::PurgeJobs.kind()), None);
    }
}
