//! Text classification and regression splits from TSV files: the GLUE tasks with their
//! column conventions, the bundled `debian-sections` demo task, and any `tsv:PATH` with named
//! columns.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One labelled split.
#[derive(Clone, Debug)]
pub struct TextSet {
    pub name: String,
    /// First text and, for pair tasks, the second.
    pub texts: Vec<(String, Option<String>)>,
    /// Class indices (all 0 for regression).
    pub labels: Vec<u32>,
    /// The training targets: the class index as f32, or the real-valued label (regression).
    pub targets: Vec<f32>,
    /// Class names; `labels` index into it. Empty for regression tasks.
    pub classes: Vec<String>,
}

impl TextSet {
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
    pub fn truncate(&mut self, n: usize) {
        self.texts.truncate(n);
        self.labels.truncate(n);
        self.targets.truncate(n);
    }
    pub fn is_regression(&self) -> bool {
        self.classes.is_empty()
    }
}

/// Tasks whose label is a real number (MSE loss; Pearson and Spearman correlation).
pub fn is_regression_task(task: &str) -> bool {
    task == "stsb"
}

/// Where a task's columns are (indices from 0; a negative label column counts from the end,
/// as MNLI's train and dev files differ in width).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskFormat {
    pub name: String,
    pub header: bool,
    pub text: usize,
    pub text_pair: Option<usize>,
    pub label: isize,
    /// The label is a real number (STS-B's similarity score), not a class name.
    pub regression: bool,
    pub train_file: String,
    pub dev_file: String,
}

/// Task names `--task` accepts besides `tsv:PATH`.
pub const TASKS: [&str; 10] = [
    "debian-sections",
    "sst2",
    "cola",
    "mrpc",
    "qqp",
    "stsb",
    "mnli",
    "qnli",
    "rte",
    "wnli",
];

impl TaskFormat {
    /// The GLUE column conventions, as in the GLUE distribution's train.tsv / dev.tsv.
    pub fn named(task: &str) -> Result<Self> {
        let f = |header, text, text_pair, label| TaskFormat {
            name: task.to_string(),
            header,
            text,
            text_pair,
            label,
            regression: false,
            train_file: "train.tsv".into(),
            dev_file: "dev.tsv".into(),
        };
        Ok(match task {
            "debian-sections" | "sst2" => f(true, 0, None, 1),
            "cola" => f(false, 3, None, 1),
            "mrpc" => f(true, 3, Some(4), 0),
            "qqp" => f(true, 3, Some(4), 5),
            "qnli" | "rte" | "wnli" => f(true, 1, Some(2), 3),
            "mnli" => TaskFormat {
                dev_file: "dev_matched.tsv".into(),
                ..f(true, 8, Some(9), -1)
            },
            "stsb" => TaskFormat {
                regression: true,
                ..f(true, 7, Some(8), 9)
            },
            o => {
                return Err(Error::Invalid(format!(
                    "unknown task '{o}'; valid: {}, tsv:PATH",
                    TASKS.join(", ")
                )))
            }
        })
    }
}

/// The text of a UTF-8 file; where it is not UTF-8, the error names the line and column.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        Error::data(
            path,
            format!("line {line}, byte {column}: not UTF-8 text (save the file as UTF-8)"),
        )
    })
}

