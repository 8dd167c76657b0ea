//! Group commit on SQLite (issue 13): writes that arrive while another batch commits share one
//! transaction and one sync of the write-ahead log, instead of one sync each.
//!
//! SQLite has one writer, and with `synchronous = FULL` each commit waits for the disk. Under load
//! the requests queue for that writer anyway; here the queue is drained as a whole: one `BEGIN
//! IMMEDIATE`, each member's statements inside a savepoint of its own, one `COMMIT`. A member whose
//! statements fail is rolled back to its savepoint and fails alone; its neighbours commit. Every
//! member is answered only after the commit (or its failure) is known, so no request reports a
//! write that did not reach the disk. The window is the length of one commit: a write that arrives
//! while the writer is idle starts at once (nothing is added to one request at a time), and what
//! arrives during a commit joins the next batch.
//!
//! On PostgreSQL each write is its own transaction on the pool: the server commits concurrent
//! transactions together itself (its WAL flush covers every commit waiting for it).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_util::future::{BoxFuture, FutureExt};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::backlog::WriteWaits;
use super::{Database, StorageError};
use crate::config::Backend;

/// The most members one transaction takes: a bound on how long a batch holds the writer, and on
/// what one failed commit takes down with it.
const MAX_BATCH: usize = 64;
/// Writes waiting for the writer before new ones wait for room in the queue (back-pressure).
const QUEUE: usize = 1024;

/// Work inside a write transaction: the statements of one request, and what they give back.
pub(crate) type WriteWork<R> = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, R> + Send>;

/// One request's work, its result type erased so that one batch can hold different writes.
struct Member {
    work: WriteWork<Ran>,
    answer: oneshot::Sender<Answer>,
    /// When it was queued: its wait for the writer counts in `write_waits` as a `begin_write`'s does.
    queued: Instant,
}

/// What a member's work returned: whether it succeeded (its savepoint is kept) and the boxed
/// `Result<T, E>` for its caller.
struct Ran {
    ok: bool,
    result: Box<dyn Any + Send>,
}

enum Answer {
    /// The member's own result: committed when it succeeded, rolled back alone when it failed.
    Ran(Box<dyn Any + Send>),
    /// The batch did not commit; the member's work is rolled back with it.
    Failed(Arc<sqlx::Error>),
}

/// The queue to the writer task, started on first use (inside the runtime).
#[derive(Default, Debug)]
pub(crate) struct GroupCommit {
    queue: OnceLock<mpsc::Sender<Member>>,
    /// Batches committed (SQLite); with the write transactions counted by `write_waits`, how many
    /// writes share a sync.
    commits: Arc<AtomicU64>,
    /// Writes the writer task has taken off the queue (tests wait on it instead of sleeping).
    taken: Arc<AtomicU64>,
}

impl Database {
    /// Runs `work` in a write transaction and returns its result once committed. On SQLite the
    /// transaction is shared with the writes queued beside it (one sync for all; a failing member
    /// is rolled back alone); on PostgreSQL it is the request's own. `E` carries the member's own
    /// failures; a failed commit arrives as `E::from(StorageError)`.
    pub(crate) async fn write_grouped<T, E>(&self, work: WriteWork<Result<T, E>>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        if self.backend != Backend::Sqlite {
            let mut tx = self.begin_write().await?;
            let value = work(&mut tx).await?;
            tx.commit().await.map_err(StorageError::from)?;
            return Ok(value);
        }
        let group = &self.group_commit;
        let queue = group.queue.get_or_init(|| {
            spawn_writer(Writer {
                pool: self.writer().clone(),
                commits: group.commits.clone(),
                taken: group.taken.clone(),
                waits: self.write_waits.clone(),
            })
        });
        let (answer, answered) = oneshot::channel();
        let member = Member {
            work: Box::new(move |conn| {
                Box::pin(async move {
                    let result = work(conn).await;
                    Ran { ok: result.is_ok(), result: Box::new(result) }
                })
            }),
            answer,
            queued: Instant::now(),
        };
        queue.send(member).await.map_err(|_| StorageError::WriterGone)?;
        let answer = answered.await.map_err(|_| StorageError::WriterGone)?;
        match answer {
            Answer::Ran(result) => match result.downcast::<Result<T, E>>() {
                Ok(result) => *result,
                // The writer hands back the box this call filled; another type cannot arrive.
                Err(_) => Err(StorageError::WriterGone.into()),
            },
            Answer::Failed(error) => Err(StorageError::Batch(error).into()),
        }
    }
}

