//! The one writer of line-oriented files: the NDJSON sink's rotating files, the dead-letter
//! files, CloudWatch overflow, the backfill checkpoint and detection's alert files all append
//! through it, so none of them can hold a torn or a doubled line.
//!
//! The rules, in one place:
//!
//! - **Whole lines only.** A block handed to a writer is whole lines (it ends with `\n`) and goes
//!   to the file in one positioned `write_all` from the caller's buffer; nothing is buffered
//!   behind the caller's back. A JSON record that spans lines (a pretty-printed source) is put
//!   on one line by [`push_json`], the only place that rule lives.
//! - **A failed write leaves nothing.** On any error the file is cut back (`set_len`) to the
//!   length it had before the block, so no partial line remains and a retry cannot double the
//!   lines that did get through. A failed sync cuts back to the last synced length: what was
//!   written since is in doubt and is written again by the caller.
//! - **A torn last line is cut on open.** A process killed mid-write (`kill -9`, power loss)
//!   can leave a last line without its `\n`; whoever opens the file next cuts it. Files shared by
//!   several processes ([`AppendFile`]) are appended under an exclusive `flock`, and a torn tail
//!   left by a writer that died is cut before the next line goes in. A file being written by a
//!   live process ([`LineFile`], held under `flock` for its life) is never touched by others.
//! - **Size.** [`RotatingLines`] rotates before a block that would take a file past
//!   `max_file_bytes`; a block larger than that goes alone into a fresh file.
//! - **Names.** [`RotatingLines`] names files `PREFIX-<host>-<pid>-<random>-NNNNNN.ndjson`, so
//!   several processes can share a directory; numbering is monotonic within a process.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use trailhose_core::splitter::compact_json_into;
use trailhose_core::sync::lock;

/// Whether `bytes` hold a line break (a record that must be compacted to fit on one line).
pub fn has_line_break(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == b'\n' || b == b'\r')
}

/// Appends one JSON value to `out` so that it takes no more than one line: as it is, or, when
/// `has_line_break` (a pretty-printed source record), with the insignificant whitespace dropped
/// (JSON-equal; see `compact_json_into`). No newline is added.
pub fn push_json(out: &mut Vec<u8>, json: &[u8], has_line_break: bool) {
    if has_line_break {
        compact_json_into(json, out);
    } else {
        out.extend_from_slice(json);
    }
}

/// [`push_json`] for bytes whose shape is not known.
pub fn push_json_any(out: &mut Vec<u8>, json: &[u8]) {
    push_json(out, json, has_line_break(json));
}

fn check_block(block: &[u8]) -> io::Result<()> {
    if block.last().is_some_and(|&b| b != b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a block of lines must end with a newline",
        ));
    }
    Ok(())
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(buf)
}

#[cfg(not(unix))]
fn read_exact_at(mut f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// An exclusive advisory lock (`flock`) on an open file, released on drop or when the file is
/// closed (also when the process dies). On a file system without `flock` (ENOLCK, EOPNOTSUPP)
/// writers go on unlocked and nobody repairs another writer's file.
struct Flock<'a>(&'a File);

enum Locked {
    Yes,
    Busy,
    Unsupported,
}

impl<'a> Flock<'a> {
    /// Waits for the lock.
    fn wait(f: &'a File) -> io::Result<Option<Flock<'a>>> {
        Ok(match flock(f, false)? {
            Locked::Yes => Some(Flock(f)),
            Locked::Busy | Locked::Unsupported => None,
        })
    }

    /// `None` when another open file holds it, or when locks are not supported (so the file
    /// may be in progress).
    fn try_now(f: &'a File) -> io::Result<Option<Flock<'a>>> {
        Ok(match flock(f, true)? {
            Locked::Yes => Some(Flock(f)),
            Locked::Busy | Locked::Unsupported => None,
        })
    }

    /// Keeps the lock until the file is closed.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        unlock(self.0);
    }
}

#[cfg(unix)]
fn flock(f: &File, nonblocking: bool) -> io::Result<Locked> {
    use std::os::unix::io::AsRawFd;
    let op = if nonblocking {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_EX
    };
    loop {
        // SAFETY: flock(2) on a descriptor this `File` owns; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(Locked::Yes);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(Locked::Busy),
            Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    tracing::warn!(error = %e, "file locks are not supported here: files in progress cannot be told from abandoned ones, torn files of other writers are not repaired");
                });
                return Ok(Locked::Unsupported);
            }
            _ => return Err(e),
        }
    }
}