/// Reads `path` in `format`; labels are looked up in `classes`, or collected (sorted) when
/// `classes` is None. Errors name the file and line.
pub fn read(path: &Path, format: &TaskFormat, classes: Option<&[String]>) -> Result<TextSet> {
    let text = read_text(path)?;
    let mut rows = vec![];
    let width = [
        Some(format.text),
        format.text_pair,
        (format.label >= 0).then_some(format.label as usize),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
        + 1;
    for (i, line) in text.lines().enumerate().skip(format.header as usize) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let bad = |msg: String| Error::data(path, format!("line {}: {msg}", i + 1));
        if cols.len() < width || (format.label < 0 && cols.len() < (-format.label) as usize) {
            return Err(bad(format!(
                "{} tab-separated columns, expected at least {width}",
                cols.len()
            )));
        }
        let label = if format.label >= 0 {
            cols[format.label as usize]
        } else {
            cols[(cols.len() as isize + format.label) as usize]
        };
        rows.push((
            i + 1,
            cols[format.text].to_string(),
            format.text_pair.map(|c| cols[c].to_string()),
            label.trim().to_string(),
        ));
    }
    if rows.is_empty() {
        return Err(Error::data(path, "no examples"));
    }
    let classes: Vec<String> = match classes {
        _ if format.regression => vec![],
        Some(c) => c.to_vec(),
        None => {
            let mut c: Vec<String> = rows.iter().map(|r| r.3.clone()).collect();
            c.sort();
            c.dedup();
            c
        }
    };
    let mut set = TextSet {
        name: path.display().to_string(),
        texts: vec![],
        labels: vec![],
        targets: vec![],
        classes,
    };
    for (line, a, b, label) in rows {
        if format.regression {
            let Some(v) = label.parse::<f32>().ok().filter(|v| v.is_finite()) else {
                return Err(Error::data(
                    path,
                    format!("line {line}: label '{label}' is not a number (regression task)"),
                ));
            };
            set.texts.push((a, b));
            set.labels.push(0);
            set.targets.push(v);
            continue;
        }
        let Some(y) = set.classes.iter().position(|c| *c == label) else {
            return Err(Error::data(
                path,
                format!(
                    "line {line}: unknown label '{label}' (classes: {})",
                    set.classes.join(", ")
                ),
            ));
        };
        set.texts.push((a, b));
        set.labels.push(y as u32);
        set.targets.push(y as f32);
    }
    Ok(set)
}

/// A task's train and dev splits. `task` is a name from [`TASKS`] (files in `data_dir`,
/// default `data/<task>` for the bundled demo task) or `tsv:DIR` with columns given by name
/// in the header (`text_col`, optional `pair_col`, `label_col`).
pub fn load_task(
    task: &str,
    data_dir: Option<&Path>,
    columns: &TsvColumns,
) -> Result<(TextSet, TextSet)> {
    let (format, dir) = if let Some(dir) = task.strip_prefix("tsv:") {
        let dir = PathBuf::from(dir);
        (columns.format(&dir.join("train.tsv"))?, dir)
    } else {
        let format = TaskFormat::named(task)?;
        let dir = match data_dir {
            Some(d) => d.to_path_buf(),
            None if task == "debian-sections" => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("data/debian-sections")
            }
            None => {
                return Err(Error::Invalid(format!(
                    "task '{task}' needs --data-dir with {} and {}",
                    format.train_file, format.dev_file
                )))
            }
        };
        (format, dir)
    };
    let train = read(&dir.join(&format.train_file), &format, None)?;
    let dev = read(&dir.join(&format.dev_file), &format, Some(&train.classes))?;
    Ok((train, dev))
}

/// Column names of a generic `tsv:DIR` task (DIR holds train.tsv and dev.tsv with a header).
#[derive(Clone, Debug)]
pub struct TsvColumns {
    pub text: String,
    pub pair: Option<String>,
    pub label: String,
}

impl Default for TsvColumns {
    fn default() -> Self {
        TsvColumns {
            text: "sentence".into(),
            pair: None,
            label: "label".into(),
        }
    }
}

impl TsvColumns {
    fn format(&self, train: &Path) -> Result<TaskFormat> {
        let text = read_text(train)?;
        let header: Vec<&str> = text.lines().next().unwrap_or("").split('\t').collect();
        let col = |name: &str| {
            header.iter().position(|h| h.trim() == name).ok_or_else(|| {
                Error::data(
                    train,
                    format!(
                        "line 1: no column '{name}' in the header (columns: {})",
                        header.join(", ")
                    ),
                )
            })
        };
        Ok(TaskFormat {
            name: "tsv".into(),
            header: true,
            text: col(&self.text)?,
            text_pair: self.pair.as_deref().map(col).transpose()?,
            label: col(&self.label)? as isize,
            regression: false,
            train_file: "train.tsv".into(),
            dev_file: "dev.tsv".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_utf8_text_names_its_line() {
        let path = std::env::temp_dir().join(format!("padnet-tsv-{}.tsv", std::process::id()));
        std::fs::write(&path, b"sentence\tlabel\nfine\t0\nbad \xff here\t1\n").unwrap();
        let e = super::read_text(&path).unwrap_err().to_string();
        assert!(e.contains("line 3, byte 5: not UTF-8"), "{e}");
        std::fs::remove_file(&path).ok();
    }
}
