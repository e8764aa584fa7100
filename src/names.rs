//! Names of the typed options (modes, λ variants, stems, MoE positions, ...). Each such enum
//! derives `clap::ValueEnum`, whose variant names are the one table of names: the command line
//! parses them, and configs, checkpoint metadata and messages read and write them through
//! [`Named`].

use crate::error::{Error, Result};

pub trait Named: clap::ValueEnum {
    /// What the value is called in messages ("mode", "λ variant", ...).
    const WHAT: &'static str;

    /// The value's name, as the command line spells it.
    fn name(&self) -> String {
        self.to_possible_value()
            .expect("typed options have no skipped variants")
            .get_name()
            .to_string()
    }

    /// Parses a name (from metadata or a config); unknown names list the valid ones.
    fn parse(s: &str) -> Result<Self> {
        Self::from_str(s, false).map_err(|_| {
            Error::Invalid(format!(
                "unknown {} '{s}'; valid: {}",
                Self::WHAT,
                Self::names().join(", ")
            ))
        })
    }

    /// Parses `s` when there is one (a metadata entry, say), else `default`.
    fn parse_or(s: Option<&String>, default: Self) -> Result<Self> {
        s.map_or(Ok(default), |s| Self::parse(s))
    }

    fn names() -> Vec<String> {
        Self::value_variants().iter().map(|v| v.name()).collect()
    }
}

/// A clap argument group with every option at its declared default: so that a default is
/// written once, in the `#[arg]` attribute, and `Default` impls read it from there.
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults"));
    let matches = cmd
        .try_get_matches_from(["defaults"])
        .expect("every option of a defaults() group has a default");
    T::from_arg_matches(&matches).expect("defaults match their own arguments")
}
