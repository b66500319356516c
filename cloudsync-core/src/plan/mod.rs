//! Planning: walk two remotes in step (`march`), compare the files found on both sides
//! (`equal`), decide what each path needs (`decide`), and describe the work as
//! [`Decision`]s, which the executor runs and a dry run collects into a serializable [`Plan`].

pub(crate) mod decide;
pub(crate) mod equal;
pub(crate) mod march;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::entry::Entry;
use crate::path::RemotePath;

/// What will be done to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Transfer a file that is missing on the destination.
    Copy,
    /// Replace a destination file that differs.
    Update,
    /// Only set the destination file's modtime (content is identical).
    SetModtime,
    /// Delete a destination file.
    Delete,
    /// Create a directory on the destination.
    Mkdir,
    /// Remove a destination directory that is not on the source.
    Rmdir,
    /// Leave the file as it is.
    Skip,
    /// The path cannot be handled (see the reason).
    Error,
    /// Remove one of our temporary upload files that a run which died left behind.
    RemoveLeftover,
}

/// Why a [`Decision`] was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Not on the destination.
    Missing,
    /// Sizes differ.
    SizeDiffers,
    /// Modtimes differ (and no hash proved the content equal).
    ModtimeDiffers,
    /// Hashes differ.
    HashDiffers,
    /// Content is identical but modtimes differ.
    ModtimeOnly,
    /// `ignore_times`: transfer regardless.
    IgnoreTimes,
    /// Identical by the chosen comparison.
    Identical,
    /// `ignore_existing`: the destination file exists.
    Exists,
    /// `update`: the destination file is newer.
    DestinationNewer,
    /// Not on the source (sync deletes it).
    NotOnSource,
    /// Excluded by the filters (`delete_excluded`).
    Excluded,
    /// A file on one side is a directory on the other.
    TypeConflict,
    /// Two names that differ only by case (or are duplicated) on one side.
    Duplicate,
    /// The source changed since the plan was made.
    SourceChanged,
    /// A source directory (created on the destination with `create_empty_src_dirs`).
    EmptyDir,
    /// The path could not be listed, read or compared.
    Failed,
    /// A temporary upload file left by a run that died.
    Leftover,
}

impl Reason {
    /// A short human-readable text.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Missing => "missing on destination",
            Reason::SizeDiffers => "sizes differ",
            Reason::ModtimeDiffers => "modification times differ",
            Reason::HashDiffers => "hashes differ",
            Reason::ModtimeOnly => "content identical, modification time differs",
            Reason::IgnoreTimes => "transfer forced (ignore times)",
            Reason::Identical => "identical",
            Reason::Exists => "exists on destination (ignore existing)",
            Reason::DestinationNewer => "destination is newer (update)",
            Reason::NotOnSource => "not on source",
            Reason::Excluded => "excluded by filters",
            Reason::TypeConflict => "file on one side, directory on the other",
            Reason::Duplicate => "duplicate name (differs only by case, or listed twice)",
            Reason::SourceChanged => "source changed since planning",
            Reason::EmptyDir => "directory on source",
            Reason::Failed => "could not be listed, read or compared",
            Reason::Leftover => "temporary file left by an interrupted run",
        }
    }
}

/// The decision for one path, with the entries it was based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The path (same on both sides).
    pub path: RemotePath,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// The source entry, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Entry>,
    /// The destination entry, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Entry>,
}

impl Decision {
    /// Bytes this decision transfers.
    pub fn bytes(&self) -> u64 {
        match self.action {
            Action::Copy | Action::Update => self.src.as_ref().map_or(0, |e| e.size),
            _ => 0,
        }
    }
}

/// One directory pair of a walk: the unit [`ops::plan_dir`](crate::ops::plan_dir) plans, and
/// what it hands back for each sub-directory it found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirPair {
    /// The directory's path on the destination.
    pub path: RemotePath,
    /// Its path on the source (the same unless the two names are only equal after Unicode
    /// normalisation).
    pub src_path: RemotePath,
    /// List the source side (false: a destination-only directory of a sync).
    pub src: bool,
    /// List the destination side.
    pub dst: bool,
}

impl DirPair {
    /// The pair at `path` on both sides, both listed.
    pub fn both(path: RemotePath) -> Self {
        DirPair {
            src_path: path.clone(),
            path,
            src: true,
            dst: true,
        }
    }
}

/// Which operation a plan was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Copy new and changed files; never delete.
    Copy,
    /// Make the destination identical to the source (deletes extra files).
    Sync,
    /// Copy, then delete each source file once its copy is verified.
    Move,
}

/// Everything a run would do: the output of a dry run (`ops::plan`) and the input of
/// `ops::apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The operation.
    pub mode: Mode,
    /// Source description.
    pub source: String,
    /// Destination description.
    pub destination: String,
    /// When the plan was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The decisions, in the order they were found.
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// Decisions that change something (everything but [`Action::Skip`]).
    pub fn changes(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.action != Action::Skip)
    }
}