#[cfg(unix)]
fn unlock(f: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: as above. A failed unlock is released anyway when the file closes.
    unsafe {
        libc::flock(f.as_raw_fd(), libc::LOCK_UN);
    }
}

#[cfg(not(unix))]
fn flock(_f: &File, _nonblocking: bool) -> io::Result<Locked> {
    Ok(Locked::Unsupported)
}

#[cfg(not(unix))]
fn unlock(_f: &File) {}

/// The length of `f` (currently `len` bytes) without a partial last line: `len` when it is
/// empty or ends with `\n`, else the end of its last whole line.
fn whole_lines_len(f: &File, len: u64) -> io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    read_exact_at(f, &mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let n = (end.min(buf.len() as u64)) as usize;
        let start = end - n as u64;
        let part = &mut buf[..n];
        read_exact_at(f, part, start)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Cuts a partial last line off `f` (length `len`), durably. Returns the new length.
fn cut_torn_tail(f: &File, path: &Path, len: u64) -> io::Result<u64> {
    let whole = whole_lines_len(f, len).map_err(|e| named(path, e))?;
    if whole < len {
        f.set_len(whole).map_err(|e| named(path, e))?;
        f.sync_all().map_err(|e| named(path, e))?;
        tracing::warn!(
            file = %path.display(),
            cut = len - whole,
            "cut a torn last line (a writer was killed mid-write)"
        );
    }
    Ok(whole)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| named(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// What [`repair`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// A live writer holds the file: left alone.
    InProgress,
    /// Nothing to cut.
    Whole { len: u64 },
    /// A torn last line was cut.
    Cut { from: u64, to: u64 },
}

/// Cuts a partial last line off `path` unless a live writer holds it.
pub fn repair(path: &Path) -> io::Result<Repair> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| named(path, e))?;
    let Some(_lock) = Flock::try_now(&f).map_err(|e| named(path, e))? else {
        return Ok(Repair::InProgress);
    };
    let len = f.metadata().map_err(|e| named(path, e))?.len();
    let to = cut_torn_tail(&f, path, len)?;
    Ok(if to < len {
        Repair::Cut { from: len, to }
    } else {
        Repair::Whole { len }
    })
}

/// One file written by this writer alone (it holds an exclusive `flock` for the file's life,
/// which tells other processes it is in progress). Blocks go in whole or not at all.
pub struct LineFile {
    path: PathBuf,
    file: File,
    /// Bytes of whole lines written.
    len: u64,
    /// Bytes known durable.
    synced: u64,
    /// Bytes past `len` may exist (a failed write whose cut failed too): cut before anything
    /// else is written.
    dirty: bool,
    /// Created by us: the directory entry must be synced with the first sync.
    new_entry: bool,
}

