//! The resumable checkpoint: an append-only file of object keys whose records every sink has
//! acknowledged. A key is appended (and synced) only after its object's outcome is Delivered,
//! so a kill at any moment re-ships at most the objects that were in flight.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use trailhose_pipeline::linefile::AppendFile;

pub struct Checkpoint {
    path: PathBuf,
    done: HashSet<String>,
    /// The project's one line writer: whole lines, synced, nothing left of a failed append.
    file: AppendFile,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint and loads what it already records. A torn last line
    /// from a kill mid-write is cut off first (by the shared writer): that object is simply
    /// shipped again.
    pub fn open(path: &Path) -> io::Result<Checkpoint> {
        let file = AppendFile::open(path)?;
        let mut done = HashSet::new();
        let f = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let mut reader = io::BufReader::new(f);
        let mut line = String::new();
        // Every line is whole now; `\r` is part of a key, only `\n` ends one.
        while reader.read_line(&mut line)? > 0 {
            if let Some(key) = line.strip_suffix('\n').filter(|k| !k.is_empty()) {
                done.insert(key.to_string());
            }
            line.clear();
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            done,
            file,
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

    /// Records a delivered object durably (appended and synced before it returns).
    pub fn mark_done(&self, key: &str) -> io::Result<()> {
        if key.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "object key contains a newline",
            ));
        }
        self.file.append(format!("{key}\n").as_bytes(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

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