/// The writer task's share of the database handle.
struct Writer {
    pool: AnyPool,
    commits: Arc<AtomicU64>,
    taken: Arc<AtomicU64>,
    waits: Arc<WriteWaits>,
}

fn spawn_writer(writer: Writer) -> mpsc::Sender<Member> {
    let Writer { pool, commits, taken, waits } = writer;
    let (queue, mut queued) = mpsc::channel::<Member>(QUEUE);
    tokio::spawn(async move {
        while let Some(first) = queued.recv().await {
            taken.fetch_add(1, Ordering::Relaxed);
            // The writer connection first (another write may hold it), then everything queued by
            // then: what arrived while the previous batch committed joins this one.
            let conn = pool.acquire().await;
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queued.try_recv() {
                    Ok(member) => {
                        taken.fetch_add(1, Ordering::Relaxed);
                        batch.push(member);
                    }
                    Err(_) => break,
                }
            }
            let begun = Instant::now();
            for member in &batch {
                waits.add(begun.saturating_duration_since(member.queued));
            }
            match conn {
                Ok(mut conn) => {
                    if commit_batch(&mut conn, batch).await {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(error) => fail_all(batch.into_iter().map(|m| m.answer), error),
            }
        }
    });
    queue
}

/// One transaction for `batch`: each member inside its own savepoint, then one commit, then the
/// answers. A failure of the transaction itself (begin, savepoint, commit) fails every member
/// whose work it would have kept. Whether the batch committed.
async fn commit_batch(conn: &mut AnyConnection, batch: Vec<Member>) -> bool {
    if let Err(error) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        fail_all(batch.into_iter().map(|m| m.answer), error);
        return false;
    }
    let mut done: Vec<(Ran, oneshot::Sender<Answer>)> = Vec::with_capacity(batch.len());
    let mut members = batch.into_iter();
    let mut broken = None;
    for member in members.by_ref() {
        if let Err(error) = sqlx::query("SAVEPOINT member").execute(&mut *conn).await {
            broken = Some((error, member.answer));
            break;
        }
        // A panic in one member's work must not end the writer for everyone: it counts as that
        // member's failure, and its caller hears that the writer did not answer.
        let ran = match AssertUnwindSafe((member.work)(conn)).catch_unwind().await {
            Ok(ran) => ran,
            Err(_) => Ran { ok: false, result: Box::new(()) },
        };
        let closed = if ran.ok {
            sqlx::query("RELEASE SAVEPOINT member").execute(&mut *conn).await
        } else {
            match sqlx::query("ROLLBACK TO SAVEPOINT member").execute(&mut *conn).await {
                Ok(_) => sqlx::query("RELEASE SAVEPOINT member").execute(&mut *conn).await,
                Err(error) => Err(error),
            }
        };
        match closed {
            Ok(_) => done.push((ran, member.answer)),
            // SQLite may have rolled back the whole transaction (a full disk, an I/O error).
            Err(error) => {
                broken = Some((error, member.answer));
                break;
            }
        }
    }
    let committed = match broken {
        Some((error, answer)) => {
            let _rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            let error = Arc::new(error);
            let _ = answer.send(Answer::Failed(error.clone()));
            Err(error)
        }
        None => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()).map_err(Arc::new),
    };
    if let Err(error) = &committed {
        // Members after the break never ran.
        for member in members {
            let _ = member.answer.send(Answer::Failed(error.clone()));
        }
        // A failed COMMIT can leave the connection inside the transaction; the pool must not
        // hand it out like that. (On a broken connection this fails too, and the pool drops it.)
        let _rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    let ok = committed.is_ok();
    for (ran, answer) in done {
        let reply = match (&committed, ran.ok) {
            (Err(error), true) => Answer::Failed(error.clone()),
            // A member that failed alone keeps its own error, whatever became of the batch.
            _ => Answer::Ran(ran.result),
        };
        // A caller that stopped waiting (its client went away) needs no answer.
        let _ = answer.send(reply);
    }
    ok
}