impl LineFile {
    /// Creates `path`, which must not exist.
    pub fn create_new(path: &Path) -> io::Result<LineFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| named(path, e))?;
        // Waits only while another process's start-up repair looks at the (empty) file.
        if let Some(l) = Flock::wait(&file).map_err(|e| named(path, e))? {
            l.keep();
        }
        Ok(LineFile {
            path: path.to_path_buf(),
            file,
            len: 0,
            synced: 0,
            dirty: false,
            new_entry: true,
        })
    }

    /// Opens an existing file to continue it, cutting a partial last line. Fails with
    /// `WouldBlock` when another writer holds it.
    pub fn open_existing(path: &Path) -> io::Result<LineFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| named(path, e))?;
        match Flock::try_now(&file).map_err(|e| named(path, e))? {
            Some(l) => l.keep(),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{}: in use by another writer", path.display()),
                ))
            }
        }
        let len = file.metadata().map_err(|e| named(path, e))?.len();
        let len = cut_torn_tail(&file, path, len)?;
        Ok(LineFile {
            path: path.to_path_buf(),
            file,
            len,
            synced: len,
            dirty: false,
            new_entry: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of whole lines in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes written but not yet synced.
    pub fn unsynced(&self) -> u64 {
        self.len - self.synced
    }

    fn cut_to(&mut self, to: u64) -> io::Result<()> {
        match self.file.set_len(to) {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(e) => {
                self.dirty = true;
                Err(named(&self.path, e))
            }
        }
    }

    /// Appends a block of whole lines in one write. On error the file is cut back to the
    /// length it had, so nothing of the block remains.
    pub fn append(&mut self, block: &[u8]) -> io::Result<()> {
        check_block(block)?;
        if block.is_empty() {
            return Ok(());
        }
        if self.dirty {
            self.cut_to(self.len)?;
        }
        if let Err(e) = write_all_at(&self.file, block, self.len) {
            let e = named(&self.path, e);
            if let Err(cut) = self.cut_to(self.len) {
                tracing::error!(error = %cut, "cannot cut a failed write back; will retry before the next write");
            }
            return Err(e);
        }
        self.len += block.len() as u64;
        Ok(())
    }

    /// Makes everything written durable. On error, what was written since the last sync is
    /// cut (its state on disk is unknown) and must be written again.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.cut_to(self.len)?;
        }
        if self.synced == self.len && !self.new_entry {
            return Ok(());
        }
        let r = self
            .file
            .sync_data()
            .map_err(|e| named(&self.path, e))
            .and_then(|()| {
                if self.new_entry {
                    sync_dir(&self.path)?;
                }
                Ok(())
            });
        match r {
            Ok(()) => {
                self.synced = self.len;
                self.new_entry = false;
                Ok(())
            }
            Err(e) => {
                let to = self.synced;
                self.len = to;
                if let Err(cut) = self.cut_to(to) {
                    tracing::error!(error = %cut, "cannot cut unsynced lines after a failed sync");
                }
                Err(e)
            }
        }
    }
}

impl Drop for LineFile {
    fn drop(&mut self) {
        if self.dirty {
            let _ = self.file.set_len(self.len);
        }
    }
}

/// An append-only file of lines that several writers (threads or processes) may share: every
/// append takes an exclusive `flock`, cuts a torn tail a dead writer left, writes its block at
/// the end in one write and, when asked, syncs before the lock is released. Opened (with its
/// directory) on the first append unless [`open`](Self::open)ed at once.
pub struct AppendFile {
    path: PathBuf,
    file: Mutex<Option<Open>>,
}

struct Open {
    file: File,
    /// Created by us and not yet synced: the directory entry must be synced too.
    new_entry: bool,
}

impl AppendFile {
    /// Nothing is created until the first append.
    pub fn new(path: &Path) -> AppendFile {
        AppendFile {
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }

    /// Opens (creating it and its directory) now, and cuts a torn last line.
    pub fn open(path: &Path) -> io::Result<AppendFile> {
        let a = AppendFile::new(path);
        {
            let mut g = a.lock();
            let open = a.ensure_open(&mut g)?;
            let _lock = Flock::wait(&open.file).map_err(|e| named(path, e))?;
            let len = open.file.metadata().map_err(|e| named(path, e))?.len();
            cut_torn_tail(&open.file, path, len)?;
        }
        Ok(a)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        lock(&self.file)
    }

    fn ensure_open<'g>(&self, g: &'g mut Option<Open>) -> io::Result<&'g mut Open> {
        if g.is_none() {
            if let Some(parent) = self.path.parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| named(parent, e))?;
                }
            }
            let mut o = OpenOptions::new();
            o.read(true).write(true);
            let (file, new_entry) = match o.clone().create_new(true).open(&self.path) {
                Ok(f) => (f, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    (o.open(&self.path).map_err(|e| named(&self.path, e))?, false)
                }
                Err(e) => return Err(named(&self.path, e)),
            };
            *g = Some(Open { file, new_entry });
        }
        match g.as_mut() {
            Some(o) => Ok(o),
            None => Err(io::Error::other("append file not open")),
        }
    }

    /// Appends a block of whole lines; with `sync`, returns only once it is durable. On error
    /// nothing of the block remains in the file.
    pub fn append(&self, block: &[u8], sync: bool) -> io::Result<()> {
        check_block(block)?;
        if block.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        let mut g = self.lock();
        let open = self.ensure_open(&mut g)?;
        let result = (|| {
            let _lock = Flock::wait(&open.file).map_err(|e| named(path, e))?;
            let len = open.file.metadata().map_err(|e| named(path, e))?.len();
            // A writer that died mid-append left a partial line: it was never acknowledged.
            let len = cut_torn_tail(&open.file, path, len)?;
            let wrote = write_all_at(&open.file, block, len).map_err(|e| named(path, e));
            let synced = wrote.and_then(|()| {
                if sync {
                    open.file.sync_data().map_err(|e| named(path, e))?;
                    if open.new_entry {
                        sync_dir(path)?;
                        open.new_entry = false;
                    }
                }
                Ok(())
            });
            if let Err(e) = synced {
                // Nothing of the block may stay: a retry would double what got through.
                open.file.set_len(len).map_err(|cut| {
                    io::Error::new(
                        e.kind(),
                        format!("{e}; and cutting the failed write back failed: {cut}"),
                    )
                })?;
                return Err(e);
            }
            Ok(())
        })();
        if result.is_err() {
            // Reopened on the next append (the file may have been replaced meanwhile).
            *g = None;
        }
        result
    }
}

