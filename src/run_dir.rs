//! Run directories: one writer at a time, a finished run never replaced by accident, and
//! checkpoints committed as one unit (docs/architecture.md, "Runs are never lost").
//!
//! ```text
//! D/.lock                 held (OS file lock) for the whole run; holds the writer's PID
//! D/checkpoints/step-N/   model, optimizer, metrics, config and loop state of one commit
//! D/checkpoints/latest    "step-N": the committed checkpoint, written last
//! D/model.safetensors     the latest checkpoint's model, metrics and config, linked here
//! D/metrics.jsonl         for eval, imp, export and people
//! D/config.json
//! ```
//!
//! A commit writes every file of a checkpoint into `checkpoints/.partial-step-N`, syncs them,
//! renames the directory to `step-N` and only then replaces `latest` (atomically). A crash at
//! any point leaves the previous `latest` whole; what it left half-done is removed when the
//! directory is next opened.

use crate::checkpoint::{is_temporary, sync_dir, temporary_path};
use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const MODEL: &str = "model.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const METRICS: &str = "metrics.jsonl";
pub const STATE: &str = "state.json";
pub const CONFIG: &str = "config.json";
/// The run's training curves (loss, score and learning rate by epoch), redrawn every epoch.
pub const CURVES: &str = "curves.png";
const CHECKPOINTS: &str = "checkpoints";
const LATEST: &str = "latest";
const LOCK: &str = ".lock";
const PARTIAL: &str = ".partial-";
/// Files of the latest checkpoint that also appear at the top of the run directory.
const LINKED: [&str; 4] = [MODEL, METRICS, CONFIG, CURVES];
/// Files whose presence (besides `checkpoints/`) marks a directory as holding a run; all of
/// them are removed by `--overwrite`, with the IMP report.
const RUN_FILES: [&str; 7] = [
    MODEL,
    METRICS,
    CONFIG,
    CURVES,
    OPTIMIZER,
    "imp_report.json",
    "imp_report.png",
];

/// What to do with a directory that already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse it (a fresh run).
    Refuse,
    /// Continue it (`--resume`); a directory without a run is an error.
    Resume,
    /// Remove its run files first (`--overwrite`).
    Overwrite,
}