fn fail_all(answers: impl Iterator<Item = oneshot::Sender<Answer>>, error: sqlx::Error) {
    let error = Arc::new(error);
    for answer in answers {
        let _ = answer.send(Answer::Failed(error.clone()));
    }
}

impl Database {
    /// Transactions the group commit committed (SQLite; 0 on PostgreSQL).
    pub fn group_commits(&self) -> u64 {
        self.group_commit.commits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_database, StorageResult};

    /// A write for the tests: inserts `ids` into `t` one by one (a repeated id fails its statement).
    fn insert(db: &Database, ids: &'static [i64]) -> impl std::future::Future<Output = StorageResult<usize>> {
        let db = db.clone();
        async move {
            db.write_grouped(Box::new(move |conn| {
                Box::pin(async move {
                    for id in ids {
                        sqlx::query("INSERT INTO t (id) VALUES ($1)").bind(id).execute(&mut *conn).await?;
                    }
                    Ok::<_, StorageError>(ids.len())
                })
            }))
            .await
        }
    }

    async fn ids(db: &Database) -> StorageResult<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM t ORDER BY id").fetch_all(db.pool()).await?)
    }

    /// Waits until the writer has taken `taken` writes off the queue and `waiting` more wait in it.
    async fn writes_seen(db: &Database, taken: u64, waiting: usize) {
        let group = &db.group_commit;
        loop {
            let in_queue = group.queue.get().map_or(0, |q| q.max_capacity() - q.capacity());
            if group.taken.load(Ordering::Relaxed) == taken && in_queue == waiting {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn writes_queued_together_commit_in_one_transaction_and_a_failing_one_fails_alone() -> StorageResult<()> {
        let (db, _dir) = test_database().await?;
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(db.writer()).await?;
        let commits_before = db.group_commits();
        // Hold the writer, so the next writes queue up behind it.
        let held = db.begin_write().await?;
        let first = tokio::spawn(insert(&db, &[1]));
        // The writer took `first` and waits for the connection; the next two queue behind it.
        writes_seen(&db, 1, 0).await;
        let failing = tokio::spawn(insert(&db, &[2, 1]));
        let third = tokio::spawn(insert(&db, &[3]));
        writes_seen(&db, 1, 2).await;
        held.rollback().await?;

        assert_eq!(first.await.map_err(|e| StorageError::Corrupt(e.to_string()))??, 1);
        let refused = failing.await.map_err(|e| StorageError::Corrupt(e.to_string()))?;
        assert!(refused.as_ref().is_err_and(StorageError::is_unique_violation), "{refused:?}");
        assert_eq!(third.await.map_err(|e| StorageError::Corrupt(e.to_string()))??, 1);
        // The failing write's first row (2) went with its savepoint; its neighbours' rows stayed.
        assert_eq!(ids(&db).await?, [1, 3]);
        assert_eq!(db.group_commits() - commits_before, 1, "one transaction for the three writes");
        Ok(())
    }

    #[tokio::test]
    async fn a_write_is_answered_only_once_its_commit_is_readable_elsewhere() -> StorageResult<()> {
        let (db, _dir) = test_database().await?;
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(db.writer()).await?;
        for id in [&[7_i64][..], &[8], &[9]] {
            insert(&db, id).await?;
            // Read on the other pool: committed, not merely written on the writer's connection.
            assert!(ids(&db).await?.contains(&id[0]));
        }
        assert_eq!(db.group_commits(), 3, "one at a time: nothing to share a commit with");
        Ok(())
    }

    #[tokio::test]
    async fn a_write_whose_work_panics_fails_alone_and_the_writer_goes_on() -> StorageResult<()> {
        let (db, _dir) = test_database().await?;
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(db.writer()).await?;
        let panicking = db
            .write_grouped::<(), StorageError>(Box::new(|conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (id) VALUES (5)").execute(&mut *conn).await?;
                    panic!("a bug in one write");
                })
            }))
            .await;
        assert!(matches!(panicking, Err(StorageError::WriterGone)), "{panicking:?}");
        insert(&db, &[6]).await?;
        assert_eq!(ids(&db).await?, [6], "the panicking write's row was rolled back");
        Ok(())
    }
}