/// Rotating files of lines in one directory, written by this process alone:
/// `PREFIX-<host>-<pid>-<random>-NNNNNN.ndjson`. Nothing is touched until the first write, so a
/// directory that cannot be created or written yet is retried on every write.
pub struct RotatingLines {
    dir: PathBuf,
    prefix: String,
    max: u64,
    stem: String,
    seq: u64,
    current: Option<(u64, LineFile)>,
    dir_ready: bool,
    /// Other writers' files found whole and not in progress: they never change again.
    checked: HashSet<OsString>,
}

/// A failed write or sync of [`RotatingLines`].
#[derive(Debug)]
pub struct RotateError {
    pub error: io::Error,
    /// A file whose lines written since its last sync were cut (its sync failed): blocks
    /// placed there since then must be written again.
    pub cut_unsynced_of: Option<u64>,
}

impl From<io::Error> for RotateError {
    fn from(error: io::Error) -> Self {
        RotateError {
            error,
            cut_unsynced_of: None,
        }
    }
}

impl std::fmt::Display for RotateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// This host's name, as a file name part.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "host".into()
    } else {
        clean
    }
}

impl RotatingLines {
    pub fn new(dir: &Path, prefix: &str, max_file_bytes: u64) -> RotatingLines {
        let stem = format!(
            "{prefix}-{}-{}-{:08x}",
            host_name(),
            std::process::id(),
            rand::random::<u32>()
        );
        RotatingLines {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            max: max_file_bytes.max(1),
            stem,
            seq: 0,
            current: None,
            dir_ready: false,
            checked: HashSet::new(),
        }
    }

