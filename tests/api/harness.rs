//! How tests register themselves and become trials: each test function is followed by a one-line
//! registration macro that submits a `RegisteredTest` to `inventory`; `trials()` turns everything
//! collected into libtest-mimic trials, a backend test once per database.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Failed, Trial};

use crate::helpers::{run_backend_test, run_plain, BackendTest, TestBackend, TestResult};

/// An async test that needs no database.
pub type PlainTest = fn() -> Pin<Box<dyn Future<Output = TestResult> + Send>>;

/// One registered test function and how it runs.
pub struct RegisteredTest {
    /// `module_path!()` at the registration, e.g. `api::health`.
    pub module_path: &'static str,
    pub function: &'static str,
    pub kind: TestKind,
}

pub enum TestKind {
    /// Runs as `NAME::sqlite` and `NAME::postgres` (ignored without PostgreSQL).
    Backend(BackendTest),
    /// Runs only as `NAME::postgres` (ignored without PostgreSQL).
    PostgresOnly(BackendTest),
    /// Runs only as `NAME::sqlite`, ignored while the precondition does not hold.
    SqliteOnlyIf(BackendTest, fn() -> bool),
    /// Runs once as `NAME`, without a database.
    Plain(PlainTest),
    /// Runs once as `NAME`, synchronously (the test sets up what it needs itself).
    Sync(fn() -> Result<(), Failed>),
}

inventory::collect!(RegisteredTest);

impl RegisteredTest {
    /// `module::function`, the module path without the test binary's crate name.
    pub fn name(&self) -> String {
        match self.module_path.split_once("::") {
            Some((_crate, module)) => format!("{module}::{}", self.function),
            None => self.function.to_owned(),
        }
    }
}

/// Every registered test, in no particular order.
pub fn registered() -> impl Iterator<Item = &'static RegisteredTest> {
    inventory::iter::<RegisteredTest>.into_iter()
}

/// The trials of every registered test, sorted by name; PostgreSQL trials run against `postgres`
/// (the admin URL) and are reported as ignored without it.
pub fn trials(postgres: Option<String>) -> Vec<Trial> {
    let mut trials = Vec::new();
    for test in registered() {
        let name = test.name();
        match test.kind {
            TestKind::Backend(run) => {
                trials.push(sqlite_trial(&name, run));
                trials.push(postgres_trial(&name, run, &postgres));
            }
            TestKind::PostgresOnly(run) => trials.push(postgres_trial(&name, run, &postgres)),
            TestKind::SqliteOnlyIf(run, ready) => trials.push(sqlite_trial(&name, run).with_ignored_flag(!ready())),
            TestKind::Plain(run) => trials.push(Trial::test(name, move || run_plain(run()))),
            TestKind::Sync(run) => trials.push(Trial::test(name, run)),
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    trials
}

fn sqlite_trial(name: &str, run: BackendTest) -> Trial {
    Trial::test(format!("{name}::sqlite"), move || run_backend_test(run, TestBackend::Sqlite))
}

fn postgres_trial(name: &str, run: BackendTest, postgres: &Option<String>) -> Trial {
    let url = postgres.clone();
    Trial::test(format!("{name}::postgres"), move || {
        run_backend_test(run, TestBackend::Postgres(url.unwrap_or_default()))
    })
    .with_ignored_flag(postgres.is_none())
}

/// `backend_test!(name);` below `pub async fn name(ctx: TestContext) -> TestResult`.
macro_rules! backend_test {
    ($name:ident) => {
        inventory::submit! {
            $crate::harness::RegisteredTest {
                module_path: module_path!(),
                function: stringify!($name),
                kind: $crate::harness::TestKind::Backend(|ctx| Box::pin($name(ctx))),
            }
        }
    };
}

/// `postgres_test!(name);` for a backend test that only makes sense on PostgreSQL.
macro_rules! postgres_test {
    ($name:ident) => {
        inventory::submit! {
            $crate::harness::RegisteredTest {
                module_path: module_path!(),
                function: stringify!($name),
                kind: $crate::harness::TestKind::PostgresOnly(|ctx| Box::pin($name(ctx))),
            }
        }
    };
}

/// `sqlite_test!(name, only_if = ready);` for a backend test run on SQLite only, reported as
/// ignored while `ready()` is false (e.g. its npm packages are not installed).
macro_rules! sqlite_test {
    ($name:ident, only_if = $ready:path) => {
        inventory::submit! {
            $crate::harness::RegisteredTest {
                module_path: module_path!(),
                function: stringify!($name),
                kind: $crate::harness::TestKind::SqliteOnlyIf(|ctx| Box::pin($name(ctx)), $ready),
            }
        }
    };
}

/// `plain_test!(name);` below `pub async fn name() -> TestResult`.
macro_rules! plain_test {
    ($name:ident) => {
        inventory::submit! {
            $crate::harness::RegisteredTest {
                module_path: module_path!(),
                function: stringify!($name),
                kind: $crate::harness::TestKind::Plain(|| Box::pin($name())),
            }
        }
    };
}

/// `sync_test!(name);` below `pub fn name() -> Result<(), Failed>`.
macro_rules! sync_test {
    ($name:ident) => {
        inventory::submit! {
            $crate::harness::RegisteredTest {
                module_path: module_path!(),
                function: stringify!($name),
                kind: $crate::harness::TestKind::Sync($name),
            }
        }
    };
}
