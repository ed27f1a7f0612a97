//! The resumable checkpoint: an append-only file of object keys whose records every sink has
//! acknowledged. A key is appended (and synced) only after its object's outcome is Delivered,
//! so a kill at any moment re-ships at most the objects that were in flight.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Checkpoint {
    path: PathBuf,
    done: HashSet<String>,
    file: Mutex<File>,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint and loads what it already records. A torn last line
    /// from a kill mid-write is cut off: that object is simply shipped again.
    pub fn open(path: &Path) -> io::Result<Checkpoint> {
        let mut done = HashSet::new();
        // Length up to the last complete line; anything after it is a torn write.
        let mut complete = 0u64;
        let mut total = 0u64;
        if let Ok(f) = File::open(path) {
            let mut reader = io::BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line)? as u64;
                if n == 0 {
                    break;
                }
                total += n;
                if let Some(key) = line.strip_suffix('\n') {
                    complete = total;
                    if !key.is_empty() {
                        done.insert(key.to_string());
                    }
                }
            }
        }
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if complete < total {
            // Drop the torn tail: that object was not recorded, so it is shipped again.
            file.set_len(complete)?;
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            done,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.done.contains(key)
    }

    pub fn len(&self) -> usize {
        self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Records a delivered object durably.
    pub fn mark_done(&self, key: &str) -> io::Result<()> {
        if key.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "object key contains a newline",
            ));
        }
        let mut f = match self.file.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f.write_all(format!("{key}\n").as_bytes())?;
        f.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_restart_and_torn_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("cp/backfill.checkpoint");
        let c = Checkpoint::open(&p).expect("open");
        assert!(c.is_empty());
        c.mark_done("a/b.json.gz").expect("mark");
        c.mark_done("a/c.json.gz").expect("mark");
        drop(c);
        // A kill mid-write leaves a partial key without newline.
        let mut f = OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(b"a/partial").expect("write");
        drop(f);
        let c = Checkpoint::open(&p).expect("reopen");
        assert!(c.is_done("a/b.json.gz") && c.is_done("a/c.json.gz"));
        assert!(!c.is_done("a/partial"));
        c.mark_done("a/d.json.gz").expect("mark");
        drop(c);
        let c = Checkpoint::open(&p).expect("reopen");
        assert_eq!(c.len(), 3);
        assert!(c.is_done("a/d.json.gz"));
    }
}