    /// `PREFIX-<host>-<pid>-<random>`: every file of this writer starts so.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// The file being written, if any.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|(_, f)| f.path())
    }

    fn ensure_dir(&mut self) -> io::Result<()> {
        if !self.dir_ready {
            std::fs::create_dir_all(&self.dir).map_err(|e| {
                io::Error::new(e.kind(), format!("creating {}: {e}", self.dir.display()))
            })?;
            self.dir_ready = true;
        }
        Ok(())
    }

    /// Cuts torn last lines off files of this prefix that no live writer holds (a worker
    /// killed mid-write). Problems are logged, never fatal.
    pub fn repair_others(&mut self) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the output directory to repair torn files");
                return;
            }
        };
        let head = format!("{}-", self.prefix);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let s = name.to_string_lossy();
            if !s.starts_with(&head) || !s.ends_with(".ndjson") || s.starts_with(&self.stem) {
                continue;
            }
            if self.checked.contains(&name) {
                continue;
            }
            match repair(&entry.path()) {
                Ok(Repair::Whole { len }) | Ok(Repair::Cut { to: len, .. }) if len > 0 => {
                    // Nobody writes it any more (a new writer locks its file before writing).
                    self.checked.insert(name);
                }
                Ok(_) => {}
                Err(e) => {
                    // Not ours to write (e.g. made read-only by whoever collects them): once.
                    tracing::warn!(error = %e, "cannot check an output file for a torn line");
                    self.checked.insert(name);
                }
            }
        }
    }

    fn open_next(&mut self) -> io::Result<()> {
        loop {
            let path = self
                .dir
                .join(format!("{}-{:06}.ndjson", self.stem, self.seq));
            let seq = self.seq;
            self.seq += 1;
            match LineFile::create_new(&path) {
                Ok(f) => {
                    self.current = Some((seq, f));
                    return Ok(());
                }
                // Someone else's file (or ours from before a failure): take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    // Keep the number for the next try only if nothing was created.
                    self.seq = seq;
                    return Err(e);
                }
            }
        }
    }

    /// Writes one block of whole lines into the current file, rotating first when it would
    /// take the file past `max_file_bytes` (syncing the file it leaves when `fsync`). A block
    /// larger than the limit goes alone into a fresh file. Returns the number of the file
    /// written. On error nothing of the block is in any file.
    pub fn write(&mut self, block: &[u8], fsync: bool) -> Result<u64, RotateError> {
        check_block(block)?;
        self.ensure_dir()?;
        let full = self
            .current
            .as_ref()
            .is_some_and(|(_, f)| !f.is_empty() && f.len() + block.len() as u64 > self.max);
        if full {
            if fsync {
                self.sync()?;
            }
            self.current = None;
        }
        if self.current.is_none() {
            self.repair_others();
            if let Err(e) = self.open_next() {
                if e.kind() == io::ErrorKind::NotFound {
                    // The directory went away: create it again on the next try.
                    self.dir_ready = false;
                }
                return Err(e.into());
            }
        }
        match self.current.as_mut() {
            Some((seq, f)) => {
                f.append(block)?;
                Ok(*seq)
            }
            None => Err(io::Error::other("no output file open").into()),
        }
    }

    /// Syncs the current file (and, for a new file, its directory entry).
    pub fn sync(&mut self) -> Result<(), RotateError> {
        if let Some((seq, f)) = self.current.as_mut() {
            f.sync().map_err(|error| RotateError {
                error,
                cut_unsynced_of: Some(*seq),
            })?;
        }
        Ok(())
    }

    /// Closes the current file, syncing it first when `fsync`.
    pub fn close(&mut self, fsync: bool) -> Result<(), RotateError> {
        if fsync {
            self.sync()?;
        }
        self.current = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("read")
            .split_inclusive('\n')
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn blocks_must_be_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = LineFile::create_new(&dir.path().join("a.ndjson")).expect("create");
        let e = f.append(b"{\"a\":1}").expect_err("no newline");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        f.append(b"{\"a\":1}\n{\"a\":2}\n").expect("append");
        assert_eq!(f.len(), 16);
        let a = AppendFile::new(&dir.path().join("b/dl.ndjson"));
        assert!(a.append(b"x", true).is_err());
        assert!(!dir.path().join("b/dl.ndjson").exists());
    }

    #[test]
    fn pretty_records_are_put_on_one_line_in_one_place() {
        let mut out = Vec::new();
        push_json_any(&mut out, b"{\n  \"a\": \"x y\",\r\n  \"b\": [1, 2]\n}");
        assert_eq!(out, br#"{"a":"x y","b":[1,2]}"#);
        out.clear();
        push_json(&mut out, br#"{"a": 1}"#, false);
        assert_eq!(out, br#"{"a": 1}"#);
    }

    #[test]
    fn a_torn_tail_is_cut_on_open_and_by_the_next_shared_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("dl.ndjson");
        // What a writer killed with -9 in the middle of a write leaves.
        std::fs::write(&p, b"{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"par").expect("write");
        let a = AppendFile::open(&p).expect("open");
        assert_eq!(lines(&p), vec!["{\"n\":1}\n", "{\"n\":2}\n"]);
        a.append(b"{\"n\":4}\n", true).expect("append");
        // Another writer dies mid-line while we keep the file open.
        let mut other = OpenOptions::new().append(true).open(&p).expect("open");
        other.write_all(b"{\"n\":5,").expect("write");
        drop(other);
        a.append(b"{\"n\":6}\n", false).expect("append");
        assert_eq!(
            lines(&p),
            vec!["{\"n\":1}\n", "{\"n\":2}\n", "{\"n\":4}\n", "{\"n\":6}\n"]
        );
        // A file of nothing but a partial line is cut to empty.
        let q = dir.path().join("q.ndjson");
        std::fs::write(&q, vec![b'x'; 200_000]).expect("write");
        assert_eq!(
            repair(&q).expect("repair"),
            Repair::Cut {
                from: 200_000,
                to: 0
            }
        );
        assert_eq!(std::fs::metadata(&q).expect("meta").len(), 0);
    }

    #[test]
    fn a_file_in_progress_is_never_repaired_by_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("records-h-1-00000000-000000.ndjson");
        let mut live = LineFile::create_new(&p).expect("create");
        live.append(b"{\"n\":1}\n").expect("append");
        // Bytes that look torn, e.g. a write in progress another reader happens to see.
        let mut raw = OpenOptions::new().append(true).open(&p).expect("open");
        raw.write_all(b"{\"n\":2,").expect("write");
        assert_eq!(repair(&p).expect("repair"), Repair::InProgress);
        assert!(matches!(
            LineFile::open_existing(&p),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        ));
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), 15);
        drop(live);
        // Its writer is gone: now it is repaired.
        assert_eq!(repair(&p).expect("repair"), Repair::Cut { from: 15, to: 8 });
        let mut again = LineFile::open_existing(&p).expect("reopen");
        again.append(b"{\"n\":3}\n").expect("append");
        again.sync().expect("sync");
        assert_eq!(lines(&p), vec!["{\"n\":1}\n", "{\"n\":3}\n"]);
    }

    #[test]
    fn rotation_respects_the_limit_and_an_oversized_block_goes_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RotatingLines::new(dir.path(), "records", 100);
        let line = |n: usize| format!("{{\"pad\":\"{}\"}}\n", "x".repeat(n));
        assert_eq!(w.write(line(30).as_bytes(), true).expect("w"), 0);
        assert_eq!(w.write(line(30).as_bytes(), true).expect("w"), 0);
        // 3 × 41 bytes would cross 100: a new file.
        assert_eq!(w.write(line(30).as_bytes(), true).expect("w"), 1);
        // Larger than the limit: alone in a fresh file, and the next block moves on again.
        assert_eq!(w.write(line(200).as_bytes(), true).expect("w"), 2);
        assert_eq!(w.write(line(1).as_bytes(), true).expect("w"), 3);
        w.close(true).expect("close");
        let mut names: Vec<(String, u64)> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().expect("meta").len(),
                )
            })
            .collect();
        names.sort();
        let sizes: Vec<u64> = names.iter().map(|(_, n)| *n).collect();
        assert_eq!(sizes, vec![82, 41, 211, 12]);
        for (i, (n, _)) in names.iter().enumerate() {
            assert_eq!(n, &format!("{}-{:06}.ndjson", w.stem(), i));
        }
        assert!(w.stem().contains(&format!("-{}-", std::process::id())));
    }

    #[test]
    fn two_writers_in_one_directory_get_distinct_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = RotatingLines::new(dir.path(), "records", 1 << 20);
        let mut b = RotatingLines::new(dir.path(), "records", 1 << 20);
        assert_ne!(a.stem(), b.stem());
        a.write(b"{\"w\":\"a\"}\n", false).expect("a");
        b.write(b"{\"w\":\"b\"}\n", false).expect("b");
        assert_ne!(a.current_path(), b.current_path());
        // b's start-up repair left a's file in progress alone, and vice versa.
        a.write(b"{\"w\":\"a\"}\n", false).expect("a");
        let pa = a.current_path().map(Path::to_path_buf).expect("a file");
        assert_eq!(lines(&pa), vec!["{\"w\":\"a\"}\n", "{\"w\":\"a\"}\n"]);
    }
}
