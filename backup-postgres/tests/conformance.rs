//! The driver conformance suite (`backup_core::conformance::driver`) on
//! [`PostgresDriver`], against the real server `scripts/services.sh` starts.

mod pg_fixture;

use backup_core::conformance::driver;
use backup_postgres::PostgresDriver;
use pg_fixture::PgFixture;

macro_rules! cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            driver::$case(&PostgresDriver, &PgFixture::postgres()).await;
        }
    )*};
}

cases!(
    round_trip,
    non_empty_target_is_refused,
    corrupted_artifact,
    truncated_artifact,
    wrong_key,
    cancelled_restore,
    cancelled_backup,
    verify_restore,
);