/// An open run directory; its lock is released when this is dropped (or the process dies).
/// A directory this created and never committed a checkpoint to is removed then, with what
/// the run wrote into it, so a run that fails before its first checkpoint leaves nothing
/// behind.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// None for a [`follower`](RunDir::follower), which never writes.
    _lock: Option<File>,
    created: bool,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Everything in a directory this run created was written by this run (the lock kept
        // other writers out); without a committed checkpoint none of it (the text model's
        // files, an IMP report) describes any weights.
        if self.created && !self.checkpoints().join(LATEST).exists() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl RunDir {
    /// Creates `path` if needed, takes its lock and applies `existing`; removes what an
    /// interrupted commit left behind.
    pub fn open(path: &Path, existing: Existing) -> Result<RunDir> {
        let created = !path.exists();
        fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let dir = RunDir {
            path: path.to_path_buf(),
            _lock: Some(lock(path)?),
            created,
        };
        let holds = dir.holds_run();
        match existing {
            Existing::Refuse if holds => {
                return Err(Error::Invalid(format!(
                    "{} already holds a run; continue it with --resume {0}, replace it with --overwrite, or choose another --out",
                    path.display()
                )))
            }
            Existing::Resume if !holds => {
                return Err(Error::data(
                    path,
                    "holds no run to resume (no checkpoints/latest or model.safetensors)",
                ))
            }
            Existing::Overwrite if holds => dir.remove_run()?,
            _ => {}
        }
        dir.remove_stale()?;
        dir.link_latest()?;
        Ok(dir)
    }

    /// The run directory as a data-parallel rank other than 0 sees it, once rank 0 has
    /// opened it: read (to resume), never written or locked, never removed.
    pub fn follower(path: &Path) -> RunDir {
        RunDir {
            path: path.to_path_buf(),
            _lock: None,
            created: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn checkpoints(&self) -> PathBuf {
        self.path.join(CHECKPOINTS)
    }

    fn holds_run(&self) -> bool {
        self.checkpoints().exists() || RUN_FILES[..4].iter().any(|f| self.path.join(f).exists())
    }

    /// The directory of the committed checkpoint: `checkpoints/step-N`, or the run
    /// directory itself for runs written before checkpoints were committed as a unit.
    pub fn latest(&self) -> Result<PathBuf> {
        let pointer = self.checkpoints().join(LATEST);
        match fs::read_to_string(&pointer) {
            Ok(name) => {
                let name = name.trim();
                let dir = self.checkpoints().join(name);
                if !name.starts_with("step-") || name.contains(['/', '\\']) || !dir.is_dir() {
                    return Err(Error::data(
                        &pointer,
                        format!("names '{name}', which is not a checkpoint directory beside it"),
                    ));
                }
                Ok(dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.path.clone()),
            Err(e) => Err(Error::io(&pointer, e)),
        }
    }

    /// Writes `files` (name, contents) as the checkpoint of `step` and commits it; the
    /// previous checkpoint is removed once the new one is committed.
    pub fn commit(&self, step: usize, files: &[(&str, &[u8])]) -> Result<()> {
        self.commit_with(step, files, &|_| {})
    }

    /// [`commit`](Self::commit) with `fault` called before each file-system operation (by
    /// name), so that tests can stop a commit anywhere, as a kill would.
    fn commit_with(
        &self,
        step: usize,
        files: &[(&str, &[u8])],
        fault: &dyn Fn(&str),
    ) -> Result<()> {
        let root = self.checkpoints();
        let committed = self.latest()?;
        // A new name even when this step was committed before (a save at the end of an
        // epoch right after a --save-every one): the committed directory is never touched.
        let name = (0..)
            .map(|k| match k {
                0 => format!("step-{step:09}"),
                k => format!("step-{step:09}.{k}"),
            })
            .find(|n| root.join(n) != committed)
            .expect("unbounded");
        let partial = root.join(format!("{PARTIAL}{name}"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| Error::io(p, e)
        };
        fault("create");
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        fs::create_dir_all(&partial).map_err(io(&partial))?;
        for (file, bytes) in files {
            fault(file);
            let path = partial.join(file);
            let mut f = File::create(&path).map_err(io(&path))?;
            f.write_all(bytes).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
        }
        sync_dir(&partial);
        let done = root.join(&name);
        fault("rename");
        if done.exists() {
            fs::remove_dir_all(&done).map_err(io(&done))?;
        }
        fs::rename(&partial, &done).map_err(io(&done))?;
        sync_dir(&root);
        fault("latest");
        // The commit point (write_atomic syncs the directory too).
        crate::checkpoint::write_atomic(&root.join(LATEST), name.as_bytes())?;
        for file in LINKED.iter().filter(|f| files.iter().any(|(n, _)| n == *f)) {
            fault("link");
            link_atomic(&done.join(file), &self.path.join(file))?;
        }
        fault("prune");
        self.remove_uncommitted(&name)
    }

    /// Removes temporaries of interrupted writes, and checkpoint directories that are not
    /// the committed one.
    fn remove_stale(&self) -> Result<()> {
        for entry in fs::read_dir(&self.path).map_err(|e| Error::io(&self.path, e))? {
            let path = entry.map_err(|e| Error::io(&self.path, e))?.path();
            if is_temporary(&path) {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        match fs::read_to_string(self.checkpoints().join(LATEST)) {
            Ok(name) => self.remove_uncommitted(name.trim()),
            Err(_) if self.checkpoints().is_dir() => self.remove_uncommitted(""),
            Err(_) => Ok(()),
        }
    }

    /// Removes every entry of `checkpoints/` but `keep` and the `latest` pointer.
    fn remove_uncommitted(&self, keep: &str) -> Result<()> {
        let root = self.checkpoints();
        for entry in fs::read_dir(&root).map_err(|e| Error::io(&root, e))? {
            let path = entry.map_err(|e| Error::io(&root, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == keep || name == LATEST {
                continue;
            }
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Links the committed checkpoint's model and metrics at the top of the run directory
    /// (again, after a commit stopped between its `latest` and its links).
    fn link_latest(&self) -> Result<()> {
        let latest = self.latest()?;
        if latest == self.path {
            return Ok(());
        }
        for file in LINKED.iter().filter(|f| latest.join(f).is_file()) {
            link_atomic(&latest.join(file), &self.path.join(file))?;
        }
        Ok(())
    }

    /// `--overwrite`: removes the run's files (and nothing else the directory holds).
    fn remove_run(&self) -> Result<()> {
        let root = self.checkpoints();
        if root.exists() {
            fs::remove_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        }
        for file in RUN_FILES {
            let path = self.path.join(file);
            if path.exists() {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Takes the run directory's lock, or fails at once naming the process that holds it.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(Error::Invalid(format!(
                "{} is in use by another run (PID {}); wait for it to finish or choose another --out",
                dir.display(),
                pid.trim()
            )));
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        write!(f, "{}", std::process::id())?;
        f.flush()
    };
    write_pid(&mut f).map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

/// Makes `dst` name the contents of `src`: a hard link (a copy where the file system has
/// none), put in place by a rename so `dst` is never missing or partial.
fn link_atomic(src: &Path, dst: &Path) -> Result<()> {
    // Already linked: a rename onto a link of the same file would do nothing, leaving the
    // temporary (POSIX rename(2)).
    if same_file::is_same_file(src, dst).unwrap_or(false) {
        return Ok(());
    }
    let tmp = temporary_path(dst);
    let _ = fs::remove_file(&tmp);
    let linked = fs::hard_link(src, &tmp).or_else(|_| fs::copy(src, &tmp).map(|_| ()));
    linked.and_then(|()| fs::rename(&tmp, dst)).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(dst, e)
    })
}

/// `--checkpoint`'s value (clap `value_parser`): a checkpoint file, or a run directory, which
/// stands for the model it holds (`DIR/model.safetensors`, the latest committed checkpoint).
pub fn checkpoint_arg(s: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if !path.is_dir() {
        return Ok(path);
    }
    let model = path.join(MODEL);
    if model.is_file() {
        Ok(model)
    } else {
        Err(format!(
            "{} is a directory without {MODEL}: give a checkpoint file or a run directory",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("padnet-rundir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_run_directory_stands_for_its_model() {
        let dir = scratch("checkpoint-arg");
        fs::create_dir_all(&dir).unwrap();
        let arg = dir.to_str().unwrap();
        let err = checkpoint_arg(arg).unwrap_err();
        assert!(err.contains("without model.safetensors"), "{err}");
        fs::write(dir.join(MODEL), b"x").unwrap();
        assert_eq!(checkpoint_arg(arg).unwrap(), dir.join(MODEL));
        let file = dir.join("deploy.safetensors");
        assert_eq!(checkpoint_arg(file.to_str().unwrap()).unwrap(), file);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn files(step: usize) -> Vec<(&'static str, Vec<u8>)> {
        [MODEL, OPTIMIZER, METRICS, CONFIG, STATE, CURVES]
            .iter()
            .map(|f| (*f, format!("{f} of step {step}").into_bytes()))
            .collect()
    }

    fn commit(dir: &RunDir, step: usize, fault: &dyn Fn(&str)) -> Result<()> {
        let owned = files(step);
        let borrowed: Vec<(&str, &[u8])> = owned.iter().map(|(n, b)| (*n, &b[..])).collect();
        dir.commit_with(step, &borrowed, fault)
    }

    /// Every file of the committed checkpoint, and the linked ones, are of one step.
    fn committed_step(dir: &RunDir) -> usize {
        let latest = dir.latest().unwrap();
        let steps: Vec<String> = [MODEL, OPTIMIZER, METRICS, CONFIG, STATE, CURVES]
            .iter()
            .map(|f| fs::read_to_string(latest.join(f)).unwrap())
            .chain(
                LINKED
                    .iter()
                    .map(|f| fs::read_to_string(dir.path.join(f)).unwrap()),
            )
            .map(|s| s.rsplit(' ').next().unwrap().to_string())
            .collect();
        assert!(
            steps.iter().all(|s| *s == steps[0]),
            "mixed checkpoint: {steps:?}"
        );
        steps[0].parse().unwrap()
    }

    #[test]
    fn a_commit_stopped_at_any_operation_leaves_the_previous_checkpoint_whole() {
        let ops = [
            "create", MODEL, OPTIMIZER, METRICS, CONFIG, STATE, CURVES, "rename", "latest", "link",
            "prune",
        ];
        for (i, op) in ops.iter().enumerate() {
            let path = scratch(&format!("kill{i}"));
            let dir = RunDir::open(&path, Existing::Refuse).unwrap();
            commit(&dir, 10, &|_| {}).unwrap();
            // A panic stands for a kill: nothing after it runs, no clean-up either.
            let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit(&dir, 20, &|at| {
                    if at == *op {
                        panic!("killed before {at}")
                    }
                })
            }));
            assert!(killed.is_err(), "{op}: the fault was not reached");
            drop(dir);
            let dir = RunDir::open(&path, Existing::Resume).unwrap();
            let step = committed_step(&dir);
            let temporaries: Vec<_> = fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| is_temporary(p))
                .collect();
            assert!(temporaries.is_empty(), "{op}: {temporaries:?} left");
            // Until `latest` is replaced the old checkpoint stands; after, the new one.
            let before_commit = i <= ops.iter().position(|o| *o == "latest").unwrap();
            assert_eq!(
                step,
                if before_commit { 10 } else { 20 },
                "killed before {op}"
            );
            let left: Vec<_> = fs::read_dir(path.join(CHECKPOINTS)).unwrap().collect();
            assert_eq!(
                left.len(),
                2,
                "{op}: stale checkpoint directories stay: {left:?}"
            );
            // The run goes on from there.
            commit(&dir, 30, &|_| {}).unwrap();
            assert_eq!(committed_step(&dir), 30);
            fs::remove_dir_all(&path).unwrap();
        }
    }

    #[test]
    fn a_finished_run_is_refused_unless_resumed_or_overwritten() {
        let path = scratch("refuse");
        let dir = RunDir::open(&path, Existing::Refuse).unwrap();
        commit(&dir, 1, &|_| {}).unwrap();
        // A second writer fails at once, naming the first.
        let err = RunDir::open(&path, Existing::Resume)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(dir);
        let err = RunDir::open(&path, Existing::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("already holds a run") && err.contains("--overwrite"),
            "{err}"
        );
        fs::write(path.join("notes.txt"), "mine").unwrap();
        let dir = RunDir::open(&path, Existing::Overwrite).unwrap();
        assert_eq!(
            dir.latest().unwrap(),
            path,
            "overwritten run left its checkpoints"
        );
        assert!(!path.join(MODEL).exists());
        assert_eq!(fs::read_to_string(path.join("notes.txt")).unwrap(), "mine");
        drop(dir);
        let empty = scratch("empty");
        let err = RunDir::open(&empty, Existing::Resume)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no run to resume"), "{err}");
        assert!(!empty.exists(), "a directory made for nothing stays");
        let dir = RunDir::open(&empty, Existing::Refuse).unwrap();
        fs::write(empty.join("tokenizer.json"), "{}").unwrap();
        drop(dir);
        assert!(!empty.exists(), "an uncommitted run's files stay");
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn committing_the_same_step_twice_keeps_one_checkpoint() {
        let path = scratch("twice");
        let dir = RunDir::open(&path, Existing::Refuse).unwrap();
        commit(&dir, 5, &|_| {}).unwrap();
        commit(&dir, 5, &|_| {}).unwrap();
        assert_eq!(committed_step(&dir), 5);
        assert_eq!(fs::read_dir(path.join(CHECKPOINTS)).unwrap().count(), 2);
        fs::write(path.join("model.tmp-123"), "half").unwrap();
        drop(dir);
        let _dir = RunDir::open(&path, Existing::Resume).unwrap();
        assert!(!path.join("model.tmp-123").exists(), "stale temporary kept");
        fs::remove_dir_all(&path).unwrap();
    }
}
